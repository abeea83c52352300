#include <cmath>
#include <limits>

#include "common/error.h"
#include "common/progress.h"
#include "vector/internal.h"
#include "vector/sparsify.h"
#include "vector/vector.h"

namespace rv::vec {

using namespace detail;
using json = nlohmann::json;

double Stats::l2() const { return std::sqrt(sum_sq); }

double Stats::rel() const {
  return ref_sum_sq > 0 ? std::sqrt(sum_sq / ref_sum_sq) : std::numeric_limits<double>::quiet_NaN();
}

void Stats::merge(const Stats& o) {
  numel += o.numel;
  sum_sq += o.sum_sq;
  max_abs = std::max(max_abs, o.max_abs);
  zeros += o.zeros;
  nans += o.nans;
  infs += o.infs;
  if (o.ref_sum_sq >= 0) ref_sum_sq = (ref_sum_sq < 0 ? 0 : ref_sum_sq) + o.ref_sum_sq;
}

double PairStats::cosine() const {
  return a_sq > 0 && b_sq > 0 ? dot / std::sqrt(a_sq * b_sq) : std::numeric_limits<double>::quiet_NaN();
}

double PairStats::norm_ratio() const {
  return b_sq > 0 ? std::sqrt(a_sq / b_sq) : std::numeric_limits<double>::quiet_NaN();
}

void PairStats::merge(const PairStats& o) {
  numel += o.numel;
  dot += o.dot;
  a_sq += o.a_sq;
  b_sq += o.b_sq;
}

namespace {

json num(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }

json stats_json(const Stats& s) {
  json j = {{"numel", s.numel},        {"l2", num(s.l2())},  {"max_abs", num(s.max_abs)},
            {"zero_fraction", s.numel ? double(s.zeros) / s.numel : 0.0},
            {"nan", s.nans},           {"inf", s.infs}};
  if (s.ref_sum_sq >= 0) j["relative_norm"] = num(s.rel());
  return j;
}

json pair_json(const PairStats& p) {
  return {{"numel", p.numel}, {"cosine", num(p.cosine())}, {"norm_ratio", num(p.norm_ratio())},
          {"norm_a", num(std::sqrt(p.a_sq))}, {"norm_b", num(std::sqrt(p.b_sq))}};
}

// Σx² of a tensor, in double, on all cores.
double sum_squares(const TensorSet& set, const TensorView& v) {
  // One slot per tile, summed in order: results do not depend on scheduling.
  std::vector<double> part((v.numel() + kTile - 1) / kTile, 0.0);
  for_tiles(v.numel(), [&](uint64_t lo, uint64_t hi) {
    float* x = scratch(0, hi - lo).data();
    load_f32(v, lo, hi, x);
    double s = 0;
    for (size_t k = 0; k < hi - lo; ++k)
      if (std::isfinite(x[k])) s += double(x[k]) * x[k];
    release(set, v, lo, hi);
    part[lo / kTile] = s;
  });
  double total = 0;
  for (double p : part) total += p;
  return total;
}

}  // namespace

json InspectResult::to_json() const {
  json j;
  j["metadata"] = metadata;
  json t = json::array();
  for (const auto& [n, s] : tensors) {
    json e = stats_json(s);
    e["name"] = n;
    t.push_back(e);
  }
  j["tensors"] = t;
  json l = json::array();
  for (const auto& [i, s] : layers) {
    json e = stats_json(s);
    e["layer"] = i;
    l.push_back(e);
  }
  j["layers"] = l;
  j["non_layer"] = stats_json(other);
  j["total"] = stats_json(total);
  return j;
}

InspectResult inspect(const fs::path& path, const fs::path& reference) {
  // A sparse vector file reads as the dense vector it encodes.
  VectorReader S(path);
  std::unique_ptr<TensorSet> ref;
  if (!reference.empty()) ref = std::make_unique<TensorSet>(reference);
  InspectResult r;
  for (const auto& [k, v] : S.metadata()) r.metadata[k] = v;
  uint64_t bytes = 0;  // of the dense tensors the file encodes
  for (const auto& name : S.names()) bytes += S.numel(name) * dtype_size(S.dtype(name));
  Progress prog("inspect", bytes * (ref ? 2 : 1), Progress::Unit::kBytes);
  for (const auto& name : S.names()) {
    const DType dt = S.dtype(name);
    const uint64_t vbytes = S.numel(name) * dtype_size(dt);
    Stats st;
    st.numel = S.numel(name);
    if (is_float_dtype(dt)) {
      std::vector<Stats> part((st.numel + kTile - 1) / kTile);
      for_tiles(st.numel, [&](uint64_t lo, uint64_t hi) {
        float* x = scratch(0, hi - lo).data();
        S.read_f32(name, lo, hi, x);
        Stats& s = part[lo / kTile];
        for (size_t k = 0; k < hi - lo; ++k) {
          float f = x[k];
          if (std::isnan(f)) {
            ++s.nans;
          } else if (std::isinf(f)) {
            ++s.infs;
          } else {
            s.sum_sq += double(f) * f;
            s.max_abs = std::max(s.max_abs, double(std::fabs(f)));
            s.zeros += f == 0.0f;
          }
        }
        S.release(name, lo, hi);
        prog.add((hi - lo) * dtype_size(dt));
      });
      for (const Stats& s : part) st.merge(s);  // in tile order: deterministic
    } else {
      prog.add(vbytes);
    }
    if (ref) {
      if (!ref->has(name))
        throw Error(reference.string(), "has no tensor '" + name + "' to compare norms with");
      const TensorView rv = ref->view(name);
      if (rv.numel() != st.numel)
        throw Error(reference.string(), "tensor '" + name + "' has shape " + shape_str(rv.shape()) +
                                            ", the vector's is " + shape_str(S.shape(name)));
      st.ref_sum_sq = is_float_dtype(rv.dtype()) ? sum_squares(*ref, rv) : 0;
      prog.add(vbytes);
    }
    int li = layer_index(name);
    if (li >= 0) r.layers[li].merge(st);
    else r.other.merge(st);
    r.total.merge(st);
    r.tensors.emplace_back(name, st);
  }
  return r;
}

json CompareResult::to_json() const {
  json j;
  json t = json::array();
  for (const auto& [n, p] : tensors) {
    json e = pair_json(p);
    e["name"] = n;
    t.push_back(e);
  }
  j["tensors"] = t;
  json l = json::array();
  for (const auto& [i, p] : layers) {
    json e = pair_json(p);
    e["layer"] = i;
    l.push_back(e);
  }
  j["layers"] = l;
  j["total"] = pair_json(total);
  j["only_in_a"] = only_in_a;
  j["only_in_b"] = only_in_b;
  j["shape_mismatch"] = shape_mismatch;
  return j;
}

CompareResult compare(const fs::path& a_p, const fs::path& b_p) {
  VectorReader A(a_p), B(b_p);  // sparse files read as the dense vectors they encode
  CompareResult r;
  for (const auto& n : B.names())
    if (!A.has(n)) r.only_in_b.push_back(n);
  auto dense_bytes = [](const VectorReader& V, const std::string& n) {
    return V.numel(n) * dtype_size(V.dtype(n));
  };
  uint64_t work = 0;
  for (const auto& n : A.names())
    if (B.has(n)) work += dense_bytes(A, n) + dense_bytes(B, n);
  Progress prog("compare", work, Progress::Unit::kBytes);
  for (const auto& name : A.names()) {
    if (!B.has(name)) {
      r.only_in_a.push_back(name);
      continue;
    }
    if (A.shape(name) != B.shape(name)) {
      r.shape_mismatch.push_back(name + " " + shape_str(A.shape(name)) + " vs " +
                                 shape_str(B.shape(name)));
      continue;
    }
    const DType adt = A.dtype(name), bdt = B.dtype(name);
    if (!is_float_dtype(adt) || !is_float_dtype(bdt)) continue;
    PairStats ps;
    ps.numel = A.numel(name);
    std::vector<PairStats> part((ps.numel + kTile - 1) / kTile);
    for_tiles(ps.numel, [&](uint64_t lo, uint64_t hi) {
      float* x = scratch(0, hi - lo).data();
      float* y = scratch(1, hi - lo).data();
      A.read_f32(name, lo, hi, x);
      B.read_f32(name, lo, hi, y);
      double d = 0, xx = 0, yy = 0;
      for (size_t k = 0; k < hi - lo; ++k) {
        d += double(x[k]) * y[k];
        xx += double(x[k]) * x[k];
        yy += double(y[k]) * y[k];
      }
      A.release(name, lo, hi);
      B.release(name, lo, hi);
      prog.add((hi - lo) * (dtype_size(adt) + dtype_size(bdt)));
      PairStats& q = part[lo / kTile];
      q.dot = d;
      q.a_sq = xx;
      q.b_sq = yy;
    });
    for (const PairStats& q : part) ps.dot += q.dot, ps.a_sq += q.a_sq, ps.b_sq += q.b_sq;
    int li = layer_index(name);
    if (li >= 0) r.layers[li].merge(ps);
    r.total.merge(ps);
    r.tensors.emplace_back(name, ps);
  }
  if (r.tensors.empty()) throw Error(b_p.string(), "no tensors in common with " + a_p.string());
  return r;
}

}  // namespace rv::vec
