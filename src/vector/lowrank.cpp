#include "vector/lowrank.h"

#include <Eigen/Dense>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <numeric>
#include <regex>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/file.h"
#include "common/parallel.h"
#include "formats/arch.h"
#include "formats/synth.h"
#include "vector/internal.h"

namespace rv::vec {

using namespace detail;
using json = nlohmann::json;
using Eigen::MatrixXd;
using Eigen::VectorXd;

namespace {

using RowMatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Energy targets are met within this relative slack: Σσ² and ‖M‖² are two
// double sums of the same quantity that differ by rounding, and a matrix that
// is exactly rank r before its f32 storage has ~1e-14 relative energy beyond r.
constexpr double kEnergySlack = 1e-9;

int rank_for_energy(const VectorXd& s, double total, double energy) {
  if (total <= 0) return 1;
  const double target = energy * total * (1 - kEnergySlack);
  double cum = 0;
  for (Eigen::Index i = 0; i < s.size(); ++i) {
    cum += s[i] * s[i];
    if (cum >= target) return static_cast<int>(i + 1);
  }
  return -1;  // not reached with these values
}

// An orthonormal basis of Y's columns (thin Householder QR).
MatrixXd orthonormal(const MatrixXd& Y) {
  Eigen::HouseholderQR<MatrixXd> qr(Y);
  return qr.householderQ() * MatrixXd::Identity(Y.rows(), Y.cols());
}

struct Svd {
  MatrixXd U, V;  // thin
  VectorXd s;
};

Svd exact_svd(const MatrixXd& M) {
  Eigen::BDCSVD<MatrixXd> svd(M, Eigen::ComputeThinU | Eigen::ComputeThinV);
  return {svd.matrixU(), svd.matrixV(), svd.singularValues()};
}

// Halko–Martinsson–Tropp randomized SVD with `l` sketch columns and q power
// iterations (their Algorithm 4.4: QR after every product keeps the basis
// from collapsing onto the top singular vector).
Svd randomized_svd(const MatrixXd& M, int64_t l, int q, uint64_t seed, uint64_t stream) {
  const int64_t n = M.cols();
  MatrixXd omega(n, l);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < l; ++j)
      omega(i, j) = synth_normal(seed, stream, static_cast<uint64_t>(i * l + j));
  MatrixXd Q = orthonormal(M * omega);
  for (int it = 0; it < q; ++it) {
    MatrixXd Z = orthonormal(M.transpose() * Q);
    Q = orthonormal(M * Z);
  }
  MatrixXd small = Q.transpose() * M;  // l × n
  Svd s = exact_svd(small);
  s.U = Q * s.U;
  return s;
}

}  // namespace

Factors truncated_svd(const float* M, int64_t rows, int64_t cols, int rank, double energy,
                      const SvdOptions& opt) {
  if (rows <= 0 || cols <= 0) throw Error("truncated_svd", "empty matrix");
  if ((rank > 0) == (energy > 0))
    throw Error("truncated_svd", "give exactly one of a rank and an energy fraction");
  const int64_t mn = std::min(rows, cols);
  if (rank < 0 || rank > mn)
    throw Error("truncated_svd",
                "rank " + std::to_string(rank) + " outside [1, " + std::to_string(mn) + "]");
  if (energy < 0 || energy > 1 || std::isnan(energy))
    throw Error("truncated_svd", "energy must lie in (0, 1]");
  if (opt.oversample < 0 || opt.power_iters < 0)
    throw Error("truncated_svd", "oversampling and power iterations must be >= 0");

  const MatrixXd Md = Eigen::Map<const RowMatF>(M, rows, cols).cast<double>();
  Factors f;
  f.total_sq = Md.squaredNorm();

  auto use_exact = [&](int64_t sketch) {
    if (opt.force_exact) return true;
    if (opt.force_randomized) return sketch > mn;
    return mn <= kExactSvdMaxDim || 2 * sketch > mn;
  };
  Svd s;
  int r = rank;
  if (rank > 0) {
    const int64_t l = std::min<int64_t>(mn, rank + opt.oversample);
    f.randomized = !use_exact(l);
    s = f.randomized ? randomized_svd(Md, l, opt.power_iters, opt.seed, opt.stream) : exact_svd(Md);
  } else {
    // Grow the sketch until the singular values found carry the energy with
    // `oversample` columns to spare (randomized σ never exceed the true ones,
    // so the rank chosen is never too small).
    int64_t l = std::min<int64_t>(mn, 32 + opt.oversample);
    for (;;) {
      if (use_exact(l)) {
        f.randomized = false;
        s = exact_svd(Md);
        r = rank_for_energy(s.s, f.total_sq, energy);
        if (r < 0) r = static_cast<int>(mn);  // only rounding keeps Σσ² below the target
        break;
      }
      s = randomized_svd(Md, l, opt.power_iters, opt.seed, opt.stream);
      r = rank_for_energy(s.s, f.total_sq, energy);
      if (r > 0 && r + opt.oversample <= l) {
        f.randomized = true;
        break;
      }
      l *= 2;
    }
  }
  f.rank = r;
  f.sigma.assign(s.s.data(), s.s.data() + s.s.size());
  f.A.assign(static_cast<size_t>(r) * cols, 0.0f);
  f.B.assign(static_cast<size_t>(rows) * r, 0.0f);
  for (int i = 0; i < r && i < s.s.size(); ++i) {
    const double h = std::sqrt(s.s[i]);
    for (int64_t j = 0; j < cols; ++j)
      f.A[static_cast<size_t>(i) * cols + j] = static_cast<float>(h * s.V(j, i));
    for (int64_t j = 0; j < rows; ++j)
      f.B[static_cast<size_t>(j) * r + i] = static_cast<float>(s.U(j, i) * h);
  }
  return f;
}

