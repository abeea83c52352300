#include "engine/vector_overlay.h"

#include "common/error.h"
#include "vector/overlay.h"

namespace rv::engine {
namespace {

class OverlaySource final : public TensorSource {
 public:
  OverlaySource(TensorSource& inner, const vec::OverlayTarget& target,
                const std::vector<LoadVector>& vectors, const ModelOptions::Log& log,
                std::vector<OwnedBytes>& owned)
      : inner_(inner), overlay_(target, terms(vectors), log), log_(log), owned_(owned) {
    where = inner.where;
    implied_by = inner.implied_by;
  }

  bool has(const std::string& n) const override { return inner_.has(n); }
  std::string file_name(const std::string& n) const override { return inner_.file_name(n); }
  std::vector<std::pair<std::string, Tensor>> list() const override { return inner_.list(); }

  Tensor get(const std::string& n) override {
    Tensor t = inner_.get(n);
    if (!overlay_.changes(n)) return t;
    uint64_t numel = 1;
    for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
    OwnedBytes buf(numel * dtype_size(t.dtype));
    const uint64_t bad = overlay_.compute(n, t.data, buf.data());
    if (bad && log_)
      log_("warning: " + std::to_string(bad) + " non-finite value(s) (NaN/Inf) in '" + n +
           "' after adding the vectors");
    owned_.push_back(std::move(buf));
    t.data = owned_.back().data();
    return t;
  }

 private:
  static std::vector<vec::OverlayTerm> terms(const std::vector<LoadVector>& v) {
    std::vector<vec::OverlayTerm> r;
    for (const auto& x : v) r.push_back({x.path, x.alpha, x.partial});
    return r;
  }

  TensorSource& inner_;
  vec::Overlay overlay_;
  ModelOptions::Log log_;
  std::vector<OwnedBytes>& owned_;
};

}  // namespace

std::unique_ptr<TensorSource> overlay_source(TensorSource& inner, const ModelSpec& spec,
                                             const std::string& model_name, const ModelOptions& opt,
                                             std::vector<OwnedBytes>& owned) {
  vec::OverlayTarget target;
  for (auto& [name, t] : inner.list()) target.tensors[name] = {t.dtype, t.shape};
  target.arch = spec.arch;
  target.head_dim = spec.head_dim;
  target.name = model_name;
  return std::make_unique<OverlaySource>(inner, target, opt.vectors, opt.log, owned);
}

}  // namespace rv::engine
