#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/progress.h"
#include "vector/internal.h"
#include "vector/sparsify.h"
#include "vector/vector.h"

namespace rv::vec {

using namespace detail;
using json = nlohmann::json;

json CheckResult::to_json() const {
  static const char* names[] = {"compatible", "compatible-with-warnings", "incompatible"};
  json j = {{"verdict", names[static_cast<int>(verdict)]},
            {"errors", errors},
            {"warnings", warnings},
            {"notes", notes},
            {"matched_tensors", matched}};
  if (lineage_global >= 0) {
    j["lineage"]["global_relative_distance"] = lineage_global;
    json t = json::object();
    for (const auto& [n, d] : lineage) t[n] = std::isfinite(d) ? json(d) : json(nullptr);
    j["lineage"]["tensors"] = t;
  }
  return j;
}

CheckResult check(const fs::path& target_p, const fs::path& vector_p, const CheckOptions& opt) {
  CheckResult r;
  ModelDir target(target_p);
  VectorReader V(vector_p);  // a sparse file is judged as the dense vector it encodes
  const TensorSet& T = target.tensors();
  const ModelConfig& c = target.config();
  const auto& meta = V.metadata();
  auto m = [&](const std::string& k) -> std::string {
    auto it = meta.find(k);
    return it == meta.end() ? "" : it->second;
  };

  // Architecture as recorded when the vector was extracted.
  if (!m("reasonvec.architecture").empty() && m("reasonvec.architecture") != c.architecture)
    r.errors.push_back("architecture: vector was extracted from " + m("reasonvec.architecture") +
                       ", target is " + c.architecture);
  auto same_int = [&](const char* key, int have, const char* what) {
    std::string v = m(key);
    if (!v.empty() && v != std::to_string(have))
      r.errors.push_back(std::string(what) + ": vector's source has " + v + ", target has " +
                         std::to_string(have));
  };
  same_int("reasonvec.hidden_size", c.hidden_size, "hidden_size");
  same_int("reasonvec.num_hidden_layers", c.num_layers, "num_hidden_layers");
  if (m("reasonvec.kind").empty())
    r.notes.push_back("vector has no reasonvec provenance metadata; checked tensors only");
  if (std::string vs = m("reasonvec.vocab_size"); !vs.empty() && vs != std::to_string(c.vocab_size))
    r.warnings.push_back("vocab_size: vector's source has " + vs + ", target has " +
                         std::to_string(c.vocab_size) + " (apply needs --vocab-mismatch overlap|skip)");

  const bool target_tied = !T.has(kLmHead) && T.has(kEmbed);
  size_t missing = 0;
  for (const auto& n : V.names()) {
    const DType vdt = V.dtype(n);
    const std::vector<int64_t>& vshape = V.shape(n);
    if (!is_float_dtype(vdt)) {
      r.errors.push_back("tensor '" + n + "': non-float dtype " + std::string(dtype_name(vdt)));
      continue;
    }
    if (!T.has(n)) {
      if (n == kLmHead && target_tied) {
        r.warnings.push_back("target ties embeddings but the vector has lm_head.weight: its delta is "
                             "dropped unless apply --untie");
        continue;
      }
      if (++missing <= 5) r.errors.push_back("tensor '" + n + "' is not in the target");
      continue;
    }
    const TensorView tv = T.view(n);
    if (!is_float_dtype(tv.dtype())) {
      r.errors.push_back("tensor '" + n + "': target dtype " + std::string(dtype_name(tv.dtype())) +
                         " is not a float type");
      continue;
    }
    if (tv.shape() != vshape) {
      bool rows_only = is_vocab_tensor(n) && tv.shape().size() == vshape.size() &&
                       std::equal(tv.shape().begin() + 1, tv.shape().end(), vshape.begin() + 1);
      if (rows_only)
        r.warnings.push_back("tensor '" + n + "': vocabulary rows differ (" +
                             std::to_string(vshape[0]) + " in vector, " +
                             std::to_string(tv.shape()[0]) + " in target)");
      else
        r.errors.push_back("tensor '" + n + "': shape " + shape_str(vshape) + " vs target " +
                           shape_str(tv.shape()));
      continue;
    }
    ++r.matched;
  }
  if (missing > 5) r.errors.push_back("... and " + std::to_string(missing - 5) + " more tensors not in the target");
  if (T.has(kLmHead) && !V.has(kLmHead) && V.has(kEmbed))
    r.notes.push_back("vector comes from tied models: its embed_tokens delta will also be applied to "
                      "the target's lm_head");
  // Target weights the vector leaves alone: apply refuses those without --partial.
  size_t untouched = 0;
  std::string first;
  for (const auto& n : T.names()) {
    const bool weight = n.size() > 7 && (n.compare(n.size() - 7, 7, ".weight") == 0 ||
                                         n.compare(n.size() - 5, 5, ".bias") == 0);
    const bool via_embed = n == kLmHead && V.has(kEmbed);  // tied-model vector
    if (weight && !V.has(n) && !via_embed && is_float_dtype(T.view(n).dtype()) && !untouched++) first = n;
  }
  if (untouched)
    r.warnings.push_back(std::to_string(untouched) + " target weight(s) are not in the vector (e.g. '" +
                         first + "'); apply refuses it unless --partial, which leaves them unchanged");

  if (!opt.base.empty()) {
    TensorSet S(opt.base);
    std::vector<double> matrix_dist;
    uint64_t work = 0;
    for (const auto& n : V.names())
      if (T.has(n) && S.has(n)) work += T.find(n)->nbytes() + S.find(n)->nbytes();
    Progress prog("lineage", work, Progress::Unit::kBytes);
    for (const auto& n : V.names()) {
      if (!T.has(n) || !S.has(n)) continue;
      const TensorView tv = T.view(n), sv = S.view(n);
      if (tv.shape() != sv.shape() || !is_float_dtype(tv.dtype()) || !is_float_dtype(sv.dtype()))
        continue;
      std::vector<std::pair<double, double>> part((tv.numel() + kTile - 1) / kTile);
      for_tiles(tv.numel(), [&](uint64_t lo, uint64_t hi) {
        float* x = scratch(0, hi - lo).data();
        float* y = scratch(1, hi - lo).data();
        load_f32(tv, lo, hi, x);
        load_f32(sv, lo, hi, y);
        double a = 0, b = 0;
        for (size_t k = 0; k < hi - lo; ++k) {
          double d = double(x[k]) - y[k];
          a += d * d;
          b += double(y[k]) * y[k];
        }
        release(T, tv, lo, hi);
        release(S, sv, lo, hi);
        prog.add((hi - lo) * (dtype_size(tv.dtype()) + dtype_size(sv.dtype())));
        part[lo / kTile] = {a, b};
      });
      double dd = 0, ss = 0;  // summed in tile order: deterministic
      for (auto [a, b] : part) dd += a, ss += b;
      const double d = ss > 0 ? std::sqrt(dd / ss) : std::nan("");
      r.lineage.emplace_back(n, d);
      if (tv.shape().size() >= 2 && std::isfinite(d)) matrix_dist.push_back(d);
    }
    if (r.lineage.empty()) {
      r.errors.push_back("lineage: no tensors in common between target, vector and --base");
    } else {
      // The median over weight matrices: a global ratio of sums would be
      // dominated by norm weights (all near 1) and hide a foreign model.
      std::vector<double> m = matrix_dist;
      if (m.empty())
        for (const auto& [n, d] : r.lineage)
          if (std::isfinite(d)) m.push_back(d);
      std::sort(m.begin(), m.end());
      r.lineage_global = m.empty() ? 0 : m.size() % 2 ? m[m.size() / 2] : (m[m.size() / 2 - 1] + m[m.size() / 2]) / 2;
      char buf[160];
      snprintf(buf, sizeof buf, "%.4f", r.lineage_global);
      if (r.lineage_global > opt.lineage_warn)
        r.warnings.push_back(std::string("lineage: relative distance from the vector's base model is ") +
                             buf + " (> " + std::to_string(opt.lineage_warn).substr(0, 4) +
                             "): the target does not look like it shares the vector's initialisation");
      else
        r.notes.push_back(std::string("lineage: relative distance from the vector's base model is ") + buf);
    }
  }
  if (!r.errors.empty()) r.verdict = CheckResult::Verdict::kIncompatible;
  else if (!r.warnings.empty()) r.verdict = CheckResult::Verdict::kWarnings;
  return r;
}

}  // namespace rv::vec
