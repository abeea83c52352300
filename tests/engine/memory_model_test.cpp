// Model::from_memory: the same tensors from memory and from disk give the
// same model; bad tensor sets are rejected naming the tensor.
#include <gtest/gtest.h>

#include <cstring>

#include "common/error.h"
#include "engine/model.h"
#include "engine_test_util.h"
#include "formats/model_dir.h"

namespace rv::engine {
namespace {

using enginetest::make_model;
using enginetest::temp_dir;
using enginetest::tiny;
using Tensors = std::vector<std::pair<std::string, TensorSource::Tensor>>;

// Copies of every tensor of a model directory, owned here (not the mapping).
struct Copied {
  std::vector<std::vector<uint8_t>> bytes;
  Tensors tensors;
  explicit Copied(const ModelDir& md) {
    const TensorSet& ts = md.tensors();
    bytes.reserve(ts.names().size());
    for (const auto& n : ts.names()) {
      TensorView v = ts.view(n);
      bytes.emplace_back(v.data, v.data + v.nbytes());
      tensors.push_back({n, {bytes.back().data(), v.dtype(), v.shape()}});
    }
  }
};

std::vector<int32_t> tokens(int n) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 53 + 7) % 256);
  return t;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(FromMemory, SameTensorsGiveBitIdenticalLogits) {
  for (bool tied : {false, true})
    for (const char* arch : {"qwen2", "qwen3"}) {
      SCOPED_TRACE(std::string(arch) + (tied ? " tied" : " untied"));
      auto dir = temp_dir(std::string("mem_") + arch + (tied ? "t" : "u"));
      make_model(tiny(arch, DType::F32, tied), dir);
      auto disk = Model::load(dir, {2});
      ModelDir md(dir);
      Copied c(md);
      auto mem = Model::from_memory(md.config(), c.tensors, {.threads = 2});
      EXPECT_EQ(mem->weight_bytes(), md.tensors().total_bytes());
      const auto t = tokens(enginetest::sanitizer_run() ? 7 : 19);
      const auto a = disk->forward_all(t), b = mem->forward_all(t);
      ASSERT_EQ(a.size(), b.size());
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
      EXPECT_EQ(disk->generate_greedy(t, 6), mem->generate_greedy(t, 6));
      std::filesystem::remove_all(dir);
    }
}

TEST(FromMemory, RejectsMissingWrongShapeDuplicateAndNullTensors) {
  auto dir = temp_dir("mem_bad");
  make_model(tiny("qwen2", DType::F32, false), dir);
  ModelDir md(dir);
  Copied c(md);
  const std::string up = "model.layers.1.mlp.up_proj.weight";
  {
    Tensors t = c.tensors;
    std::erase_if(t, [&](const auto& e) { return e.first == up; });
    const std::string msg = error_of([&] { Model::from_memory(md.config(), t, {.threads = 1}); });
    EXPECT_NE(msg.find("memory: missing tensor '" + up + "'"), std::string::npos) << msg;
  }
  {
    Tensors t = c.tensors;
    for (auto& [n, v] : t)
      if (n == up) std::swap(v.shape[0], v.shape[1]);
    const std::string msg = error_of([&] { Model::from_memory(md.config(), t, {.threads = 1}); });
    EXPECT_NE(msg.find("tensor '" + up + "' has shape [64, 96]"), std::string::npos) << msg;
  }
  {
    Tensors t = c.tensors;
    t.push_back(t.front());
    const std::string msg = error_of([&] { Model::from_memory(md.config(), t, {.threads = 1}); });
    EXPECT_NE(msg.find("'" + t.front().first + "' is given twice"), std::string::npos) << msg;
  }
  {
    Tensors t = c.tensors;
    t[3].second.data = nullptr;
    const std::string msg = error_of([&] { Model::from_memory(md.config(), t, {.threads = 1}); });
    EXPECT_NE(msg.find("'" + t[3].first + "' has no data"), std::string::npos) << msg;
  }
  auto m = Model::from_memory(md.config(), c.tensors, {.threads = 1});
  EXPECT_THROW(m->variant({}), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rv::engine
