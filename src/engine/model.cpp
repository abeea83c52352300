#include "engine/model.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <numbers>

#include "common/error.h"
#include "engine/tensor_source.h"
#include "engine/thread_pool.h"
#include "engine/vector_overlay.h"
#include "formats/arch.h"
#include "formats/gguf.h"

namespace rv::engine {
namespace {

std::string arch_name(Arch a) {
  return std::string(arch_info(a).gguf);
}

double json_number(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_number())
    throw Error(where, std::string("rope_scaling.") + key + " is missing or not a number");
  return j[key].get<double>();
}

}  // namespace

ModelSpec make_model_spec(const ModelConfig& c, const std::string& where) {
  ModelSpec s;
  const ArchInfo* info = arch_by_hf_class(c.architecture);
  if (!info)
    throw Error(where, "unsupported architecture '" + c.architecture +
                           "' (supported: " + hf_class_names() + ")");
  s.arch = info->id;
  s.qkv_bias = info->qkv_bias_always;
  s.qk_norm = info->qk_norm;
  const auto& raw = c.raw;
  if (!info->qkv_bias_always && raw.contains("attention_bias") &&
      raw["attention_bias"].is_boolean())
    s.qkv_bias = raw["attention_bias"].get<bool>();
  if (raw.contains("mlp_bias") && raw["mlp_bias"].is_boolean() && raw["mlp_bias"].get<bool>())
    throw Error(where, "mlp_bias = true is not supported");
  if (raw.contains("hidden_act") && raw["hidden_act"].is_string() && raw["hidden_act"] != "silu")
    throw Error(
        where, "unsupported hidden_act '" + raw["hidden_act"].get<std::string>() + "' (only silu)");
  if (raw.contains("use_sliding_window") && raw["use_sliding_window"].is_boolean() &&
      raw["use_sliding_window"].get<bool>())
    throw Error(where, "use_sliding_window = true is not supported");
  s.hidden = c.hidden_size;
  s.layers = c.num_layers;
  s.heads = c.num_heads;
  s.kv_heads = c.num_kv_heads;
  s.head_dim = c.head_dim;
  s.intermediate = c.intermediate_size;
  s.vocab = c.vocab_size;
  s.max_position = c.max_position_embeddings;
  s.rms_eps = c.rms_norm_eps;
  s.tied = c.tie_word_embeddings;
  if (s.hidden <= 0 || s.layers <= 0 || s.heads <= 0 || s.kv_heads <= 0 || s.head_dim <= 0 ||
      s.intermediate <= 0 || s.vocab <= 0)
    throw Error(where, "hyper-parameters must be positive");
  if (s.heads % s.kv_heads != 0)
    throw Error(where, "num_attention_heads is not a multiple of num_key_value_heads");
  if (s.head_dim % 2 != 0) throw Error(where, "head_dim must be even for RoPE");
  if (!(c.rope_theta > 0)) throw Error(where, "rope_theta must be positive");

  const int half = s.head_dim / 2;
  s.inv_freq.resize(half);
  for (int i = 0; i < half; ++i) s.inv_freq[i] = 1.0 / std::pow(c.rope_theta, 2.0 * i / s.head_dim);

  if (raw.contains("rope_scaling") && !raw["rope_scaling"].is_null()) {
    const auto& rs = raw["rope_scaling"];
    if (!rs.is_object()) throw Error(where, "rope_scaling is not an object");
    std::string type =
        rs.contains("rope_type") && rs["rope_type"].is_string() ? rs["rope_type"].get<std::string>()
        : rs.contains("type") && rs["type"].is_string()         ? rs["type"].get<std::string>()
                                                                : "";
    if (type == "default") {
    } else if (type == "llama3") {
      // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept,
      // and the band between them interpolated smoothly. Applied as
      // llama.cpp's f32 divisors (what export-gguf writes as rope_freqs), so
      // this directory and its GGUF give bit-identical logits.
      const double factor = json_number(rs, "factor", where);
      const double low = json_number(rs, "low_freq_factor", where);
      const double high = json_number(rs, "high_freq_factor", where);
      const double old_ctx = json_number(rs, "original_max_position_embeddings", where);
      if (!(factor > 0) || !(high > low) || !(low > 0) || !(old_ctx > 0))
        throw Error(where,
                    "rope_scaling: need factor > 0, original_max_position_embeddings > 0 and "
                    "high_freq_factor > low_freq_factor > 0");
      const auto div = llama3_rope_divisors(c.rope_theta, s.head_dim, factor, low, high, old_ctx);
      for (int i = 0; i < half; ++i) s.inv_freq[i] /= div[i];
    } else {
      throw Error(where,
                  "unsupported rope_scaling type '" + type + "' (supported: default, llama3)");
    }
  }
  return s;
}