std::string lora_module(const std::string& name, const std::vector<int64_t>& shape) {
  static const std::regex re(
      R"(^model\.layers\.\d+\.(?:self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))\.weight$)");
  std::smatch m;
  if (shape.size() != 2 || !std::regex_match(name, m, re)) return "";
  return m[1].matched ? m[1].str() : m[2].str();
}

double effective_rank(const std::vector<double>& sigma) {
  double tot = 0;
  for (double s : sigma) tot += s * s;
  if (tot <= 0) return 0;
  double h = 0;
  for (double s : sigma) {
    const double p = s * s / tot;
    if (p > 0) h -= p * std::log(p);
  }
  return std::exp(h);
}

int energy_rank(const std::vector<double>& sigma, double fraction) {
  VectorXd s = Eigen::Map<const VectorXd>(sigma.data(), static_cast<Eigen::Index>(sigma.size()));
  const int r = rank_for_energy(s, s.squaredNorm(), fraction);
  return r < 0 ? static_cast<int>(sigma.size()) : r;
}

namespace {

json num(double x) {
  return std::isfinite(x) ? json(x) : json(nullptr);
}

// The module path of a weight/bias tensor ("model.layers.0.mlp.up_proj").
std::string module_path(const std::string& tensor) {
  const auto dot = tensor.rfind('.');
  return dot == std::string::npos ? tensor : tensor.substr(0, dot);
}
std::string short_name(const std::string& module) {
  const auto dot = module.rfind('.');
  return dot == std::string::npos ? module : module.substr(dot + 1);
}

std::vector<float> load_all(const TensorView& v) {
  std::vector<float> out(v.numel());
  to_f32(v.dtype(), v.data, out.data(), out.size());
  return out;
}

double sum_sq(const std::vector<float>& x) {
  double s = 0;
  for (float e : x) s += static_cast<double>(e) * e;
  return s;
}

// ‖M − B·A‖²_F in double, from the f32 factors as written.
double residual_sq(const std::vector<float>& M, const Factors& f, int64_t rows, int64_t cols) {
  if (f.rank == 0) return sum_sq(M);
  const MatrixXd Md = Eigen::Map<const RowMatF>(M.data(), rows, cols).cast<double>();
  const MatrixXd Bd = Eigen::Map<const RowMatF>(f.B.data(), rows, f.rank).cast<double>();
  const MatrixXd Ad = Eigen::Map<const RowMatF>(f.A.data(), f.rank, cols).cast<double>();
  return (Md - Bd * Ad).squaredNorm();
}

}  // namespace

