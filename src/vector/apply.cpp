#include <atomic>
#include <cstdio>
#include <cstring>
#include <set>

#include "common/error.h"
#include "common/file.h"
#include "common/progress.h"
#include "vector/internal.h"
#include "vector/kernels.h"
#include "vector/sparsify.h"
#include "vector/vector.h"

namespace rv::vec {

using namespace detail;
using json = nlohmann::json;

namespace {

// One addend of an output tensor: alpha * vector[tensor], over the first
// `rows` rows (all of them unless the vocabulary sizes differ).
struct Addend {
  size_t term;
  std::string tensor;
  int64_t rows;
};

struct Planned {
  std::string name;    // output tensor name
  std::string source;  // target tensor it starts from
  DType dtype;
  std::vector<Addend> adds;
};

std::string fmt_alpha(double a) {
  char b[32];
  snprintf(b, sizeof b, "%g", a);
  return b;
}

std::string model_card(const fs::path& target, const std::vector<ApplyTerm>& terms,
                       const std::vector<std::unique_ptr<VectorReader>>& vecs,
                       const ApplyOptions& opt, DType out_dtype,
                       const std::vector<std::string>& notes,
                       const std::vector<std::string>& unchanged) {
  std::string s = "---\nbase_model: " + target.filename().string() +
                  "\ntags:\n- reasonvec\n- reasoning-vector\n- merge\n---\n\n";
  s += "# " + target.filename().string() + " + reasoning vector\n\n";
  s += "This model was made with reasonvec " RV_VERSION " by adding reasoning vector(s) to `" +
       target.string() + "`:\n\n";
  s += "θ_new = θ_target + Σ αᵢ · vᵢ, computed in float32 and rounded once to " +
       std::string(dtype_name(out_dtype)) + " (round to nearest even).\n\n";
  s += "| vector | α | extracted from base (SFT) | and tuned (GRPO) |\n|---|---|---|---|\n";
  for (size_t i = 0; i < terms.size(); ++i) {
    const auto& m = vecs[i]->metadata();
    auto get = [&](const char* k) {
      auto it = m.find(k);
      return it == m.end() ? std::string("?") : it->second;
    };
    s += "| `" + terms[i].vector.string() + "` | " + fmt_alpha(terms[i].alpha) + " | `" +
         get("reasonvec.base") + "` | `" + get("reasonvec.tuned") + "` |\n";
  }
  if (opt.method != "linear")
    s += "\nMerge method `" + opt.method +
         "` (mergekit semantics, see reasonvec's docs/vectors.md): "
         "density " +
         fmt_alpha(opt.density) + ", epsilon " + fmt_alpha(opt.epsilon) + ", gamma " +
         fmt_alpha(opt.gamma) + ", lambda " + fmt_alpha(opt.lambda) + ", seed " +
         std::to_string(opt.seed) + ", normalize " + (opt.normalize ? "true" : "false") + ".\n";
  s += "\nA positive α adds the reasoning behaviour that GRPO training put into the tuned model; a "
       "negative α removes it.\n";
  if (!notes.empty()) {
    s += "\n## Notes\n\n";
    for (const auto& n : notes) s += "- " + n + "\n";
  }
  if (!unchanged.empty()) {
    s += "\n## Tensors left unchanged (--partial)\n\nThe vector(s) do not cover these " +
         std::to_string(unchanged.size()) + " target tensors; they are the target's own:\n\n";
    for (const auto& n : unchanged) s += "- `" + n + "`\n";
  }
  if (!opt.command_line.empty()) s += "\n## Command\n\n```\n" + opt.command_line + "\n```\n";
  return s;
}

// Refuses (unless opt.partial) a vector whose recorded source config differs
// from the target's, or that leaves target weights untouched; with partial,
// records the untouched weights in r.unchanged.
void check_coverage(const fs::path& target_p, const ModelDir& target,
                    const std::vector<ApplyTerm>& terms,
                    const std::vector<std::unique_ptr<VectorReader>>& vecs,
                    const std::vector<Planned>& plan,
                    const std::vector<std::set<std::string>>& covered, const ApplyOptions& opt,
                    ApplyResult& r) {
  const ModelConfig& c = target.config();
  for (size_t k = 0; k < terms.size(); ++k) {
    std::vector<std::string> problems;
    const auto& m = vecs[k]->metadata();
    auto field = [&](const char* key, const std::string& have, const char* what) {
      auto it = m.find(key);
      if (it != m.end() && !it->second.empty() && it->second != have)
        problems.push_back(std::string(what) + " " + it->second + " in the vector's source, " +
                           have + " in the target");
    };
    field("reasonvec.architecture", c.architecture, "architecture");
    field("reasonvec.num_hidden_layers", std::to_string(c.num_layers), "num_hidden_layers");
    field("reasonvec.hidden_size", std::to_string(c.hidden_size), "hidden_size");
    std::vector<std::string> missing;
    size_t weights = 0;
    for (const auto& p : plan) {
      if (!is_weight_name(p.name) || !is_float_dtype(target.tensors().view(p.source).dtype()))
        continue;
      ++weights;
      bool hit = covered[k].count(p.name) != 0;
      for (const auto& a : p.adds) hit = hit || a.term == k;
      if (!hit) missing.push_back(p.name);
    }
    if (!missing.empty()) problems.push_back(uncovered_text(missing, weights, "target weights"));
    if (problems.empty() || opt.partial) continue;
    std::string msg = "does not match " + target_p.string() + ": ";
    for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
    throw Error(terms[k].vector.string(), msg + " (--partial applies it anyway)");
  }
  if (!opt.partial) return;
  for (const auto& p : plan)
    if (p.adds.empty() && is_weight_name(p.name) &&
        is_float_dtype(target.tensors().view(p.source).dtype()))
      r.unchanged.push_back(p.name);
  if (!r.unchanged.empty())
    r.notes.push_back("--partial: " + std::to_string(r.unchanged.size()) +
                      " target tensor(s) left unchanged (listed below)");
}

}  // namespace

ApplyResult apply(const fs::path& target_p, const std::vector<ApplyTerm>& terms,
                  const fs::path& out, const ApplyOptions& opt, const Log& log) {
  if (terms.empty()) throw Error("apply: at least one --vector is required");
  if (opt.dtype && !is_float_dtype(*opt.dtype)) throw Error("--dtype must be f32, bf16 or f16");
  // Method and parameters first: a typo costs nothing.
  const MergeMethod* method = find_merge_method(opt.method);
  if (!method || opt.method == "task_arithmetic")
    throw Error("--method",
                "unknown merge method '" + opt.method + "' (" + merge_method_names() + ")");
  const SparsifyParams sparams{opt.density, opt.epsilon, opt.gamma,
                               opt.rescale.value_or(method->default_rescale)};
  validate_sparsify(method->sparsification, sparams, "--method " + opt.method);
  if (!std::isfinite(opt.lambda)) throw Error("--lambda", "must be a finite number");
  // The linear path stays the exact arithmetic it always was.
  const bool merging = method->sparsification != Sparsification::kNone || opt.normalize;
  if (method->sparsification == Sparsification::kNone && opt.density != 1.0)
    log("warning: --density has no effect with --method linear");
  ModelDir target(target_p);
  const TensorSet& T = target.tensors();
  std::vector<std::unique_ptr<VectorReader>> vecs;
  for (const auto& t : terms) {
    if (!std::isfinite(t.alpha)) throw Error(t.vector.string(), "alpha must be a finite number");
    vecs.push_back(std::make_unique<VectorReader>(t.vector));
  }
  ApplyResult r;
  auto note = [&](const std::string& m) {
    r.notes.push_back(m);
    log("note: " + m);
  };

  const bool target_tied = !T.has(kLmHead) && T.has(kEmbed);
  std::vector<std::set<std::string>> used(terms.size());
  // Target tensors each term acts on, or leaves alone by policy (vocab skip).
  std::vector<std::set<std::string>> covered(terms.size());
  std::vector<Planned> plan;
  for (const auto& name : T.names()) {
    const TensorView tv = T.view(name);
    Planned p{name, name, tv.dtype(), {}};
    if (!is_float_dtype(tv.dtype())) {  // integer buffers etc.: copied as they are
      plan.push_back(p);
      continue;
    }
    if (opt.dtype) p.dtype = *opt.dtype;
    for (size_t k = 0; k < terms.size(); ++k) {
      const VectorReader& V = *vecs[k];
      std::string vname = name;
      if (!V.has(name)) {
        // A vector from tied models carries the shared matrix as embed_tokens
        // only; its change acted on the output projection too.
        if (name == kLmHead && V.has(kEmbed) && !V.has(kLmHead)) {
          vname = kEmbed;
          note(terms[k].vector.string() + " comes from models with tied embeddings: its " + kEmbed +
               " delta is applied to the target's untied " + kLmHead + " as well");
        } else {
          continue;
        }
      }
      used[k].insert(vname);
      covered[k].insert(name);
      if (!is_float_dtype(V.dtype(vname)))
        throw Error(terms[k].vector.string(), "tensor '" + vname + "' has non-float dtype " +
                                                  std::string(dtype_name(V.dtype(vname))));
      const std::vector<int64_t>& vshape = V.shape(vname);
      int64_t rows = tv.shape().empty() ? 1 : tv.shape()[0];
      if (vshape != tv.shape()) {
        bool rows_only = is_vocab_tensor(name) && vshape.size() == tv.shape().size() &&
                         vshape.size() >= 1 &&
                         std::equal(vshape.begin() + 1, vshape.end(), tv.shape().begin() + 1);
        if (!rows_only)
          throw Error(terms[k].vector.string(), "tensor '" + vname + "' has shape " +
                                                    shape_str(vshape) + " but the target's is " +
                                                    shape_str(tv.shape()));
        const std::string sizes = "vector has " + std::to_string(vshape[0]) +
                                  " vocabulary rows, target " + target_p.string() + " has " +
                                  std::to_string(tv.shape()[0]);
        if (opt.vocab_mismatch == VocabMismatch::kError)
          throw Error(terms[k].vector.string(),
                      "tensor '" + name + "': " + sizes + " (use --vocab-mismatch overlap|skip)");
        if (opt.vocab_mismatch == VocabMismatch::kSkip) {
          note(name + " left unchanged: " + sizes + " (--vocab-mismatch skip)");
          continue;
        }
        rows = std::min(vshape[0], tv.shape()[0]);
        note(name + ": applied to the first " + std::to_string(rows) + " rows only: " + sizes +
             " (--vocab-mismatch overlap)");
      }
      p.adds.push_back({k, vname, rows});
    }
    plan.push_back(std::move(p));
  }

  bool untied_now = false;
  for (size_t k = 0; k < terms.size(); ++k) {
    const VectorReader& V = *vecs[k];
    if (target_tied && V.has(kLmHead)) {
      used[k].insert(kLmHead);
      if (opt.untie) {
        const TensorView ev = T.view(kEmbed);
        const std::vector<int64_t>& lshape = V.shape(kLmHead);
        if (lshape != ev.shape())
          throw Error(terms[k].vector.string(), std::string("tensor '") + kLmHead + "' has shape " +
                                                    shape_str(lshape) + " but the target's tied " +
                                                    kEmbed + " is " + shape_str(ev.shape()));
        if (!untied_now) {
          Planned p{kLmHead, kEmbed, opt.dtype ? *opt.dtype : ev.dtype(), {}};
          // The untied head starts as the tied matrix plus the embed deltas.
          for (auto& q : plan)
            if (q.name == kEmbed) p.adds = q.adds;
          plan.push_back(p);
          untied_now = true;
        }
        for (auto& q : plan)
          if (q.name == kLmHead) q.adds.push_back({k, kLmHead, lshape[0]});
        note(
            "target ties embeddings; --untie: wrote a separate lm_head.weight = embed_tokens + "
            "α·Δlm_head "
            "and set tie_word_embeddings to false");
      } else {
        note(
            "target ties embeddings, so the vector's lm_head.weight delta is not applied (the "
            "shared matrix gets only the embed_tokens delta; --untie writes a separate lm_head)");
      }
    }
    std::vector<std::string> unused;
    for (const auto& n : V.names())
      if (!used[k].count(n)) unused.push_back(n);
    if (!unused.empty()) {
      std::string m = std::to_string(unused.size()) + " tensor(s) of " + terms[k].vector.string() +
                      " have no counterpart in the target (e.g. '" + unused[0] + "')";
      if (opt.strict) throw Error(terms[k].vector.string(), m + " (--strict)");
      note(m + "; skipped");
    }
  }

  check_coverage(target_p, target, terms, vecs, plan, covered, opt, r);

  std::vector<TensorSpec> specs;
  for (const auto& p : plan) specs.push_back({p.name, p.dtype, T.view(p.source).shape()});
  DType out_dtype = opt.dtype ? *opt.dtype : target.weight_dtype();

  auto meta = base_metadata("model", opt.command_line);
  meta["reasonvec.target"] = target_p.string();
  json jt = json::array();
  for (size_t k = 0; k < terms.size(); ++k)
    jt.push_back({{"vector", terms[k].vector.string()}, {"alpha", terms[k].alpha}});
  meta["reasonvec.vectors"] = jt.dump();

  AtomicOutput output(out, AtomicOutput::Kind::kDirectory, opt.force);
  const fs::path dir = output.path();
  SafetensorsWriter::Options wo;
  wo.shard_size = opt.shard_size;
  wo.metadata = meta;
  SafetensorsWriter w(dir, specs, wo);

  uint64_t work = 0;
  for (const auto& p : plan) {
    const TensorInfo* ti = T.find(p.source);
    work += ti->nbytes() + TensorSpec{p.name, p.dtype, ti->shape}.nbytes();
  }
  Progress prog("apply", work, Progress::Unit::kBytes);
  std::atomic<uint64_t> nonfinite{0};
  // Per planned tensor: its target view, the vector views added to it, and
  // whether it is copied unchanged.
  struct Job {
    TensorView tv;
    ViewSource ts;                                  // tv's file, for pread
    std::vector<std::optional<TensorView>> vviews;  // nullopt: a sparse vector tensor
    std::vector<ViewSource> vsrc;                   // vviews' files (unset when sparse)
    uint64_t row = 1;                               // elements per first-dimension row
    bool copy = false;
  };
  std::vector<Job> jobs;
  std::vector<uint64_t> numel;
  for (const Planned& p : plan) {
    Job j{T.view(p.source), {}, {}, {}, 1, false};
    j.ts = source_of(T, j.tv);
    j.copy = !is_float_dtype(j.tv.dtype()) || (p.adds.empty() && p.dtype == j.tv.dtype());
    for (const auto& a : p.adds) {
      j.vviews.push_back(vecs[a.term]->dense_view(a.tensor));
      j.vsrc.push_back(j.vviews.back() ? source_of(vecs[a.term]->tensors(), *j.vviews.back())
                                       : ViewSource{});
    }
    if (!j.tv.shape().empty()) j.row = j.tv.numel() / std::max<int64_t>(1, j.tv.shape()[0]);
    ++(j.copy ? r.tensors_copied : r.tensors_changed);
    numel.push_back(j.tv.numel());
    jobs.push_back(std::move(j));
  }
  for_all_tiles(numel, [&](size_t i, uint64_t lo, uint64_t hi) {
    const Planned& p = plan[i];
    const Job& job = jobs[i];
    const TensorView& tv = job.tv;
    const size_t osz = dtype_size(p.dtype), tsz = dtype_size(tv.dtype());
    const size_t n = hi - lo;
    if (merging && !job.copy && !p.adds.empty()) return;  // merged tensor by tensor below
    // Streamed inputs are read with pread into per-thread buffers rather
    // than through their mappings (see MappedFile::read): on fast storage
    // the faults and TLB misses of the mappings were most of apply's time.
    if (job.copy) {
      uint8_t* buf = scratch_bytes(n * tsz).data();
      job.ts.read(lo, hi, buf);
      w.write(i, lo * tsz, buf, n * tsz);
      prog.add(2 * n * tsz);
      return;
    }
    const auto& vviews = job.vviews;
    const uint64_t row = job.row;
    uint8_t* ob = scratch_bytes(n * osz).data();
    uint64_t bad = 0;
    // One vector over the whole tile (the usual case) fuses into one pass.
    const bool one = p.adds.size() == 1 && vviews[0] &&
                     static_cast<uint64_t>(p.adds[0].rows) * row >= hi &&
                     has_fused(tv.dtype(), vviews[0]->dtype(), p.dtype);
    if (one) {
      const float alpha = static_cast<float>(terms[p.adds[0].term].alpha);
      const ViewSource& vs = job.vsrc[0];
      for (uint64_t c0 = lo; c0 < hi; c0 += kReadChunk) {
        const uint64_t c1 = std::min(hi, c0 + kReadChunk);
        uint8_t* tb = scratch_bytes(1, (c1 - c0) * tsz).data();
        uint8_t* vb = scratch_bytes(2, (c1 - c0) * vs.elem).data();
        job.ts.read(c0, c1, tb);
        vs.read(c0, c1, vb);
        fused_axpy(tv.dtype(), tb, alpha, vviews[0]->dtype(), vb, p.dtype, ob + (c0 - lo) * osz,
                   c1 - c0, &bad);
      }
    } else {
      // Dense operands by pread too; sparse vectors through their reader.
      uint8_t* raw = scratch_bytes(1, kChunk * sizeof(float)).data();
      for_chunks(lo, hi, [&](uint64_t c0, uint64_t c1, float* acc, float* v) {
        job.ts.read(c0, c1, raw);
        to_f32(tv.dtype(), raw, acc, c1 - c0);
        for (size_t j = 0; j < p.adds.size(); ++j) {
          // Rows past the vector's vocabulary (--vocab-mismatch overlap) stay as they are.
          const uint64_t lim = std::min<uint64_t>(c1, static_cast<uint64_t>(p.adds[j].rows) * row);
          if (lim <= c0) continue;
          const float alpha = static_cast<float>(terms[p.adds[j].term].alpha);
          if (vviews[j]) {
            job.vsrc[j].read(c0, lim, raw);
            to_f32(vviews[j]->dtype(), raw, v, lim - c0);
          } else {
            vecs[p.adds[j].term]->read_f32(p.adds[j].tensor, c0, lim, v);
          }
          const size_t m = lim - c0;
          for (size_t k = 0; k < m; ++k) acc[k] = acc[k] + alpha * v[k];
        }
        const size_t m = c1 - c0;
        bad += count_nonfinite(acc, m);
        from_f32(p.dtype, acc, ob + (c0 - lo) * osz, m);
      });
      for (size_t j = 0; j < p.adds.size(); ++j) {
        const uint64_t lim = std::min<uint64_t>(hi, static_cast<uint64_t>(p.adds[j].rows) * row);
        if (!vviews[j] && lim > lo) vecs[p.adds[j].term]->release(p.adds[j].tensor, lo, lim);
      }
    }
    if (bad) nonfinite += bad;
    w.write(i, lo * osz, ob, n * osz);
    prog.add(n * (tsz + osz));
  });
  // Merge methods need whole tensors (top-k, ranks, sign election): one
  // tensor at a time, each vector's share sparsified, merged, then added.
  std::vector<size_t> merged;  // plan indices of the tensors merged here
  std::vector<uint64_t> merged_size;
  if (merging)
    for (size_t i = 0; i < plan.size(); ++i)
      if (!jobs[i].copy && !plan[i].adds.empty()) {
        merged.push_back(i);
        merged_size.push_back(numel[i]);
      }
  // Tensors in parallel (memory: per worker, its tensor once per vector).
  for_each_item(merged_size, [&](size_t item) {
    const size_t i = merged[item];
    const Planned& p = plan[i];
    const uint64_t n = numel[i];
    // Per-thread buffers, reused across tensors (fresh ones cost page faults).
    // References, so that lambdas below name this thread's buffers.
    thread_local std::vector<std::vector<float>> tl_deltas;
    thread_local std::vector<float> tl_delta;
    std::vector<std::vector<float>>& deltas = tl_deltas;
    std::vector<float>& delta = tl_delta;
    if (deltas.size() < p.adds.size()) deltas.resize(p.adds.size());
    std::vector<const float*> ptrs;
    std::vector<uint64_t> limits;
    std::vector<float> weights;
    for (size_t j = 0; j < p.adds.size(); ++j) {
      const Addend& a = p.adds[j];
      const VectorReader& V = *vecs[a.term];
      const uint64_t vn = V.numel(a.tensor);
      deltas[j].resize(vn);
      for_tiles(vn, [&](uint64_t lo, uint64_t hi) {
        V.read_f32(a.tensor, lo, hi, deltas[j].data() + lo);
        V.release(a.tensor, lo, hi);
      });
      sparsify_tensor(method->sparsification, sparams, V.shape(a.tensor), opt.seed,
                      sparsify_stream(a.tensor, a.term), deltas[j].data());
      ptrs.push_back(deltas[j].data());
      limits.push_back(std::min<uint64_t>(n, static_cast<uint64_t>(a.rows) * jobs[i].row));
      weights.push_back(static_cast<float>(terms[a.term].alpha));
    }
    delta.resize(n);
    merge_deltas(
        DType::F32, method->consensus, opt.normalize,
        method->uses_lambda ? std::optional<float>(static_cast<float>(opt.lambda)) : std::nullopt,
        ptrs, limits, weights, n, delta.data());
    const TensorView& tv = jobs[i].tv;
    const size_t osz = dtype_size(p.dtype), tsz = dtype_size(tv.dtype());
    std::atomic<uint64_t> bad_all{0};
    for_tiles(n, [&](uint64_t lo, uint64_t hi) {
      uint8_t* ob = scratch_bytes((hi - lo) * osz).data();
      uint64_t bad = 0;
      for_chunks(lo, hi, [&](uint64_t c0, uint64_t c1, float* acc, float*) {
        load_f32(tv, c0, c1, acc);
        const size_t m = c1 - c0;
        for (size_t k = 0; k < m; ++k) acc[k] = acc[k] + delta[c0 + k];
        bad += count_nonfinite(acc, m);
        from_f32(p.dtype, acc, ob + (c0 - lo) * osz, m);
      });
      if (bad) bad_all += bad;
      w.write(i, lo * osz, ob, (hi - lo) * osz);
      release(T, tv, lo, hi);
      prog.add((hi - lo) * (tsz + osz));
    });
    nonfinite += bad_all.load();
  });
  prog.finish();
  r.nonfinite = nonfinite.load();
  if (r.nonfinite) {
    std::string m = std::to_string(r.nonfinite) + " non-finite value(s) (NaN/Inf) in the result";
    if (opt.fail_on_nonfinite) throw Error(out.string(), m + " (--fail-on-nonfinite)");
    log("warning: " + m);
  }
  w.finish();

  // Non-weight files are copied unchanged, except that config.json must
  // tell the truth about an untied head or a new dtype.
  std::vector<std::string> extras;
  for (const auto& f : target.extra_files())
    if (f != "config.json") extras.push_back(f);
  copy_extra_files(target_p, extras, dir);
  std::string cfg_text = read_file(target_p / "config.json");
  const std::string dt_name = out_dtype == DType::BF16  ? "bfloat16"
                              : out_dtype == DType::F16 ? "float16"
                                                        : "float32";
  if (untied_now || (opt.dtype && target.config().torch_dtype != dt_name)) {
    json cfg = json::parse(cfg_text);
    if (untied_now) cfg["tie_word_embeddings"] = false;
    if (opt.dtype) cfg["torch_dtype"] = dt_name;
    cfg_text = cfg.dump(2) + "\n";
  }
  write_file(dir / "config.json", cfg_text);
  write_file(dir / "README.md",
             model_card(target_p, terms, vecs, opt, out_dtype, r.notes, r.unchanged));
  r.files = w.files();
  r.bytes_written = w.total_bytes();
  output.commit();
  return r;
}

}  // namespace rv::vec