// ---------------------------------------------------------------------------
// KV cache

KVCache::KVCache(const ModelSpec& spec, int slots, int max_context, bool bf16)
    : slots_(slots), max_context_(max_context), layers_(spec.layers), bf16_(bf16) {
  if (slots <= 0 || max_context <= 0) throw Error("engine: KV cache needs slots and context > 0");
  per_ = static_cast<size_t>(max_context) * spec.kv_dim() *
         dtype_size(bf16 ? DType::BF16 : DType::F32);
  bytes_ = per_ * 2 * layers_ * slots_;
  // Reserve address space only; pages are committed as positions are written.
  void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    throw Error("engine: cannot reserve " + std::to_string(bytes_ >> 20) +
                " MiB for the KV cache: " + errno_text(errno));
  data_ = static_cast<uint8_t*>(p);
}

KVCache::~KVCache() {
  if (data_) munmap(data_, bytes_);
}

void KVCache::release(int slot) {
  // Each (layer, k|v) block of a slot is contiguous; drop the whole slot.
  const size_t page = 4096;
  uintptr_t b = reinterpret_cast<uintptr_t>(base(0, slot, 0));
  uintptr_t e = b + per_ * 2 * layers_;
  b = (b + page - 1) / page * page;
  e = e / page * page;
  if (e > b) {
    madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
  }
  // Partial pages at the edges keep stale data; positions are always written
  // before they are read, so that is harmless.
}

// ---------------------------------------------------------------------------
// Loading

Model::~Model() = default;

bool Model::has_bf16_matrices() const {
  if (lm_head_.dtype == DType::BF16) return true;
  for (const Layer& l : layers_)
    for (const Linear* m : l.linears())
      if (m->w.dtype == DType::BF16) return true;
  return false;
}

int Model::threads() const {
  return pool_->size();
}

namespace {
constexpr size_t kHugeOwned = size_t{2} << 20;
}

