// The engine's matrix product (kern::matmul_rows) alone, on the prefill
// shapes of the Qwen2.5 models, one thread: GFLOP/s, the fraction of the
// machine's measured one-thread peak (bench_machine_info's JSON via
// --machine or $RV_BENCH_MACHINE, as bench/run-all.sh sets it), and an
// FNV-1a hash of the outputs so two builds or ISAs can be compared for
// bit-identical results. Prefill spends most of its time here, so this is
// where a kernel change is judged before the whole-model benches.
// Usage: bench_matmul_kernels [--tokens T] [--shapes 0.5b,1.5b,7b]
//                             [--isa scalar|avx2|avx512bf16] [--dtype bf16|f32]
//                             [--machine FILE.json] [--seconds S] [--matrix NxK]
//                             [--cold]
// --matrix NxK adds one N x K matrix (any sizes: tails and odd K included),
// e.g. to compare hashes of two kernels on shapes the models do not have.
// --cold cycles through copies of each matrix (512 MiB in all), so every
// call reads its weights from memory as decode does, not from a warm L3;
// GB/s is the weights' bytes read per second.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "engine/kernels.h"
#include "lib/fnv1a.h"

using namespace rv::engine;
using Clock = std::chrono::steady_clock;

namespace {

struct Mat {
  const char* name;
  int64_t n, k;
};

struct Shape {
  const char* name;
  std::vector<Mat> mats;
};

// Output rows x inner dimension of each distinct projection of one layer.
std::vector<Shape> shapes() {
  return {
      {"0.5b", {{"q/o", 896, 896}, {"k/v", 128, 896}, {"gate/up", 4864, 896}, {"down", 896, 4864}}},
      {"1.5b",
       {{"q/o", 1536, 1536}, {"k/v", 256, 1536}, {"gate/up", 8960, 1536}, {"down", 1536, 8960}}},
      {"7b",
       {{"q/o", 3584, 3584}, {"k/v", 512, 3584}, {"gate/up", 18944, 3584}, {"down", 3584, 18944}}}};
}

double peak_from(const std::string& file, bool bf16) {
  std::ifstream f(file);
  if (!f) return 0;
  const auto j = nlohmann::json::parse(f, nullptr, false);
  const char* key = bf16 ? "bf16" : "f32";
  if (j.is_discarded() || !j.contains("peak") || !j["peak"].contains(key)) return 0;
  return j["peak"][key].value("flops_1t", 0.0);
}

}  // namespace

int main(int argc, char** argv) {
  int T = 512;
  double seconds = 1.0;
  bool cold = false;
  std::string shapes_arg = "0.5b", machine, dtype = "bf16";
  std::vector<Shape> list = shapes();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        fprintf(stderr, "%s needs a value\n", a.c_str());
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--tokens")
      T = std::stoi(val());
    else if (a == "--shapes")
      shapes_arg = val();
    else if (a == "--machine")
      machine = val();
    else if (a == "--seconds")
      seconds = std::stod(val());
    else if (a == "--dtype")
      dtype = val();
    else if (a == "--cold")
      cold = true;
    else if (a == "--matrix") {
      const std::string v = val();
      const size_t x = v.find('x');
      if (x == std::string::npos) {
        fprintf(stderr, "--matrix wants NxK, e.g. 896x4864\n");
        return 2;
      }
      list.push_back(
          {"custom", {{"custom", std::stoll(v.substr(0, x)), std::stoll(v.substr(x + 1))}}});
      shapes_arg += ",custom";
    } else if (a == "--isa") {
      const std::string v = val();
      kern::set_isa(v == "scalar" ? kern::Isa::kScalar
                    : v == "avx2" ? kern::Isa::kAvx2
                                  : kern::Isa::kAvx512Bf16);
    } else {
      fprintf(stderr,
              "usage: %s [--tokens T] [--shapes 0.5b,1.5b,7b] [--isa scalar|avx2|avx512bf16]\n"
              "          [--dtype bf16|f32] [--machine FILE.json] [--seconds S] [--matrix NxK]\n"
              "          [--cold]\n",
              argv[0]);
      return a == "--help" ? 0 : 2;
    }
  }
  if (machine.empty() && std::getenv("RV_BENCH_MACHINE")) machine = std::getenv("RV_BENCH_MACHINE");
  const bool bf16 = dtype == "bf16";
  const double peak = machine.empty() ? 0 : peak_from(machine, bf16);
  printf("matmul_rows, 1 thread, %d tokens, %s weights, isa %s, weights %s%s\n", T, dtype.c_str(),
         kern::isa_name(kern::isa()), cold ? "cold (512 MiB of copies)" : "warm (one copy)",
         peak > 0 ? "" : " (no --machine: no %peak)");
  printf("%-6s %-8s %6s %6s %9s %7s %7s  %s\n", "shape", "matrix", "N", "K", "GFLOP/s", "%peak",
         "GB/s", "hash");
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (const Shape& s : list) {
    if (shapes_arg.find(s.name) == std::string::npos) continue;
    for (const Mat& m : s.mats) {
      std::vector<float> X(static_cast<size_t>(T) * m.k), Y(static_cast<size_t>(T) * m.n);
      for (float& x : X) x = nd(rng);
      std::vector<uint16_t> wb;
      std::vector<float> wf;
      const size_t elems = static_cast<size_t>(m.n) * m.k;
      const size_t bytes = elems * (bf16 ? 2 : 4);
      const size_t copies =
          cold ? std::max<size_t>(1, ((size_t{512} << 20) + bytes - 1) / bytes) : 1;
      std::vector<kern::WeightView> Ws(copies);
      if (bf16) {
        wb.resize(elems * copies);
        for (size_t i = 0; i < elems; ++i) wb[i] = rv::f32_to_bf16(nd(rng) * 0.05f);
      } else {
        wf.resize(elems * copies);
        for (size_t i = 0; i < elems; ++i) wf[i] = nd(rng) * 0.05f;
      }
      // The first copy's bytes, repeated.
      auto* base =
          bf16 ? reinterpret_cast<uint8_t*>(wb.data()) : reinterpret_cast<uint8_t*>(wf.data());
      for (size_t c = 0; c < copies; ++c) {
        if (c > 0) std::memcpy(base + bytes * c, base, bytes);
        Ws[c] = {base + bytes * c, bf16 ? rv::DType::BF16 : rv::DType::F32, m.n, m.k};
      }
      kern::matmul_rows(X.data(), m.k, T, Ws[0], 0, m.n, Y.data(), m.n);  // warm-up
      int reps = 0;
      const auto t0 = Clock::now();
      double el = 0;
      do {
        kern::matmul_rows(X.data(), m.k, T, Ws[reps % copies], 0, m.n, Y.data(), m.n);
        ++reps;
        el = std::chrono::duration<double>(Clock::now() - t0).count();
      } while (el < seconds);
      const double flops = 2.0 * T * m.n * m.k * reps / el;
      char pk[16] = "-";
      if (peak > 0) snprintf(pk, sizeof pk, "%.0f%%", 100 * flops / peak);
      printf("%-6s %-8s %6lld %6lld %9.1f %7s %7.1f  %016llx\n", s.name, m.name,
             static_cast<long long>(m.n), static_cast<long long>(m.k), flops / 1e9, pk,
             double(bytes) * reps / el / 1e9, static_cast<unsigned long long>(fnv1a(Y)));
    }
  }
  return 0;
}
