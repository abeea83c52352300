// Reader validation (one test per defect, message checked) and writer output
// checked with the independent reader in tests/support.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "formats/model_dir.h"
#include "formats/safetensors.h"
#include "support/st_checker.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char((n >> (8 * i)) & 0xff);
  return s;
}

std::string file_bytes(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

std::string parse_error(const std::string& bytes) {
  try {
    rv::parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                          "x.safetensors");
  } catch (const rv::Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::string& bytes, const std::string& needle) {
  std::string m = parse_error(bytes);
  EXPECT_NE(m.find("x.safetensors: "), std::string::npos) << m;
  EXPECT_NE(m.find(needle), std::string::npos) << "message: " << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << "one line: " << m;
}

const std::string kGood =
    R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]}})";

}  // namespace

TEST(SafetensorsRead, ParsesValidFile) {
  std::string bytes = file_bytes(kGood, std::string(12, '\x01'));
  auto h = rv::parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "x");
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].name, "a");
  EXPECT_EQ(h.tensors[1].shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(h.data_start, 8 + kGood.size());
}

TEST(SafetensorsRead, TruncatedBelowEightBytes) {
  expect_error("abc", "truncated");
}

TEST(SafetensorsRead, HeaderLengthPastEndOfFile) {
  expect_error(le64(1000) + "{}", "runs past end of file");
}

TEST(SafetensorsRead, HeaderLengthOver100MB) {
  expect_error(le64(200'000'000) + "{}", "exceeds the 100 MB limit");
}

TEST(SafetensorsRead, MalformedJson) {
  expect_error(file_bytes(R"({"a":{"dtype":"F32",)", ""), "malformed header JSON");
}

TEST(SafetensorsRead, NotAnObject) {
  expect_error(file_bytes("[1,2]", ""), "not a JSON object");
}

TEST(SafetensorsRead, UnknownDtype) {
  expect_error(file_bytes(R"({"a":{"dtype":"F12","shape":[1],"data_offsets":[0,4]}})", "abcd"),
               "unknown dtype 'F12'");
}

TEST(SafetensorsRead, DataOffsetsBeginAfterEnd) {
  expect_error(file_bytes(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", "abcd"),
               "begin 4 > end 0");
}

TEST(SafetensorsRead, OffsetsOutOfRange) {
  expect_error(file_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", "abcd"),
               "past the data section");
}

TEST(SafetensorsRead, ShapeSizeMismatch) {
  expect_error(file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "abcd"),
               "!= shape x F32 size 8");
}

TEST(SafetensorsRead, OverlappingTensors) {
  expect_error(file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                          std::string(8, 'x')),
               "overlaps");
}

TEST(SafetensorsRead, GapBetweenTensors) {
  expect_error(file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                          std::string(12, 'x')),
               "gap in data section");
}

TEST(SafetensorsRead, TrailingBytesNotCovered) {
  expect_error(
      file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(9, 'x')),
      "tensors cover 4");
}

TEST(SafetensorsRead, DuplicateTensorName) {
  expect_error(file_bytes(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                          R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                          "xy"),
               "duplicate key in header: 'a'");
}

TEST(SafetensorsRead, NegativeShape) {
  expect_error(file_bytes(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})", ""),
               "non-integer or negative");
}

TEST(SafetensorsRead, ShapeOverflow) {
  expect_error(
      file_bytes(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}})",
                 ""),
      "overflows");
}

TEST(SafetensorsRead, MetadataMustBeStrings) {
  expect_error(file_bytes(R"({"__metadata__":{"n":1}})", ""), "is not a string");
}

TEST(SafetensorsRead, TruncatedFileOnDisk) {
  std::string d = rvtest::temp_dir("st-trunc");
  std::string bytes = file_bytes(kGood, std::string(12, '\x01'));
  std::ofstream(d + "/t.safetensors", std::ios::binary) << bytes.substr(0, bytes.size() - 3);
  try {
    rv::SafetensorsFile f(d + "/t.safetensors");
    FAIL() << "expected an error";
  } catch (const rv::Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(d + "/t.safetensors: "), std::string::npos) << m;
    EXPECT_NE(m.find("truncated file"), std::string::npos) << m;
  }
}

