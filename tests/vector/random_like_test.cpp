// vec::random_like against an independent single-threaded reference: same
// draws, per-tensor norms equal to the input's, f32 bytes as computed here.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "formats/dtype.h"
#include "formats/model_dir.h"
#include "formats/synth.h"
#include "vector/vector.h"

namespace fs = std::filesystem;

TEST(RandomLike, MatchesReferenceDrawsAndNorms) {
  fs::path dir = fs::temp_directory_path() / ("rv_random_like_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  rv::SynthOptions base;
  base.layers = 2;
  base.hidden = 32;
  base.vocab = 50;
  base.seed = 3;
  rv::synth_model(base, dir / "a", false);
  rv::SynthOptions tuned = base;
  tuned.delta_scale = 0.01;
  tuned.delta_seed = 9;
  rv::synth_model(tuned, dir / "b", false);
  rv::vec::extract(dir / "a", dir / "b", dir / "v.safetensors", {}, nullptr);
  const uint64_t seed = 42;
  rv::vec::random_like(dir / "v.safetensors", seed, dir / "r.safetensors");

  rv::TensorSet v(dir / "v.safetensors"), r(dir / "r.safetensors");
  ASSERT_EQ(v.names(), r.names());
  EXPECT_EQ(r.metadata().at("reasonvec.kind"), "random-control");
  EXPECT_EQ(r.metadata().at("reasonvec.seed"), "42");
  for (const auto& name : v.names()) {
    rv::TensorView tv = v.view(name), tr = r.view(name);
    ASSERT_EQ(tr.dtype(), rv::DType::F32);
    ASSERT_EQ(tr.shape(), tv.shape());
    const uint64_t n = tv.numel();
    std::vector<float> x(n);
    rv::to_f32(tv.dtype(), tv.data, x.data(), n);
    double vs = 0, rs = 0;
    for (uint64_t i = 0; i < n; ++i) {
      vs += double(x[i]) * x[i];
      double d = rv::synth_normal(seed, rv::hash_name(name), i);
      rs += d * d;
    }
    const double scale = std::sqrt(vs) / std::sqrt(rs);
    const float* got = reinterpret_cast<const float*>(tr.data);
    double gs = 0;
    for (uint64_t i = 0; i < n; ++i) {
      float want =
          static_cast<float>(scale * double(rv::synth_normal(seed, rv::hash_name(name), i)));
      ASSERT_EQ(got[i], want) << name << "[" << i << "]";
      gs += double(got[i]) * got[i];
    }
    EXPECT_NEAR(std::sqrt(gs), std::sqrt(vs), 1e-5 * std::sqrt(vs)) << name;
  }
  fs::remove_all(dir);
}