void* owned_alloc(size_t bytes) {
  if (bytes < kHugeOwned) {
    void* p = std::malloc(bytes ? bytes : 1);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  madvise(p, bytes, MADV_HUGEPAGE);  // a hint: fine if THP is off
  return p;
}

void owned_free(void* p, size_t bytes) noexcept {
  if (!p) return;
  if (bytes < kHugeOwned)
    std::free(p);
  else
    munmap(p, bytes);
}

uint64_t Model::owned_bytes() const {
  uint64_t n = 0;
  for (const auto& b : owned_) n += b.size();
  return n;
}

std::unique_ptr<Model> Model::load(const std::filesystem::path& path, const ModelOptions& opt) {
  kern::isa();  // a bad $RV_ISA fails here, not later on a worker thread
  return gguf::is_gguf_path(path) ? load_gguf(std::make_shared<const MappedFile>(path), opt)
                                  : load_dir(std::make_shared<const ModelDir>(path), opt);
}

std::unique_ptr<Model> Model::variant(const ModelOptions& opt) const {
  if (!dir_ && !gguf_) throw Error("memory: a model over caller-owned tensors has no variants");
  return dir_ ? load_dir(dir_, opt) : load_gguf(gguf_, opt);
}

namespace {

// A Hugging Face model directory: names and layout are already the loader's.
class DirSource final : public TensorSource {
 public:
  explicit DirSource(const ModelDir& md) : ts_(md.tensors()) {
    where = md.path().string();
    implied_by = "config.json";
  }
  bool has(const std::string& name) const override { return ts_.has(name); }
  Tensor get(const std::string& name) override {
    TensorView v = ts_.view(name);
    return {v.data, v.dtype(), v.shape()};
  }
  std::string file_name(const std::string& name) const override { return name; }
  std::vector<std::pair<std::string, Tensor>> list() const override {
    std::vector<std::pair<std::string, Tensor>> r;
    for (const auto& n : ts_.names()) {
      TensorView v = ts_.view(n);
      r.push_back({n, {nullptr, v.dtype(), v.shape()}});
    }
    return r;
  }

 private:
  const TensorSet& ts_;
};

}  // namespace

std::unique_ptr<Model> Model::load_dir(std::shared_ptr<const ModelDir> dir,
                                       const ModelOptions& opt) {
  std::unique_ptr<Model> m(new Model());
  m->dir_ = std::move(dir);
  const std::filesystem::path& path = m->dir_->path();
  m->config_ = m->dir_->config();
  m->spec_ = make_model_spec(m->config_, (path / "config.json").string());
  m->weight_bytes_ = m->dir_->tensors().total_bytes();
  DirSource src(*m->dir_);
  // The directory's name, also when given with a trailing slash.
  std::filesystem::path p = path.lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  m->load_from(src, p.filename().string(), opt);
  return m;
}

void Model::load_from(TensorSource& src, const std::string& model_name, const ModelOptions& opt) {
  if (opt.vectors.empty()) {
    load_weights(src);
  } else {
    // Checks every vector before any weight is computed.
    std::unique_ptr<TensorSource> over = overlay_source(src, spec_, model_name, opt, owned_);
    load_weights(*over);
  }
  vectors_ = opt.vectors;
  pool_ = std::make_unique<ThreadPool>(opt.threads);
  if (opt.copy_weights) copy_weights();
}

void Model::copy_weights() {
  // Every distinct matrix, once: a tied head is the embedding itself.
  const bool tied = lm_head_.data == embed_.data;
  std::vector<kern::WeightView*> views{&embed_};
  if (!tied) views.push_back(&lm_head_);
  for (Layer& L : layers_)
    for (Linear* m : L.linears()) views.push_back(&m->w);
  // Matrices a vector changed (or a GGUF Llama's re-ordered q/k) are owned
  // already, in huge pages.
  auto owned = [&](const void* p) {
    for (const OwnedBytes& b : owned_)
      if (p >= b.data() && p < b.data() + b.size()) return true;
    return false;
  };
  std::erase_if(views, [&](const kern::WeightView* v) { return owned(v->data); });
  auto bytes = [](const kern::WeightView* v) {
    return static_cast<size_t>(v->rows * v->cols) * dtype_size(v->dtype);
  };
  // Each matrix starts on a cache line; the kernels load unaligned and need no more.
  constexpr size_t kAlign = 64;
  std::vector<size_t> at(views.size() + 1, 0);
  for (size_t i = 0; i < views.size(); ++i)
    at[i + 1] = at[i] + (bytes(views[i]) + kAlign - 1) / kAlign * kAlign;
  OwnedBytes buf(at.back());
  const bool mapped = dir_ || gguf_;
  // In 2 MiB pieces over all threads: the kernel zero-fills each fresh huge
  // page on first touch, and that work is spread over the threads too.
  constexpr size_t kPiece = size_t{2} << 20;
  std::vector<std::pair<size_t, size_t>> pieces;  // (view, offset within it)
  for (size_t i = 0; i < views.size(); ++i)
    for (size_t o = 0; o < bytes(views[i]); o += kPiece) pieces.push_back({i, o});
  pool_->for_dynamic(static_cast<int64_t>(pieces.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const auto [i, o] = pieces[p];
      const size_t n = std::min(kPiece, bytes(views[i]) - o);
      const uint8_t* src = static_cast<const uint8_t*>(views[i]->data) + o;
      std::memcpy(buf.data() + at[i] + o, src, n);
      if (mapped) {
        // Drop the file's pages from this process's page tables (they stay
        // in the page cache), so resident memory counts the copy only.
        // Harmless on a shared read-only file mapping even where the
        // rounding reaches a neighbour's page: it is faulted in again.
        const uintptr_t page = 4096, a = reinterpret_cast<uintptr_t>(src);
        const uintptr_t lo = (a + page - 1) / page * page, hi = (a + n) / page * page;
        if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
      }
    }
  });
  for (size_t i = 0; i < views.size(); ++i) views[i]->data = buf.data() + at[i];
  if (tied) lm_head_ = embed_;
  owned_.push_back(std::move(buf));
}