// Writes four tensors out of order into directory d and checks the file with
// the independent reader.
static void write_and_check_single_file(const std::string& d) {
  std::vector<rv::TensorSpec> specs = {{"w", rv::DType::F32, {2, 3}},
                                       {"b", rv::DType::BF16, {3}},
                                       {"e", rv::DType::F16, {0}},
                                       {"i", rv::DType::I64, {1}}};
  rv::SafetensorsWriter::Options o;
  o.metadata = {{"k", "v"}};
  rv::SafetensorsWriter w(d, specs, o);
  float wv[6] = {1, -2, 3.5f, 0, 1e-3f, -7};
  uint16_t bv[3] = {0x3f80, 0xc000, 0x7fc0};
  int64_t iv = -5;
  // Out of order and split writes, as parallel workers would issue them.
  w.write(1, 0, bv, 6);
  w.write(0, 12, wv + 3, 12);
  w.write(0, 0, wv, 12);
  w.write(3, 0, &iv, 8);
  w.finish();
  ASSERT_EQ(w.files(), std::vector<std::string>{"model.safetensors"});
  auto f = rvtest::read_safetensors_checked(d + "/model.safetensors");
  EXPECT_EQ(f.metadata.at("format"), "pt");
  EXPECT_EQ(f.metadata.at("k"), "v");
  ASSERT_EQ(f.tensors.size(), 4u);
  EXPECT_EQ(f.tensors["w"].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.tensors["w"].as_f32(), std::vector<float>(wv, wv + 6));
  auto b = f.tensors["b"].as_f32();
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], -2.0f);
  EXPECT_TRUE(std::isnan(b[2]));
  EXPECT_EQ(f.tensors["e"].bytes.size(), 0u);
  EXPECT_EQ(f.tensors["i"].dtype, "I64");
  // And our own reader agrees.
  rv::SafetensorsFile rf(d + "/model.safetensors");
  EXPECT_EQ(rf.tensors().size(), 4u);
}

TEST(SafetensorsWrite, SingleFileMatchesIndependentReader) {
  write_and_check_single_file(rvtest::temp_dir("st-write"));
}

// tmpfs refuses RWF_DONTCACHE (EOPNOTSUPP), as do kernels before 6.14: the
// writer must fall back to plain pwrite and write the same bytes.
TEST(SafetensorsWrite, PlainWritesWhereUncachedWritesAreRefused) {
  if (!fs::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm";
  const fs::path d = "/dev/shm/rv_st_shm_" + std::to_string(::getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  write_and_check_single_file(d.string());
  fs::remove_all(d);
}

TEST(SafetensorsWrite, ShardsWithIndex) {
  std::string d = rvtest::temp_dir("st-shards");
  std::vector<rv::TensorSpec> specs;
  for (int i = 0; i < 5; ++i) specs.push_back({"t" + std::to_string(i), rv::DType::F32, {10}});
  rv::SafetensorsWriter::Options o;
  o.shard_size = 100;  // 40-byte tensors: two per shard
  rv::SafetensorsWriter w(d, specs, o);
  for (size_t i = 0; i < 5; ++i) {
    std::vector<float> v(10, float(i));
    w.write(i, 0, v.data(), 40);
  }
  w.finish();
  EXPECT_EQ(w.files(), (std::vector<std::string>{"model-00001-of-00003.safetensors",
                                                 "model-00002-of-00003.safetensors",
                                                 "model-00003-of-00003.safetensors"}));
  auto all = rvtest::read_model_checked(d);
  ASSERT_EQ(all.tensors.size(), 5u);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(all.tensors["t" + std::to_string(i)].as_f32(), std::vector<float>(10, float(i)));
  std::ifstream in(d + "/model.safetensors.index.json");
  json idx = json::parse(in);
  EXPECT_EQ(idx["metadata"]["total_size"], 200);
  EXPECT_EQ(idx["weight_map"]["t4"], "model-00003-of-00003.safetensors");
  rv::TensorSet ts(d);
  EXPECT_EQ(ts.names().size(), 5u);
}

TEST(SafetensorsWrite, UnwritableDirectory) {
  try {
    rv::SafetensorsWriter w("/nonexistent-dir-rv", {{"a", rv::DType::F32, {1}}}, {});
    FAIL();
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir-rv/model.safetensors: cannot create"),
              std::string::npos)
        << e.what();
  }
}

TEST(TensorSet, IndexNamingMissingShard) {
  std::string d = rvtest::temp_dir("st-missing");
  std::ofstream(d + "/model.safetensors.index.json")
      << R"({"metadata":{"total_size":4},"weight_map":{"a":"model-00001-of-00002.safetensors"}})";
  try {
    rv::TensorSet ts(d);
    FAIL();
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("names missing shard 'model-00001-of-00002.safetensors'"),
              std::string::npos)
        << e.what();
  }
}

