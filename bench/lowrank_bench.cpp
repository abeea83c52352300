// Low-rank extraction benchmark.
//
// Workloads (named here, printed as tables):
//  1. `lowrank --rank 64` over a Qwen2.5-1.5B-shaped f32 vector: hidden 1536,
//     12 heads / 2 KV heads of head_dim 128, intermediate 8960, N layers
//     (default 4: the full 28 layers are a 5.2 GB vector, `--layers 28` runs
//     them). Each projection is rank-32 signal (σ decaying as 1/(1+i)) plus
//     Gaussian noise at 1 % of the signal's RMS; norms and q/k/v biases carry
//     small noise (embeddings are left out: 0.9 GB, and LoRA cannot carry
//     them anyway). Reports wall time, peak RSS (getrusage of this process;
//     the vector is generated in a child so its memory is not counted),
//     the share of ‖v‖² captured and the mean relative error.
//  2. Baseline in the same process: exact BDCSVD (SvdOptions::force_exact)
//     against the randomized SVD (p = 10, q = 2) at rank 64 on one o_proj
//     (1536 × 1536): time and the worst relative error of the top-64 σ.
//
// Usage: bench_lowrank [--layers N] [--dir SCRATCH_DIR]
// Not part of ctest.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <Eigen/Dense>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/parallel.h"
#include "formats/safetensors.h"
#include "formats/synth.h"
#include "vector/lowrank.h"

namespace fs = std::filesystem;
using RowMatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace {

constexpr int64_t kHidden = 1536, kKv = 256, kInter = 8960, kSignalRank = 32;

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

RowMatF low_rank_plus_noise(int64_t m, int64_t n, uint64_t stream) {
  RowMatF B(m, kSignalRank), A(kSignalRank, n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < kSignalRank; ++j)
      B(i, j) = rv::synth_normal(1, 2 * stream, i * kSignalRank + j) / (1.0f + j);
  for (int64_t i = 0; i < kSignalRank; ++i)
    for (int64_t j = 0; j < n; ++j) A(i, j) = rv::synth_normal(1, 2 * stream + 1, i * n + j);
  RowMatF M = B * A;
  const float noise = 0.01f * std::sqrt(M.squaredNorm() / M.size());
  for (int64_t i = 0; i < M.size(); ++i)
    M.data()[i] += noise * rv::synth_normal(2, stream, static_cast<uint64_t>(i));
  return M;
}

void write_vector(const fs::path& file, int layers) {
  struct T {
    std::string name;
    std::vector<int64_t> shape;
    bool proj;
  };
  std::vector<T> ts;
  for (int l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    ts.push_back({p + "input_layernorm.weight", {kHidden}, false});
    ts.push_back({p + "self_attn.q_proj.weight", {kHidden, kHidden}, true});
    ts.push_back({p + "self_attn.q_proj.bias", {kHidden}, false});
    ts.push_back({p + "self_attn.k_proj.weight", {kKv, kHidden}, true});
    ts.push_back({p + "self_attn.k_proj.bias", {kKv}, false});
    ts.push_back({p + "self_attn.v_proj.weight", {kKv, kHidden}, true});
    ts.push_back({p + "self_attn.v_proj.bias", {kKv}, false});
    ts.push_back({p + "self_attn.o_proj.weight", {kHidden, kHidden}, true});
    ts.push_back({p + "post_attention_layernorm.weight", {kHidden}, false});
    ts.push_back({p + "mlp.gate_proj.weight", {kInter, kHidden}, true});
    ts.push_back({p + "mlp.up_proj.weight", {kInter, kHidden}, true});
    ts.push_back({p + "mlp.down_proj.weight", {kHidden, kInter}, true});
  }
  ts.push_back({"model.norm.weight", {kHidden}, false});
  std::vector<rv::TensorSpec> specs;
  for (const auto& t : ts) specs.push_back({t.name, rv::DType::F32, t.shape});
  rv::SafetensorsWriter::Options wo;
  wo.single_name = file.filename().string();
  wo.shard_size = ~0ull;
  wo.metadata["reasonvec.architecture"] = "Qwen2ForCausalLM";
  rv::SafetensorsWriter w(file.parent_path(), specs, wo);
  rv::parallel_for(ts.size(), 1, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      if (ts[i].proj) {
        RowMatF M = low_rank_plus_noise(ts[i].shape[0], ts[i].shape[1], i);
        w.write(i, 0, M.data(), M.size() * 4);
      } else {
        std::vector<float> x(ts[i].shape[0]);
        for (size_t k = 0; k < x.size(); ++k) x[k] = 1e-3f * rv::synth_normal(3, i, k);
        w.write(i, 0, x.data(), x.size() * 4);
      }
    }
  });
  w.finish();
}

}  // namespace