void Model::load_weights(TensorSource& src) {
  const ModelSpec& s = spec_;
  auto get = [&](const std::string& name, std::vector<int64_t> shape) -> TensorSource::Tensor {
    if (!src.has(name))
      throw Error(src.where,
                  "missing tensor '" + src.file_name(name) + "' required by " + arch_name(s.arch));
    TensorSource::Tensor v = src.get(name);
    if (v.shape != shape) {
      auto str = [](const std::vector<int64_t>& sh) {
        std::string r = "[";
        for (size_t i = 0; i < sh.size(); ++i) r += (i ? ", " : "") + std::to_string(sh[i]);
        return r + "]";
      };
      throw Error(src.where, "tensor '" + src.file_name(name) + "' has shape " + str(v.shape) +
                                 ", " + src.implied_by + " implies " + str(shape));
    }
    if (!is_float_dtype(v.dtype))
      throw Error(src.where, "tensor '" + src.file_name(name) + "' has dtype " +
                                 std::string(dtype_name(v.dtype)) + " (need F32, F16 or BF16)");
    return v;
  };
  auto matrix = [&](const std::string& name, int64_t rows, int64_t cols) {
    TensorSource::Tensor v = get(name, {rows, cols});
    return kern::WeightView{v.data, v.dtype, rows, cols};
  };
  auto vec = [&](const std::string& name, int64_t n) {
    TensorSource::Tensor v = get(name, {n});
    std::vector<float> out(static_cast<size_t>(n));
    to_f32(v.dtype, v.data, out.data(), out.size());
    return out;
  };
  auto linear = [&](const std::string& prefix, int64_t rows, int64_t cols, bool bias) {
    Linear L{matrix(prefix + ".weight", rows, cols), {}};
    if (bias) L.bias = vec(prefix + ".bias", rows);
    return L;
  };

  embed_ = matrix("model.embed_tokens.weight", s.vocab, s.hidden);
  if (s.tied && !src.has("lm_head.weight"))
    lm_head_ = embed_;
  else
    lm_head_ = matrix("lm_head.weight", s.vocab, s.hidden);
  final_norm_ = vec("model.norm.weight", s.hidden);
  layers_.resize(s.layers);
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Layer& L = layers_[l];
    L.attn_norm = vec(p + "input_layernorm.weight", s.hidden);
    L.mlp_norm = vec(p + "post_attention_layernorm.weight", s.hidden);
    L.q = linear(p + "self_attn.q_proj", s.q_dim(), s.hidden, s.qkv_bias);
    L.k = linear(p + "self_attn.k_proj", s.kv_dim(), s.hidden, s.qkv_bias);
    L.v = linear(p + "self_attn.v_proj", s.kv_dim(), s.hidden, s.qkv_bias);
    L.o = linear(p + "self_attn.o_proj", s.hidden, s.q_dim(), false);
    if (s.qk_norm) {
      L.q_norm = vec(p + "self_attn.q_norm.weight", s.head_dim);
      L.k_norm = vec(p + "self_attn.k_norm.weight", s.head_dim);
    }
    L.gate = linear(p + "mlp.gate_proj", s.intermediate, s.hidden, false);
    L.up = linear(p + "mlp.up_proj", s.intermediate, s.hidden, false);
    L.down = linear(p + "mlp.down_proj", s.hidden, s.intermediate, false);
  }
}

// ---------------------------------------------------------------------------
// Forward

void Model::split_rows(int64_t rows, int T, const std::function<void(int64_t, int64_t)>& fn) {
  if (T == 1) {
    // About eight pieces a thread, whole 8-row blocks of the decode kernel.
    const int64_t share = (rows + pool_->size() * 8 - 1) / (pool_->size() * 8);
    pool_->for_dynamic(rows, (share + 15) / 16 * 16, fn);
  } else {
    pool_->for_range(rows, 12, fn);
  }
}

void Model::matmul(const float* X, int T, const Linear& L, float* Y) {
  matmuls(X, T, {{&L, Y}});
}

