// Training throughput of rv::train::TrainModel.
//
// Workload: the default lab model (ModelShape defaults: vocab 1024, hidden
// 128, 4 layers, 4 query / 2 KV heads, intermediate 384, tied embeddings),
// seeded init, a fixed batch of ROWS x T random tokens (default 16 x 128, one
// document per row), next-token cross-entropy. One step = forward +
// cross_entropy + backward + clip_grad_norm + AdamW (weight decay 0.1).
// After one warm-up step, STEPS steps are timed; prints a table of the
// per-phase milliseconds per step and tokens/s (rows * T per step).
//
// bench/train_vs_torch.sh runs this next to PyTorch on the same model.
//
// Usage: bench_train_throughput [--threads N] [--steps N] [--rows N] [--T N]
// Not part of ctest.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/parallel.h"
#include "train/model.h"
#include "train/optim.h"

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) try {
  int threads = 0, steps = 10, rows = 16, T = 128;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() {
      if (i + 1 >= argc) throw rv::Error("bench_train_throughput: " + a + " needs a value");
      return std::atoi(argv[++i]);
    };
    if (a == "--threads")
      threads = val();
    else if (a == "--steps")
      steps = val();
    else if (a == "--rows")
      rows = val();
    else if (a == "--T")
      T = val();
    else
      throw rv::Error("bench_train_throughput: unknown argument " + a);
  }
  if (threads > 0) rv::set_num_threads(threads);
  threads = rv::num_threads();

  const rv::train::ModelShape shape;
  rv::train::TrainModel m(shape, {.threads = threads});
  m.init(1);
  rv::train::AdamW opt(m.params(), {.weight_decay = 0.1});
  rv::train::Batch b;
  b.rows = rows;
  b.T = T;
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < rows * T; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    b.tokens.push_back(int32_t(x % uint64_t(shape.vocab)));
    b.pos.push_back(i % T);
    b.seg.push_back(0);
  }
  std::vector<int32_t> targets(b.tokens.size());
  for (size_t i = 0; i < targets.size(); ++i)
    targets[i] = (i + 1) % size_t(T) != 0 ? b.tokens[i + 1] : -1;
  int counted = 0;
  for (int32_t t : targets) counted += t >= 0;

  double t_fwd = 0, t_bwd = 0, t_opt = 0, loss = 0;
  std::vector<float> dlogits;
  for (int s = 0; s <= steps; ++s) {
    const double t0 = now_s();
    const auto& logits = m.forward(b);
    loss = rv::train::cross_entropy(logits, shape.vocab, targets, counted, dlogits);
    const double t1 = now_s();
    m.zero_grad();
    m.backward(dlogits);
    const double t2 = now_s();
    rv::train::clip_grad_norm(m.grads(), 1.0);
    opt.step(m.params(), m.grads(), 1e-3);
    const double t3 = now_s();
    if (s == 0) continue;  // warm-up
    t_fwd += t1 - t0;
    t_bwd += t2 - t1;
    t_opt += t3 - t2;
  }
  const double per = (t_fwd + t_bwd + t_opt) / steps;
  std::printf(
      "reasonvec TrainModel: vocab %d hidden %d layers %d heads %d/%d inter %d, batch %d x %d, "
      "threads %d\n",
      shape.vocab, shape.hidden, shape.layers, shape.heads, shape.kv_heads, shape.intermediate,
      rows, T, threads);
  std::printf("%-28s %10s\n", "phase", "ms/step");
  std::printf("%-28s %10.2f\n", "forward + cross_entropy", 1e3 * t_fwd / steps);
  std::printf("%-28s %10.2f\n", "backward", 1e3 * t_bwd / steps);
  std::printf("%-28s %10.2f\n", "clip + AdamW", 1e3 * t_opt / steps);
  std::printf("%-28s %10.2f\n", "total", 1e3 * per);
  std::printf("final loss %.4f\n", loss);
  std::printf("tokens_per_s %.1f\n", double(rows) * T / per);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_train_throughput: %s\n", e.what());
  return 1;
}
