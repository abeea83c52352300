#include <atomic>
#include <cstdio>
#include <set>

#include "common/error.h"
#include "common/file.h"
#include "common/progress.h"
#include "vector/internal.h"
#include "vector/kernels.h"
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
                       const std::vector<std::unique_ptr<TensorSet>>& vecs, const ApplyOptions& opt,
                       DType out_dtype, const std::vector<std::string>& notes) {
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
  s += "\nA positive α adds the reasoning behaviour that GRPO training put into the tuned model; a "
       "negative α removes it.\n";
  if (!notes.empty()) {
    s += "\n## Notes\n\n";
    for (const auto& n : notes) s += "- " + n + "\n";
  }
  if (!opt.command_line.empty()) s += "\n## Command\n\n```\n" + opt.command_line + "\n```\n";
  return s;
}

}  // namespace

ApplyResult apply(const fs::path& target_p, const std::vector<ApplyTerm>& terms, const fs::path& out,
                  const ApplyOptions& opt, const Log& log) {
  if (terms.empty()) throw Error("apply: at least one --vector is required");
  if (opt.dtype && !is_float_dtype(*opt.dtype)) throw Error("--dtype must be f32, bf16 or f16");
  ModelDir target(target_p);
  const TensorSet& T = target.tensors();
  std::vector<std::unique_ptr<TensorSet>> vecs;
  for (const auto& t : terms) {
    if (!std::isfinite(t.alpha)) throw Error(t.vector.string(), "alpha must be a finite number");
    vecs.push_back(std::make_unique<TensorSet>(t.vector));
  }
  ApplyResult r;
  auto note = [&](const std::string& m) {
    r.notes.push_back(m);
    log("note: " + m);
  };

  const bool target_tied = !T.has(kLmHead) && T.has(kEmbed);
  std::vector<std::set<std::string>> used(terms.size());
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
      const TensorSet& V = *vecs[k];
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
      const TensorView vv = V.view(vname);
      if (!is_float_dtype(vv.dtype()))
        throw Error(terms[k].vector.string(), "tensor '" + vname + "' has non-float dtype " +
                                                  std::string(dtype_name(vv.dtype())));
      int64_t rows = tv.shape().empty() ? 1 : tv.shape()[0];
      if (vv.shape() != tv.shape()) {
        bool rows_only = is_vocab_tensor(name) && vv.shape().size() == tv.shape().size() &&
                         vv.shape().size() >= 1 &&
                         std::equal(vv.shape().begin() + 1, vv.shape().end(), tv.shape().begin() + 1);
        if (!rows_only)
          throw Error(terms[k].vector.string(), "tensor '" + vname + "' has shape " +
                                                    shape_str(vv.shape()) + " but the target's is " +
                                                    shape_str(tv.shape()));
        const std::string sizes = "vector has " + std::to_string(vv.shape()[0]) +
                                  " vocabulary rows, target " + target_p.string() + " has " +
                                  std::to_string(tv.shape()[0]);
        if (opt.vocab_mismatch == VocabMismatch::kError)
          throw Error(terms[k].vector.string(), "tensor '" + name + "': " + sizes +
                                                    " (use --vocab-mismatch overlap|skip)");
        if (opt.vocab_mismatch == VocabMismatch::kSkip) {
          note(name + " left unchanged: " + sizes + " (--vocab-mismatch skip)");
          continue;
        }
        rows = std::min(vv.shape()[0], tv.shape()[0]);
        note(name + ": applied to the first " + std::to_string(rows) + " rows only: " + sizes +
             " (--vocab-mismatch overlap)");
      }
      p.adds.push_back({k, vname, rows});
    }
    plan.push_back(std::move(p));
  }

  bool untied_now = false;
  for (size_t k = 0; k < terms.size(); ++k) {
    const TensorSet& V = *vecs[k];
    if (target_tied && V.has(kLmHead)) {
      used[k].insert(kLmHead);
      if (opt.untie) {
        const TensorView ev = T.view(kEmbed), lv = V.view(kLmHead);
        if (lv.shape() != ev.shape())
          throw Error(terms[k].vector.string(), std::string("tensor '") + kLmHead + "' has shape " +
                                                    shape_str(lv.shape()) + " but the target's tied " +
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
          if (q.name == kLmHead) q.adds.push_back({k, kLmHead, lv.shape()[0]});
        note("target ties embeddings; --untie: wrote a separate lm_head.weight = embed_tokens + α·Δlm_head "
             "and set tie_word_embeddings to false");
      } else {
        note("target ties embeddings, so the vector's lm_head.weight delta is not applied (the "
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
    std::vector<TensorView> vviews;
    uint64_t row = 1;  // elements per first-dimension row
    bool copy = false;
  };
  std::vector<Job> jobs;
  std::vector<uint64_t> numel;
  for (const Planned& p : plan) {
    Job j{T.view(p.source), {}, 1, false};
    j.copy = !is_float_dtype(j.tv.dtype()) || (p.adds.empty() && p.dtype == j.tv.dtype());
    for (const auto& a : p.adds) j.vviews.push_back(vecs[a.term]->view(a.tensor));
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
    if (job.copy) {
      w.write(i, lo * tsz, tv.data + lo * tsz, n * tsz);
      release(T, tv, lo, hi);
      prog.add(2 * n * tsz);
      return;
    }
    const auto& vviews = job.vviews;
    const uint64_t row = job.row;
    uint8_t* ob = scratch_bytes(n * osz).data();
    uint64_t bad = 0;
    // One vector over the whole tile (the usual case) fuses into one pass.
    const bool one =
        p.adds.size() == 1 && static_cast<uint64_t>(p.adds[0].rows) * row >= hi &&
        fused_axpy(tv.dtype(), tv.data + lo * tsz, static_cast<float>(terms[p.adds[0].term].alpha),
                   vviews[0].dtype(), vviews[0].data + lo * dtype_size(vviews[0].dtype()), p.dtype,
                   ob, n, &bad);
    if (!one)
      for_chunks(lo, hi, [&](uint64_t c0, uint64_t c1, float* acc, float* v) {
        load_f32(tv, c0, c1, acc);
        for (size_t j = 0; j < p.adds.size(); ++j) {
          // Rows past the vector's vocabulary (--vocab-mismatch overlap) stay as they are.
          const uint64_t lim = std::min<uint64_t>(c1, static_cast<uint64_t>(p.adds[j].rows) * row);
          if (lim <= c0) continue;
          const float alpha = static_cast<float>(terms[p.adds[j].term].alpha);
          load_f32(vviews[j], c0, lim, v);
          const size_t m = lim - c0;
          for (size_t k = 0; k < m; ++k) acc[k] = acc[k] + alpha * v[k];
        }
        const size_t m = c1 - c0;
        bad += count_nonfinite(acc, m);
        from_f32(p.dtype, acc, ob + (c0 - lo) * osz, m);
      });
    if (bad) nonfinite += bad;
    for (size_t j = 0; j < p.adds.size(); ++j) {
      const uint64_t lim = std::min<uint64_t>(hi, static_cast<uint64_t>(p.adds[j].rows) * row);
      if (lim > lo) release(*vecs[p.adds[j].term], vviews[j], lo, lim);
    }
    w.write(i, lo * osz, ob, n * osz);
    release(T, tv, lo, hi);
    prog.add(n * (tsz + osz));
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
  const std::string dt_name = out_dtype == DType::BF16 ? "bfloat16" : out_dtype == DType::F16 ? "float16" : "float32";
  if (untied_now || (opt.dtype && target.config().torch_dtype != dt_name)) {
    json cfg = json::parse(cfg_text);
    if (untied_now) cfg["tie_word_embeddings"] = false;
    if (opt.dtype) cfg["torch_dtype"] = dt_name;
    cfg_text = cfg.dump(2) + "\n";
  }
  write_file(dir / "config.json", cfg_text);
  write_file(dir / "README.md", model_card(target_p, terms, vecs, opt, out_dtype, r.notes));
  r.files = w.files();
  r.bytes_written = w.total_bytes();
  output.commit();
  return r;
}

}  // namespace rv::vec
