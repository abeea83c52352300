#include <atomic>
#include <set>

#include "common/error.h"
#include "common/file.h"
#include "common/progress.h"
#include "vector/internal.h"
#include "vector/kernels.h"
#include "vector/vector.h"

namespace rv::vec {

using namespace detail;

ExtractResult extract(const fs::path& base_p, const fs::path& tuned_p, const fs::path& out,
                      const ExtractOptions& opt, const Log& log) {
  if (!is_float_dtype(opt.dtype)) throw Error("--dtype: a vector must be f32, bf16 or f16");
  Opened base = open_any(base_p), tuned = open_any(tuned_p);
  const TensorSet& B = *base.set;
  const TensorSet& T = *tuned.set;
  NameFilter keep(opt.include, opt.exclude);
  ExtractResult r;

  if (base.config && tuned.config) {
    const ModelConfig &a = *base.config, &b = *tuned.config;
    if (a.architecture != b.architecture)
      log("warning: architectures differ: " + base_p.string() + " is " + a.architecture + ", " +
          tuned_p.string() + " is " + b.architecture);
  }

  std::vector<std::string> names;
  for (const auto& n : B.names()) {
    if (!keep(n)) {
      r.filtered_out.push_back(n);
      continue;
    }
    if (!T.has(n)) {
      r.only_in_base.push_back(n);
      continue;
    }
    names.push_back(n);
  }
  for (const auto& n : T.names())
    if (keep(n) && !B.has(n)) r.only_in_tuned.push_back(n);
  if (opt.strict && (!r.only_in_base.empty() || !r.only_in_tuned.empty())) {
    const std::string& n = r.only_in_base.empty() ? r.only_in_tuned[0] : r.only_in_base[0];
    throw Error((r.only_in_base.empty() ? tuned_p : base_p).string(),
                "tensor '" + n + "' is present in only one model (" +
                    std::to_string(r.only_in_base.size() + r.only_in_tuned.size()) +
                    " such tensors; --strict)");
  }
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size() && i < 3; ++i) s += (i ? ", " : "") + v[i];
    if (v.size() > 3) s += ", ...";
    return s;
  };
  if (!r.only_in_base.empty())
    log("note: skipped " + std::to_string(r.only_in_base.size()) + " tensor(s) only in " +
        base_p.string() + ": " + list(r.only_in_base));
  if (!r.only_in_tuned.empty())
    log("note: skipped " + std::to_string(r.only_in_tuned.size()) + " tensor(s) only in " +
        tuned_p.string() + ": " + list(r.only_in_tuned));

  std::vector<TensorSpec> specs;
  for (const auto& n : names) {
    TensorView a = B.view(n), b = T.view(n);
    if (a.shape() != b.shape())
      throw Error(tuned_p.string(), "tensor '" + n + "' has shape " + shape_str(b.shape()) +
                                        " but " + base_p.string() + " has " + shape_str(a.shape()));
    if (!is_float_dtype(a.dtype()) || !is_float_dtype(b.dtype()))
      throw Error(base_p.string(),
                  "tensor '" + n + "' has non-float dtype " + std::string(dtype_name(a.dtype())) +
                      "/" + std::string(dtype_name(b.dtype())) + " (exclude it with --exclude)");
    specs.push_back({n, opt.dtype, a.shape()});
  }
  if (specs.empty())
    throw Error(base_p.string(),
                "no tensors in common with " + tuned_p.string() + " after filtering");

  auto meta = base_metadata("reasoning-vector", opt.command_line);
  meta["reasonvec.base"] = base_p.string();
  meta["reasonvec.tuned"] = tuned_p.string();
  meta["reasonvec.base_config_sha256"] = model_config_identity(base_p);
  meta["reasonvec.tuned_config_sha256"] = model_config_identity(tuned_p);
  meta["reasonvec.dtype"] = std::string(dtype_name(opt.dtype));
  if (!opt.include.empty()) meta["reasonvec.include"] = opt.include;
  if (!opt.exclude.empty()) meta["reasonvec.exclude"] = opt.exclude;
  if (base.config) {
    const ModelConfig& c = *base.config;
    meta["reasonvec.architecture"] = c.architecture;
    meta["reasonvec.hidden_size"] = std::to_string(c.hidden_size);
    meta["reasonvec.num_hidden_layers"] = std::to_string(c.num_layers);
    meta["reasonvec.vocab_size"] = std::to_string(c.vocab_size);
    meta["reasonvec.tie_word_embeddings"] = c.tie_word_embeddings ? "true" : "false";
  }

  uint64_t total = 0;
  for (auto& s : specs) total += s.nbytes();
  const bool sharded = total > opt.shard_size;
  AtomicOutput output(out, sharded ? AtomicOutput::Kind::kDirectory : AtomicOutput::Kind::kFile,
                      opt.force);
  SafetensorsWriter::Options wo;
  wo.shard_size = opt.shard_size;
  wo.metadata = meta;
  fs::path dir = output.path();
  if (!sharded) {
    wo.single_name = output.path().filename().string();
    dir = output.path().parent_path();
    if (dir.empty()) dir = ".";
  }
  SafetensorsWriter w(dir, specs, wo);

  uint64_t in_bytes = 0;
  for (auto& n : names) in_bytes += B.find(n)->nbytes() + T.find(n)->nbytes();
  Progress prog("extract", in_bytes, Progress::Unit::kBytes);
  std::atomic<uint64_t> nonfinite{0};
  const size_t osz = dtype_size(opt.dtype);
  std::vector<TensorView> as, bs;
  std::vector<ViewSource> asrc, bsrc;  // their files, for pread
  std::vector<uint64_t> numel;
  for (const auto& n : names) {
    as.push_back(B.view(n));
    bs.push_back(T.view(n));
    asrc.push_back(source_of(B, as.back()));
    bsrc.push_back(source_of(T, bs.back()));
    numel.push_back(as.back().numel());
    r.elements += numel.back();
  }
  for_all_tiles(numel, [&](size_t i, uint64_t lo, uint64_t hi) {
    const TensorView &a = as[i], &b = bs[i];
    const size_t ias = dtype_size(a.dtype()), ibs = dtype_size(b.dtype());
    const size_t n = hi - lo;
    uint8_t* ob = scratch_bytes(n * osz).data();
    uint64_t bad = 0;
    if (has_fused(a.dtype(), b.dtype(), opt.dtype)) {
      // pread into cache-sized buffers rather than reading the mappings
      // (see MappedFile::read): no page faults, no unmapping afterwards.
      for (uint64_t c0 = lo; c0 < hi; c0 += kReadChunk) {
        const uint64_t c1 = std::min(hi, c0 + kReadChunk);
        uint8_t* ab = scratch_bytes(1, (c1 - c0) * ias).data();
        uint8_t* bb = scratch_bytes(2, (c1 - c0) * ibs).data();
        asrc[i].read(c0, c1, ab);
        bsrc[i].read(c0, c1, bb);
        fused_diff(a.dtype(), ab, b.dtype(), bb, opt.dtype, ob + (c0 - lo) * osz, c1 - c0, &bad);
      }
    } else {
      for_chunks(lo, hi, [&](uint64_t c0, uint64_t c1, float* x, float* y) {
        const size_t m = c1 - c0;
        load_f32(a, c0, c1, x);
        load_f32(b, c0, c1, y);
        for (size_t k = 0; k < m; ++k) y[k] = y[k] - x[k];
        bad += count_nonfinite(y, m);
        from_f32(opt.dtype, y, ob + (c0 - lo) * osz, m);
      });
      release(B, a, lo, hi);
      release(T, b, lo, hi);
    }
    if (bad) nonfinite += bad;
    w.write(i, lo * osz, ob, n * osz);
    prog.add(n * (ias + ibs));
  });
  prog.finish();
  r.nonfinite = nonfinite.load();
  if (r.nonfinite) {
    std::string m =
        std::to_string(r.nonfinite) + " non-finite value(s) (NaN/Inf) in the difference";
    if (opt.fail_on_nonfinite) throw Error(out.string(), m + " (--fail-on-nonfinite)");
    log("warning: " + m);
  }
  w.finish();
  output.commit();
  r.tensors = specs.size();
  r.bytes_written = total;
  return r;
}

}  // namespace rv::vec