TEST(ModelDir, NaturalOrderAndLayerIndex) {
  EXPECT_TRUE(rv::natural_less("model.layers.2.x", "model.layers.10.x"));
  EXPECT_FALSE(rv::natural_less("model.layers.10.x", "model.layers.2.x"));
  EXPECT_EQ(rv::layer_index("model.layers.17.mlp.up_proj.weight"), 17);
  EXPECT_EQ(rv::layer_index("model.embed_tokens.weight"), -1);
  EXPECT_EQ(rv::parse_size("5GB"), 5'000'000'000ull);
  EXPECT_EQ(rv::parse_size("2MiB"), 2u * 1024 * 1024);
  EXPECT_THROW(rv::parse_size("5XB"), rv::Error);
}

TEST(ModelDir, MissingConfigField) {
  try {
    rv::parse_model_config(json{{"hidden_size", 8}}, "c.json");
    FAIL();
  } catch (const rv::Error& e) {
    EXPECT_STREQ(e.what(), "c.json: missing required field 'num_hidden_layers'");
  }
}

// A synced output leaves none of its pages cached where uncached writes
// work: RWF_DONTCACHE keeps the pages two write pieces share, and those
// would keep the next reader's mapping of nearly every 2 MiB range in 4 KiB
// pages (see MappedFile). Pieces of 100 KiB at unaligned offsets share pages.
TEST(SafetensorsWrite, SyncedOutputLeavesNoPageCached) {
  const std::string d = rvtest::temp_dir("st-uncached");
  {  // Does this kernel and filesystem take RWF_DONTCACHE at all?
    const int fd = ::open((d + "/probe").c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    char c = 0;
    iovec iov{&c, 1};
    const bool works = pwritev2(fd, &iov, 1, 0, 0x00000080 /* RWF_DONTCACHE */) == 1;
    ::close(fd);
    if (!works) GTEST_SKIP() << "RWF_DONTCACHE refused here (kernel before 6.14, or tmpfs)";
  }
  const size_t n = size_t{3} << 20;  // 3 MiB of f32
  rv::SafetensorsWriter w(d, {{"x", rv::DType::F32, {int64_t(n / 4)}}}, {});
  std::vector<uint8_t> data(n);
  for (size_t i = 0; i < n; ++i) data[i] = uint8_t(i * 7);
  for (size_t off = 0; off < n; off += 100 << 10)
    w.write(0, off, data.data() + off, std::min<size_t>(100 << 10, n - off));
  w.finish();
  const std::string file = d + "/model.safetensors";
  const int fd = ::open(file.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  const size_t size = fs::file_size(file), pages = (size + 4095) / 4096;
  void* p = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  std::vector<unsigned char> in(pages);
  ASSERT_EQ(mincore(p, size, in.data()), 0);
  size_t cached = 0;
  for (unsigned char c : in) cached += c & 1;
  EXPECT_EQ(cached, 0u) << "of " << pages << " pages";
  munmap(p, size);
  ::close(fd);
}