json LowrankResult::to_json() const {
  json t = json::array();
  for (const auto& x : tensors) {
    json sig = json::array();
    for (double s : x.top_sigma) sig.push_back(num(s));
    t.push_back({{"name", x.name},
                 {"module", x.module},
                 {"rows", x.rows},
                 {"cols", x.cols},
                 {"rank", x.rank},
                 {"norm", num(std::sqrt(x.norm_sq))},
                 {"energy_captured", num(x.energy)},
                 {"relative_error", num(x.rel_error)},
                 {"method", x.randomized ? "randomized" : "exact"},
                 {"top_sigma", sig}});
  }
  return {{"architecture", architecture},
          {"base_model", base_model},
          {"r", r},
          {"norm", num(std::sqrt(total_sq))},
          {"energy_captured", num(energy_captured)},
          {"unrepresentable_share", num(unrepresentable_share)},
          {"modules_to_save_share", num(modules_to_save_share)},
          {"unrepresentable", unrepresentable},
          {"modules_to_save", modules_to_save},
          {"tensors", t}};
}

LowrankResult lowrank(const fs::path& vector, const fs::path& out, const LowrankOptions& opt,
                      const Log& log) {
  const std::string where = vector.string();
  // Options first: nothing is read before they are known to make sense.
  if ((opt.rank > 0) == (opt.energy > 0))
    throw Error(where, "give exactly one of --rank and --energy");
  if (opt.rank < 0) throw Error(where, "--rank must be >= 1");
  if (!(opt.energy >= 0 && opt.energy <= 1))
    throw Error(where, "--energy must lie in (0, 1], got " + std::to_string(opt.energy));
  if (opt.oversample < 0 || opt.power_iters < 0)
    throw Error(where, "oversampling and power iterations must be >= 0");
  if (opt.modules_to_save && opt.model.empty())
    throw Error(where, "--modules-to-save writes full modules θ + v and needs --model");

  TensorSet ts(vector);
  std::unique_ptr<ModelDir> model;
  if (!opt.model.empty()) model = std::make_unique<ModelDir>(opt.model);

  LowrankResult res;
  auto meta_of = [&](const char* k) {
    auto it = ts.metadata().find(k);
    return it == ts.metadata().end() ? std::string() : it->second;
  };
  res.architecture = model ? model->config().architecture : meta_of("reasonvec.architecture");
  if (res.architecture.empty())
    throw Error(where, "unknown architecture (no reasonvec.architecture metadata): pass --model");
  if (!arch_by_hf_class(res.architecture))
    throw Error(where, "architecture " + res.architecture +
                           " has no known PEFT module map (supported: " + hf_class_names() + ")");
  res.base_model = model ? opt.model.string() : meta_of("reasonvec.base");

  // The projections (LoRA targets) and everything else.
  struct Job {
    std::string name, module;
    int64_t rows, cols;
  };
  std::vector<Job> jobs;
  std::vector<std::string> others;
  for (const auto& n : ts.names()) {
    const TensorInfo* ti = ts.find(n);
    if (!is_float_dtype(ti->dtype))
      throw Error(where, "tensor " + n + " has dtype " + std::string(dtype_name(ti->dtype)) +
                             ", not a float");
    const std::string m = lora_module(n, ti->shape);
    if (m.empty()) {
      others.push_back(n);
      continue;
    }
    jobs.push_back({n, m, ti->shape[0], ti->shape[1]});
    if (opt.rank > std::min(ti->shape[0], ti->shape[1]))
      throw Error(where, "--rank " + std::to_string(opt.rank) + " exceeds min(rows, cols) = " +
                             std::to_string(std::min(ti->shape[0], ti->shape[1])) + " of " + n);
    if (model) {
      const TensorInfo* mi = model->tensors().find(n);
      if (!mi || mi->shape != ti->shape)
        throw Error(where, "tensor " + n + " " + shape_str(ti->shape) +
                               (mi ? " has shape " + shape_str(mi->shape) : " is absent") +
                               " in the model " + opt.model.string());
    }
  }
  if (jobs.empty())
    throw Error(where, "no 2-D projection tensor (q/k/v/o_proj, gate/up/down_proj) to factorise");

  AtomicOutput output(out, AtomicOutput::Kind::kDirectory, opt.force);

  // The SVDs, one tensor per worker; factors stay in memory until the header
  // (which needs every rank) can be written.
  std::vector<Factors> factors(jobs.size());
  res.tensors.resize(jobs.size());
  parallel_for(jobs.size(), 1, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      check_interrupted();
      const Job& j = jobs[i];
      const TensorView v = ts.view(j.name);
      std::vector<float> M = load_all(v);
      release(ts, v, 0, v.numel());
      SvdOptions so;
      so.oversample = opt.oversample;
      so.power_iters = opt.power_iters;
      so.seed = opt.seed;
      so.stream = hash_name(j.name);
      factors[i] = truncated_svd(M.data(), j.rows, j.cols, opt.rank, opt.energy, so);
      const Factors& f = factors[i];
      LowrankTensorReport& t = res.tensors[i];
      t.name = j.name;
      t.module = j.module;
      t.rows = j.rows;
      t.cols = j.cols;
      t.rank = f.rank;
      t.norm_sq = f.total_sq;
      t.randomized = f.randomized;
      double kept = 0;
      for (int k = 0; k < f.rank && k < static_cast<int>(f.sigma.size()); ++k)
        kept += f.sigma[k] * f.sigma[k];
      t.energy = f.total_sq > 0 ? kept / f.total_sq : 1.0;
      t.rel_error =
          f.total_sq > 0 ? std::sqrt(residual_sq(M, f, j.rows, j.cols) / f.total_sq) : 0.0;
      for (size_t k = 0; k < std::min<size_t>(8, f.sigma.size()); ++k)
        t.top_sigma.push_back(f.sigma[k]);
    }
  });

  // Energy bookkeeping over all of v.
  double lora_sq = 0, kept_sq = 0, unrep_sq = 0, saved_sq = 0;
  for (const auto& t : res.tensors) {
    lora_sq += t.norm_sq;
    kept_sq += t.energy * t.norm_sq;
  }
  std::set<std::string> save_modules;  // short names for modules_to_save
  for (const auto& n : others) {
    const double s = sum_sq(load_all(ts.view(n)));
    const std::string mod = module_path(n);
    const bool is_bias = n.size() > 5 && n.compare(n.size() - 5, 5, ".bias") == 0;
    const bool lora_bias = is_bias && !lora_module(mod + ".weight", {1, 1}).empty();
    if (opt.modules_to_save && !lora_bias && mod != n) {
      save_modules.insert(short_name(mod));
      saved_sq += s;
    } else {
      unrep_sq += s;
      res.unrepresentable.push_back(n);
    }
  }
  res.total_sq = lora_sq + unrep_sq + saved_sq;
  res.energy_captured = res.total_sq > 0 ? kept_sq / res.total_sq : 1.0;
  res.unrepresentable_share = res.total_sq > 0 ? unrep_sq / res.total_sq : 0.0;
  res.modules_to_save_share = res.total_sq > 0 ? saved_sq / res.total_sq : 0.0;
  res.modules_to_save.assign(save_modules.begin(), save_modules.end());
  if (log && !res.unrepresentable.empty() && res.unrepresentable_share > 0)
    log(std::to_string(res.unrepresentable.size()) + " tensors of v (" +
        std::to_string(100 * res.unrepresentable_share) + " % of |v|^2) cannot be carried by LoRA" +
        (opt.modules_to_save ? " (biases of LoRA targets)" : "; see --modules-to-save"));

  // The adapter's r: the most common rank (ties: the larger one); other
  // tensors go to rank_pattern/alpha_pattern.
  std::map<int, int> count;
  for (const auto& t : res.tensors) ++count[t.rank];
  int best = 0;
  for (const auto& [rk, c] : count)
    if (c >= best) best = c, res.r = rk;

  // Tensors of adapter_model.safetensors: PEFT's names (the base model's
  // module path under "base_model.model.") and shapes.
  std::vector<TensorSpec> specs;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const std::string p = "base_model.model." + module_path(jobs[i].name);
    specs.push_back({p + ".lora_A.weight", DType::F32, {factors[i].rank, jobs[i].cols}});
    specs.push_back({p + ".lora_B.weight", DType::F32, {jobs[i].rows, factors[i].rank}});
  }
  // modules_to_save: every module of the base that PEFT wraps (its module
  // name ends with a listed name, PEFT's suffix match), stored as θ + v.
  std::vector<std::string> saved_tensors;
  if (opt.modules_to_save)
    for (const auto& n : model->tensors().names()) {
      const std::string mod = module_path(n);
      for (const auto& sm : save_modules)
        if (mod.size() >= sm.size() && mod.compare(mod.size() - sm.size(), sm.size(), sm) == 0) {
          saved_tensors.push_back(n);
          specs.push_back({"base_model.model." + n, DType::F32, model->tensors().find(n)->shape});
          break;
        }
    }

  SafetensorsWriter::Options wo;
  wo.metadata = base_metadata("lora-adapter", opt.command_line);
  wo.shard_size = ~0ull;
  wo.single_name = "adapter_model.safetensors";
  SafetensorsWriter w(output.path(), specs, wo);
  for (size_t i = 0; i < jobs.size(); ++i) {
    w.write(2 * i, 0, factors[i].A.data(), factors[i].A.size() * 4);
    w.write(2 * i + 1, 0, factors[i].B.data(), factors[i].B.size() * 4);
    std::vector<float>().swap(factors[i].A);
    std::vector<float>().swap(factors[i].B);
  }
  for (size_t k = 0; k < saved_tensors.size(); ++k) {
    const std::string& n = saved_tensors[k];
    std::vector<float> theta = load_all(model->tensors().view(n));
    if (ts.has(n)) {
      const std::vector<float> d = load_all(ts.view(n));
      if (d.size() != theta.size())
        throw Error(where, "tensor " + n + " " + shape_str(ts.find(n)->shape) +
                               " does not match the model's " +
                               shape_str(model->tensors().find(n)->shape));
      for (size_t e = 0; e < d.size(); ++e) theta[e] += d[e];
    }
    w.write(2 * jobs.size() + k, 0, theta.data(), theta.size() * 4);
  }
  w.finish();

  // adapter_config.json, PEFT's LoraConfig keys. Pattern keys are module
  // paths without the leading "model.": PEFT matches them as a regex against
  // the end of the module name after a dot (".*\.{key}$" in older releases,
  // "(.*\.)?({key})$" in newer ones), which both accept.
  json rank_pattern = json::object(), alpha_pattern = json::object();
  std::set<std::string> targets;
  for (const auto& t : res.tensors) {
    targets.insert(t.module);
    if (t.rank != res.r) {
      std::string key = module_path(t.name).substr(std::string("model.").size());
      rank_pattern[key] = t.rank;
      alpha_pattern[key] = t.rank;
    }
  }
  json cfg = {{"peft_type", "LORA"},
              {"task_type", "CAUSAL_LM"},
              {"r", res.r},
              {"lora_alpha", res.r},
              {"lora_dropout", 0.0},
              {"target_modules", std::vector<std::string>(targets.begin(), targets.end())},
              {"rank_pattern", rank_pattern},
              {"alpha_pattern", alpha_pattern},
              {"fan_in_fan_out", false},
              {"bias", "none"},
              {"use_rslora", false},
              {"use_dora", false},
              {"inference_mode", true},
              {"init_lora_weights", true},
              {"base_model_name_or_path", res.base_model},
              {"modules_to_save", opt.modules_to_save ? json(res.modules_to_save) : json(nullptr)},
              {"auto_mapping", {{"base_model_class", res.architecture}}}};
  write_file(output.path() / "adapter_config.json", cfg.dump(2) + "\n");
  json rep = res.to_json();
  rep["command"] = opt.command_line;
  rep["vector"] = vector.string();
  write_file(output.path() / "lowrank_report.json", rep.dump(2) + "\n");
  if (opt.before_commit) opt.before_commit(output.path(), res);
  output.commit();
  return res;
}