int main(int argc, char** argv) {
  int layers = 4;
  fs::path dir = fs::temp_directory_path() / ("rv_lowrank_bench_" + std::to_string(getpid()));
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--layers")) layers = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
  }
  fs::create_directories(dir);
  const fs::path vec = dir / "v.safetensors";
  printf("lowrank bench: Qwen2.5-1.5B-shaped vector, %d layers, %d threads\n", layers,
         rv::num_threads());

  double t0 = now();
  const pid_t pid = fork();
  if (pid == 0) {
    write_vector(vec, layers);
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "vector generation failed\n");
    return 1;
  }
  printf("generated %s (%.2f GB) in %.1f s\n", vec.c_str(), fs::file_size(vec) / 1e9, now() - t0);

  rv::vec::LowrankOptions o;
  o.rank = 64;
  t0 = now();
  const auto r = rv::vec::lowrank(vec, dir / "adapter", o, nullptr);
  const double t_lr = now() - t0;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double err = 0;
  int randomized = 0;
  for (const auto& t : r.tensors) err += t.rel_error, randomized += t.randomized;
  printf("\n%-28s %10s %12s %10s %12s %14s\n", "workload", "time s", "peak RSS MB", "tensors",
         "energy", "mean rel.err");
  printf("%-28s %10.1f %12.0f %10zu %12.6f %14.4f\n", "lowrank --rank 64", t_lr,
         ru.ru_maxrss / 1024.0, r.tensors.size(), r.energy_captured, err / r.tensors.size());
  printf("(randomized SVD on %d tensors, exact on %zu; unrepresentable share %.2e)\n", randomized,
         r.tensors.size() - randomized, r.unrepresentable_share);

  // Baseline: exact vs randomized on one o_proj.
  const RowMatF M = low_rank_plus_noise(kHidden, kHidden, 7);
  rv::vec::SvdOptions ex;
  ex.force_exact = true;
  t0 = now();
  const auto fe = rv::vec::truncated_svd(M.data(), kHidden, kHidden, 64, 0, ex);
  const double t_ex = now() - t0;
  t0 = now();
  const auto fr = rv::vec::truncated_svd(M.data(), kHidden, kHidden, 64, 0, {});
  const double t_rd = now() - t0;
  // σ 1..32 carry the signal, 33..64 are the noise floor (nearly equal
  // values, which a sketch of 74 columns resolves only roughly).
  double worst_sig = 0, worst_noise = 0;
  for (int i = 0; i < 64; ++i) {
    const double e = std::abs(fr.sigma[i] - fe.sigma[i]) / fe.sigma[i];
    (i < kSignalRank ? worst_sig : worst_noise) =
        std::max(i < kSignalRank ? worst_sig : worst_noise, e);
  }
  double res_e = 0, res_r = 0;
  {
    const Eigen::MatrixXd Md = M.cast<double>();
    auto res = [&](const rv::vec::Factors& f) {
      const RowMatF B = Eigen::Map<const RowMatF>(f.B.data(), kHidden, 64);
      const RowMatF A = Eigen::Map<const RowMatF>(f.A.data(), 64, kHidden);
      return (Md - (B.cast<double>() * A.cast<double>())).norm() / Md.norm();
    };
    res_e = res(fe);
    res_r = res(fr);
  }
  printf("\n%-26s %8s %16s %16s %12s\n", "1536x1536 rank 64", "time s", "max rel.err σ1-32",
         "max rel.err σ33-64", "rel. resid");
  printf("%-26s %8.2f %16s %16s %12.6f\n", "exact BDCSVD (baseline)", t_ex, "-", "-", res_e);
  printf("%-26s %8.2f %16.2e %16.2e %12.6f\n", "randomized p=10 q=2", t_rd, worst_sig, worst_noise,
         res_r);
  fs::remove_all(dir);
  return 0;
}
