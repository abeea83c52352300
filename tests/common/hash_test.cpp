#include "common/hash.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace rv {
namespace {

// FIPS 180-2 / NIST example vectors.
TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalMatchesOneShotForAnySplit) {
  std::mt19937 rng(7);
  std::string data(10000, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  const std::string want = sha256_hex(data);
  for (size_t piece : {1u, 3u, 63u, 64u, 65u, 1000u, 10000u}) {
    Sha256 h;
    for (size_t k = 0; k < data.size(); k += piece)
      h.update(std::string_view(data).substr(k, piece));
    EXPECT_EQ(h.hex(), want) << "pieces of " << piece;
  }
  Sha256 empty;
  empty.update(nullptr, 0);
  EXPECT_EQ(empty.hex(), sha256_hex(""));
}

// An independent implementation: coreutils' sha256sum (skipped where absent).
TEST(Sha256, AgreesWithSha256sum) {
  if (std::system("command -v sha256sum > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "sha256sum not installed";
  std::mt19937 rng(11);
  std::string data(123457, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  auto path =
      std::filesystem::temp_directory_path() / ("rv_hash_test_" + std::to_string(rng()) + ".bin");
  std::ofstream(path, std::ios::binary)
      .write(data.data(), static_cast<std::streamsize>(data.size()));
  std::string cmd = "sha256sum " + path.string();
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[65] = {};
  size_t got = fread(buf, 1, 64, p);
  pclose(p);
  std::filesystem::remove(path);
  ASSERT_EQ(got, 64u);
  EXPECT_EQ(sha256_hex(data), std::string(buf, 64));
}

}  // namespace
}  // namespace rv