// ---------------------------------------------------------------- spectrum

json SpectrumResult::to_json(int top_k) const {
  json t = json::array();
  for (const auto& x : tensors) {
    json sig = json::array();
    for (size_t k = 0; k < x.sigma.size() && static_cast<int>(k) < top_k; ++k)
      sig.push_back(num(x.sigma[k]));
    t.push_back({{"name", x.name},
                 {"module", x.module},
                 {"layer", x.layer},
                 {"rows", x.rows},
                 {"cols", x.cols},
                 {"effective_rank", num(x.effective_rank)},
                 {"rank_90", x.rank90},
                 {"rank_99", x.rank99},
                 {"sigma", sig}});
  }
  return {{"tensors", t}};
}

SpectrumResult spectrum(const fs::path& vector) {
  TensorSet ts(vector);
  SpectrumResult r;
  for (const auto& n : ts.names()) {
    const TensorInfo* ti = ts.find(n);
    const std::string m = lora_module(n, ti->shape);
    if (m.empty() || !is_float_dtype(ti->dtype)) continue;
    SpectrumTensor t;
    t.name = n;
    t.module = m;
    t.layer = layer_index(n);
    t.rows = ti->shape[0];
    t.cols = ti->shape[1];
    r.tensors.push_back(t);
  }
  if (r.tensors.empty())
    throw Error(vector.string(),
                "no 2-D projection tensor (q/k/v/o_proj, gate/up/down_proj) for a spectrum");
  parallel_for(r.tensors.size(), 1, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      check_interrupted();
      SpectrumTensor& t = r.tensors[i];
      const std::vector<float> M = load_all(ts.view(t.name));
      const MatrixXd Md = Eigen::Map<const RowMatF>(M.data(), t.rows, t.cols).cast<double>();
      Eigen::BDCSVD<MatrixXd> svd(Md);  // values only
      const VectorXd& s = svd.singularValues();
      t.sigma.assign(s.data(), s.data() + s.size());
      t.effective_rank = effective_rank(t.sigma);
      t.rank90 = energy_rank(t.sigma, 0.9);
      t.rank99 = energy_rank(t.sigma, 0.99);
    }
  });
  return r;
}