void Model::matmuls(const float* X, int T, std::initializer_list<MatmulOut> outs) {
  int64_t rows = 0;
  for (const MatmulOut& o : outs) rows += o.L->w.rows;
  split_rows(rows, T, [&](int64_t b, int64_t e) {
    // [b, e) of the concatenated rows, cut at the matrices' boundaries.
    int64_t at = 0;
    for (const MatmulOut& o : outs) {
      const Linear& L = *o.L;
      const int64_t N = L.w.rows, n0 = std::max(b - at, int64_t(0)), n1 = std::min(e - at, N);
      at += N;
      if (n0 >= n1) continue;
      kern::matmul_rows(X, L.w.cols, T, L.w, n0, n1, o.Y, N);
      if (!L.bias.empty())
        for (int64_t t = 0; t < T; ++t)
          for (int64_t n = n0; n < n1; ++n) o.Y[t * N + n] += L.bias[n];
    }
  });
}

void Model::gate_up(const float* X, int T, const Layer& L, float* gate, float* up, float* act) {
  const int64_t I = L.gate.w.rows, K = L.gate.w.cols;
  split_rows(I, T, [&](int64_t n0, int64_t n1) {
    kern::matmul_rows(X, K, T, L.gate.w, n0, n1, gate, I);
    kern::matmul_rows(X, K, T, L.up.w, n0, n1, up, I);
    for (int64_t t = 0; t < T; ++t)
      kern::silu_mul(gate + t * I + n0, up + t * I + n0, act + t * I + n0, n1 - n0);
  });
}

namespace {

// y[n] = x[n] / rms(x) * w[n], the sum of squares in double. y may be x.
void rmsnorm(const float* x, int n, const float* w, double eps, float* y) {
  double ss = 0;
  for (int i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float r = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
  for (int i = 0; i < n; ++i) y[i] = x[i] * r * w[i];
}

// rmsnorm of each of the T rows of x[T][w.size()] into y (may be x), the
// rows split across the pool (each row's arithmetic is unchanged).
void rmsnorm_rows(ThreadPool& pool, const float* x, int T, const std::vector<float>& w, double eps,
                  float* y) {
  const int n = static_cast<int>(w.size());
  pool.for_range(T, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t)
      rmsnorm(x + static_cast<size_t>(t) * n, n, w.data(), eps, y + static_cast<size_t>(t) * n);
  });
}

// y[i] += x[i] for i < n, split across the pool.
void add_into(ThreadPool& pool, float* y, const float* x, size_t n) {
  pool.for_range(static_cast<int64_t>(n), 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] += x[i];
  });
}

// HF "rotate_half" (NeoX) RoPE on one head: pairs (i, i + d/2).
void rope_head(float* x, int d, const float* cs, const float* sn) {
  const int h = d / 2;
  for (int i = 0; i < h; ++i) {
    const float a = x[i], b = x[i + h];
    x[i] = a * cs[i] - b * sn[i];
    x[i + h] = b * cs[i] + a * sn[i];
  }
}

template <class V>
void grow(V& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

}  // namespace

