#include <cmath>

#include "common/error.h"
#include "common/file.h"
#include "formats/synth.h"
#include "vector/internal.h"
#include "vector/sparsify.h"
#include "vector/vector.h"

namespace rv::vec {

using namespace detail;

void random_like(const fs::path& v, uint64_t seed, const fs::path& out) {
  VectorReader ts(v);  // a sparse vector's control is dense, with its norms
  std::vector<TensorSpec> specs;
  std::vector<uint64_t> numel, streams;
  for (const auto& name : ts.names()) {
    specs.push_back({name, DType::F32, ts.shape(name)});
    numel.push_back(ts.numel(name));
    streams.push_back(hash_name(name));
  }

  // Pass 1: per tile, Σ v² and Σ r² in double, summed per tensor in tile
  // order afterwards so the scale does not depend on the thread count.
  std::vector<std::vector<double>> vsq(specs.size()), rsq(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    vsq[i].assign((numel[i] + kTile - 1) / kTile, 0.0);
    rsq[i].assign(vsq[i].size(), 0.0);
  }
  for_all_tiles(numel, [&](size_t i, uint64_t lo, uint64_t hi) {
    std::vector<float>& buf = scratch(0, kTile);
    ts.read_f32(specs[i].name, lo, hi, buf.data());
    double vs = 0, rs = 0;
    for (uint64_t k = lo; k < hi; ++k) {
      vs += static_cast<double>(buf[k - lo]) * buf[k - lo];
      double r = synth_normal(seed, streams[i], k);
      rs += r * r;
    }
    vsq[i][lo / kTile] = vs;
    rsq[i][lo / kTile] = rs;
    ts.release(specs[i].name, lo, hi);
  });
  std::vector<double> scale(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    double vs = 0, rs = 0;
    for (size_t k = 0; k < vsq[i].size(); ++k) {
      vs += vsq[i][k];
      rs += rsq[i][k];
    }
    scale[i] = rs > 0 ? std::sqrt(vs) / std::sqrt(rs) : 0.0;
  }

  // Pass 2: the scaled draws.
  AtomicOutput output(out, AtomicOutput::Kind::kFile, /*force=*/true);
  SafetensorsWriter::Options wo;
  wo.metadata = ts.metadata();
  wo.metadata.erase("reasonvec.sparse");  // the control is stored densely
  wo.metadata["reasonvec.kind"] = "random-control";
  wo.metadata["reasonvec.seed"] = std::to_string(seed);
  wo.metadata["reasonvec.norms_of"] = v.string();
  wo.shard_size = ~0ull;
  wo.single_name = output.path().filename().string();
  fs::path dir = output.path().parent_path();
  if (dir.empty()) dir = ".";
  SafetensorsWriter w(dir, specs, wo);
  for_all_tiles(numel, [&](size_t i, uint64_t lo, uint64_t hi) {
    std::vector<float>& buf = scratch(0, kTile);
    for (uint64_t k = lo; k < hi; ++k)
      buf[k - lo] =
          static_cast<float>(scale[i] * static_cast<double>(synth_normal(seed, streams[i], k)));
    w.write(i, lo * 4, buf.data(), (hi - lo) * 4);
  });
  w.finish();
  output.commit();
}

}  // namespace rv::vec