std::string spectrum_svg(const SpectrumResult& r) {
  // Mean of log10(σ_i / σ_1) over the layers of each module kind.
  std::map<std::string, std::pair<std::vector<double>, std::vector<int>>> lines;
  for (const auto& t : r.tensors) {
    if (t.sigma.empty() || !(t.sigma[0] > 0)) continue;
    auto& [sum, cnt] = lines[t.module];
    if (sum.size() < t.sigma.size()) sum.resize(t.sigma.size(), 0.0), cnt.resize(t.sigma.size(), 0);
    for (size_t i = 0; i < t.sigma.size(); ++i)
      if (t.sigma[i] > 0) sum[i] += std::log10(t.sigma[i] / t.sigma[0]), ++cnt[i];
  }
  const int W = 720, H = 420, L = 70, R = 150, T = 30, B = 50;
  double ymin = 0;
  size_t xmax = 1;
  for (const auto& [m, sc] : lines)
    for (size_t i = 0; i < sc.first.size(); ++i)
      if (sc.second[i])
        ymin = std::min(ymin, sc.first[i] / sc.second[i]), xmax = std::max(xmax, i + 1);
  ymin = std::floor(std::max(ymin, -8.0));
  if (ymin > -1) ymin = -1;
  auto X = [&](double i) { return L + (W - L - R) * i / std::max<double>(1.0, xmax - 1); };
  auto Y = [&](double y) { return T + (H - T - B) * (y / ymin); };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << W / 2 << "\" y=\"18\" text-anchor=\"middle\">singular values of v "
    << "(mean over layers)</text>\n";
  for (int d = 0; d >= static_cast<int>(ymin); --d)
    s << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << Y(d) << "\" y2=\"" << Y(d)
      << "\" stroke=\"#ddd\"/><text x=\"" << L - 6 << "\" y=\"" << Y(d) + 4
      << "\" text-anchor=\"end\">1e" << d << "</text>\n";
  s << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 12
    << "\" text-anchor=\"middle\">index i (0 .. " << xmax - 1 << ")</text>\n"
    << "<text x=\"16\" y=\"" << (T + H - B) / 2 << "\" transform=\"rotate(-90 16 "
    << (T + H - B) / 2 << ")\" text-anchor=\"middle\">σ_i / σ_0</text>\n";
  static const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                  "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
  int k = 0;
  for (const auto& [m, sc] : lines) {
    const char* col = kColors[k % 8];
    s << "<polyline fill=\"none\" stroke=\"" << col << "\" stroke-width=\"1.5\" points=\"";
    for (size_t i = 0; i < sc.first.size(); ++i)
      if (sc.second[i]) s << X(i) << "," << Y(std::max(ymin, sc.first[i] / sc.second[i])) << " ";
    s << "\"/>\n<text x=\"" << W - R + 10 << "\" y=\"" << T + 16 * (k + 1) << "\" fill=\"" << col
      << "\">" << m << "</text>\n";
    ++k;
  }
  s << "</svg>\n";
  return s.str();
}

}  // namespace rv::vec