void Model::attention(const std::vector<BatchToken>& batch, KVCache& kv, int layer) {
  const ModelSpec& s = spec_;
  const int T = static_cast<int>(batch.size());
  const int QD = s.q_dim(), KVD = s.kv_dim(), HD = s.head_dim, group = s.heads / s.kv_heads;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(HD)));
  const bool bf16 = kv.bf16();
  const size_t esz = bf16 ? 2 : 4;
  // One task per (block, KV head): a block is up to kAttendMaxTokens
  // consecutive tokens of one sequence (a prompt), whose `group` query heads
  // all read the same cached rows, so each row is read once per block. A
  // task's cost grows with its position, so tasks are handed out
  // dynamically, the latest (longest) blocks first.
  struct Span {
    int t, len;
  };
  std::vector<Span> spans;
  for (int t = 0; t < T;) {
    int len = 1;
    while (len < kern::kAttendMaxTokens && t + len < T && batch[t + len].slot == batch[t].slot &&
           batch[t + len].pos == batch[t].pos + len)
      ++len;
    spans.push_back({t, len});
    t += len;
  }
  std::stable_sort(spans.begin(), spans.end(),
                   [&](const Span& a, const Span& b) { return batch[a.t].pos > batch[b.t].pos; });
  const int64_t tasks = int64_t(spans.size()) * s.kv_heads;
  std::atomic<int64_t> next{0};
  pool_->run([&](int, int) {
    thread_local std::vector<float> sc;  // attention weights (kern::attend_tokens)
    for (int64_t task; (task = next.fetch_add(1, std::memory_order_relaxed)) < tasks;) {
      const Span sp = spans[task / s.kv_heads];
      const int kvh = static_cast<int>(task % s.kv_heads);
      const int t = sp.t, n0 = batch[t].pos + 1;
      grow(sc, size_t(std::max(group, 8)) * sp.len * (n0 + sp.len - 1));
      // Cached row j of head kvh: element j * KVD + kvh * HD, likewise V.
      const auto* K = static_cast<const uint8_t*>(kv.k(layer, batch[t].slot)) + kvh * HD * esz;
      const auto* V = static_cast<const uint8_t*>(kv.v(layer, batch[t].slot)) + kvh * HD * esz;
      const size_t h0 = size_t(kvh) * group * HD;
      kern::attend_tokens(&q_[size_t(t) * QD + h0], QD, HD, group, sp.len, K, V, bf16, KVD, n0, HD,
                          scale, &att_[size_t(t) * QD + h0], QD, HD, sc.data());
    }
  });
}

void Model::forward(const std::vector<BatchToken>& batch, KVCache& kv, std::vector<float>& logits) {
  size_t n_out = 0;
  for (const auto& b : batch) n_out += b.logits;
  logits.resize(n_out * spec_.vocab);
  forward(batch, kv, logits.data());
}

