// Model::from_memory: the loader over tensors the caller holds in memory
// (a training loop's current weights), with no file behind them.
#include <map>

#include "common/error.h"
#include "engine/model.h"
#include "engine/tensor_source.h"
#include "engine/thread_pool.h"  // Model() destroys its pool member on a throw

namespace rv::engine {
namespace {

constexpr const char* kWhere = "memory";

// Names are already the loader's; data is used in place.
class MemorySource final : public TensorSource {
 public:
  explicit MemorySource(std::vector<std::pair<std::string, Tensor>> tensors) {
    where = kWhere;
    implied_by = "the config";
    for (auto& [name, t] : tensors) {
      if (!t.data) throw Error(kWhere, "tensor '" + name + "' has no data");
      if (!tensors_.emplace(name, std::move(t)).second)
        throw Error(kWhere, "tensor '" + name + "' is given twice");
    }
  }
  bool has(const std::string& name) const override { return tensors_.count(name) != 0; }
  Tensor get(const std::string& name) override { return tensors_.at(name); }
  std::string file_name(const std::string& name) const override { return name; }
  std::vector<std::pair<std::string, Tensor>> list() const override {
    std::vector<std::pair<std::string, Tensor>> r;
    for (const auto& [name, t] : tensors_) r.push_back({name, {nullptr, t.dtype, t.shape}});
    return r;
  }
  uint64_t bytes() const {
    uint64_t n = 0;
    for (const auto& [name, t] : tensors_) {
      uint64_t e = 1;
      for (int64_t d : t.shape) e *= static_cast<uint64_t>(d);
      n += e * dtype_size(t.dtype);
    }
    return n;
  }

 private:
  std::map<std::string, Tensor> tensors_;
};

}  // namespace

std::unique_ptr<Model> Model::from_memory(
    const ModelConfig& cfg, std::vector<std::pair<std::string, TensorSource::Tensor>> tensors,
    const ModelOptions& opt) {
  kern::isa();  // a bad $RV_ISA fails here, not later on a worker thread
  std::unique_ptr<Model> m(new Model());
  m->config_ = cfg;
  m->spec_ = make_model_spec(m->config_, kWhere);
  MemorySource src(std::move(tensors));
  m->weight_bytes_ = src.bytes();
  m->load_from(src, kWhere, opt);
  return m;
}

}  // namespace rv::engine