void Model::forward(const std::vector<BatchToken>& batch, KVCache& kv, float* logits) {
  const ModelSpec& s = spec_;
  const int T = static_cast<int>(batch.size());
  const int H = s.hidden, QD = s.q_dim(), KVD = s.kv_dim(), HD = s.head_dim, I = s.intermediate;
  const int half = HD / 2;
  int n_out = 0;
  for (const auto& b : batch) {
    if (b.token < 0 || b.token >= s.vocab)
      throw Error("engine: token id " + std::to_string(b.token) + " outside the vocabulary (" +
                  std::to_string(s.vocab) + ")");
    if (b.slot < 0 || b.slot >= kv.slots() || b.pos < 0 || b.pos >= kv.max_context())
      throw Error("engine: position " + std::to_string(b.pos) + " exceeds the context size " +
                  std::to_string(kv.max_context()));
    n_out += b.logits;
  }
  if (T == 0) return;

  grow(x_, size_t(T) * H);
  grow(xn_, size_t(T) * H);
  grow(q_, size_t(T) * QD);
  grow(k_, size_t(T) * KVD);
  grow(v_, size_t(T) * KVD);
  grow(att_, size_t(T) * QD);
  grow(attn_out_, size_t(T) * H);
  grow(gate_, size_t(T) * I);
  grow(up_, size_t(T) * I);
  grow(act_, size_t(T) * I);
  grow(mlp_out_, size_t(T) * H);

  // Embedding rows.
  pool_->for_range(T, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) kern::row_to_f32(embed_, batch[t].token, &x_[size_t(t) * H]);
  });

  // RoPE tables per token, [T][half]: angle = pos * inv_freq, computed in double.
  std::vector<float> rc(size_t(T) * half), rsn(size_t(T) * half);
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < half; ++i) {
      const double a = batch[t].pos * s.inv_freq[i];
      rc[size_t(t) * half + i] = static_cast<float>(std::cos(a));
      rsn[size_t(t) * half + i] = static_cast<float>(std::sin(a));
    }

  const DType kv_type = kv.bf16() ? DType::BF16 : DType::F32;
  for (int l = 0; l < s.layers; ++l) {
    Layer& L = layers_[l];
    // Attention block: x += o_proj(attn(rope(q), rope(k), v)).
    rmsnorm_rows(*pool_, x_.data(), T, L.attn_norm, s.rms_eps, xn_.data());
    matmuls(xn_.data(), T, {{&L.q, q_.data()}, {&L.k, k_.data()}, {&L.v, v_.data()}});
    pool_->for_range(T, 1, [&](int64_t tb, int64_t te) {
      for (int64_t t = tb; t < te; ++t) {
        const float* cs = &rc[size_t(t) * half];
        const float* sn = &rsn[size_t(t) * half];
        for (int h = 0; h < s.heads; ++h) {
          float* qh = &q_[size_t(t) * QD + size_t(h) * HD];
          if (s.qk_norm) rmsnorm(qh, HD, L.q_norm.data(), s.rms_eps, qh);
          rope_head(qh, HD, cs, sn);
        }
        for (int h = 0; h < s.kv_heads; ++h) {
          float* kh = &k_[size_t(t) * KVD + size_t(h) * HD];
          if (s.qk_norm) rmsnorm(kh, HD, L.k_norm.data(), s.rms_eps, kh);
          rope_head(kh, HD, cs, sn);
        }
        // Append this token's K/V to its sequence (rounded to bf16 for a bf16 cache).
        const size_t at = size_t(batch[t].pos) * KVD * dtype_size(kv_type);
        from_f32(kv_type, &k_[size_t(t) * KVD], static_cast<uint8_t*>(kv.k(l, batch[t].slot)) + at,
                 KVD);
        from_f32(kv_type, &v_[size_t(t) * KVD], static_cast<uint8_t*>(kv.v(l, batch[t].slot)) + at,
                 KVD);
      }
    });
    attention(batch, kv, l);
    matmul(att_.data(), T, L.o, attn_out_.data());
    add_into(*pool_, x_.data(), attn_out_.data(), size_t(T) * H);

    // MLP block: x += down(silu(gate(x)) * up(x)).
    rmsnorm_rows(*pool_, x_.data(), T, L.mlp_norm, s.rms_eps, xn_.data());
    gate_up(xn_.data(), T, L, gate_.data(), up_.data(), act_.data());
    matmul(act_.data(), T, L.down, mlp_out_.data());
    add_into(*pool_, x_.data(), mlp_out_.data(), size_t(T) * H);
  }

  // Final norm and LM head for the requested rows only.
  if (n_out == 0) return;
  std::vector<float> rows(size_t(n_out) * H);
  for (int t = 0, o = 0; t < T; ++t)
    if (batch[t].logits) {
      std::memcpy(&rows[size_t(o) * H], &x_[size_t(t) * H], sizeof(float) * H);
      ++o;
    }
  rmsnorm_rows(*pool_, rows.data(), n_out, final_norm_, s.rms_eps, rows.data());
  Linear head{lm_head_, {}};
  matmul(rows.data(), n_out, head, logits);
}

std::vector<float> Model::forward_all(const std::vector<int32_t>& tokens, int chunk) {
  const int T = static_cast<int>(tokens.size());
  KVCache kv(spec_, 1, std::max(T, 1));
  std::vector<float> out(size_t(T) * spec_.vocab), part;
  const int step = chunk > 0 ? chunk : std::max(T, 1);
  for (int b = 0; b < T; b += step) {
    std::vector<BatchToken> batch;
    for (int t = b; t < std::min(T, b + step); ++t) batch.push_back({tokens[t], 0, t, true});
    forward(batch, kv, part);
    std::copy(part.begin(), part.end(), out.begin() + size_t(b) * spec_.vocab);
  }
  return out;
}

std::vector<int32_t> Model::generate_greedy(const std::vector<int32_t>& prompt, int n,
                                            const std::vector<int32_t>& stop_ids) {
  if (prompt.empty()) throw Error("engine: generate_greedy needs a non-empty prompt");
  const int ctx = static_cast<int>(prompt.size()) + n;
  KVCache kv(spec_, 1, ctx);
  std::vector<BatchToken> batch;
  for (size_t t = 0; t < prompt.size(); ++t)
    batch.push_back({prompt[t], 0, static_cast<int>(t), t + 1 == prompt.size()});
  std::vector<float> logits;
  std::vector<int32_t> out;
  int pos = static_cast<int>(prompt.size());
  for (int i = 0; i < n; ++i) {
    forward(batch, kv, logits);
    const int32_t next =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(next);
    if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) break;
    batch = {{next, 0, pos++, true}};
  }
  return out;
}

}  // namespace rv::engine
