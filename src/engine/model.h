// The synchronous model API: a decoder-only transformer (Qwen2, Qwen3,
// Llama) loaded from a Hugging Face model directory or from a GGUF file
// written by `reasonvec export-gguf`, run over batches of tokens from many
// sequences at once, with a KV cache.
//
// This is the layer tests, oracles and benchmarks use directly; Engine
// (engine.h) adds scheduling, sampling and text on top.
//
//   auto m = rv::engine::Model::load(dir, {.threads = 2});
//   std::vector<float> logits = m->forward_all(tokens);  // [T][vocab]
//
// Weights stay in the memory-mapped safetensors or GGUF file (bf16, f16 or
// f32 used in place, unless ModelOptions::copy_weights); only norms and
// biases (a few KB) are converted to f32.
// A GGUF file and the directory it was exported from load to the same
// weights, so with the same matrix dtype they give bit-identical logits
// (except Llama-3 "llama3" rope scaling, see Model::load).
//
// Thread-safety: a Model is driven by one thread at a time (forward() uses
// scratch buffers and the model's thread pool). config()/spec() are
// immutable and may be read from anywhere.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/kernels.h"
#include "engine/tensor_source.h"
#include "formats/arch.h"
#include "formats/model_dir.h"

namespace rv::engine {

class ThreadPool;
// Bytes for the engine's owned weight copies: growing does not zero-fill
// (a copy is written in full right after it is allocated, and zeroing a
// gigabyte first would cost a whole extra pass), and buffers of 2 MiB or more
// are mapped with transparent huge pages requested, since writing a
// gigabyte of fresh 4 KiB pages spends as long in page faults as in the
// arithmetic that fills them.
void* owned_alloc(size_t bytes);
void owned_free(void* p, size_t bytes) noexcept;
template <class T>
struct NoInitAllocator {
  using value_type = T;
  NoInitAllocator() = default;
  template <class U>
  NoInitAllocator(const NoInitAllocator<U>&) noexcept {}
  T* allocate(size_t n) { return static_cast<T*>(owned_alloc(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { owned_free(p, n * sizeof(T)); }
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... A>
  void construct(U* p, A&&... a) {
    ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
  }
  template <class U>
  bool operator==(const NoInitAllocator<U>&) const noexcept {
    return true;
  }
};
using OwnedBytes = std::vector<uint8_t, NoInitAllocator<uint8_t>>;

// The architecture table's id (formats/arch.h).
using Arch = ArchId;

// Hyper-parameters the forward pass uses, validated from config.json (or
// from a GGUF file's metadata, via an equivalent ModelConfig).
struct ModelSpec {
  Arch arch = Arch::kQwen2;
  int hidden = 0;  // d_model
  int layers = 0;
  int heads = 0;     // query heads
  int kv_heads = 0;  // key/value heads (GQA: heads % kv_heads == 0)
  int head_dim = 0;
  int intermediate = 0;  // SwiGLU width
  int vocab = 0;
  int max_position = 0;  // max_position_embeddings
  double rms_eps = 1e-6;
  bool tied = false;             // lm_head shares embed_tokens
  bool qkv_bias = false;         // Qwen2 (and Llama with attention_bias)
  bool qk_norm = false;          // Qwen3 per-head RMSNorm of q and k before RoPE
  std::vector<double> inv_freq;  // RoPE frequencies (head_dim / 2), scaling applied

  int q_dim() const { return heads * head_dim; }
  int kv_dim() const { return kv_heads * head_dim; }
};

// Parses and checks the config (architecture, rope_scaling, activation...).
// Throws rv::Error "<where>: ..." for anything the engine does not support.
ModelSpec make_model_spec(const ModelConfig& c, const std::string& where);

// A vector added to the weights as the model loads: θ + alpha·Δ (see
// Model::load). `path` is a full vector (.safetensors file, sharded
// index.json or directory, as `reasonvec apply` reads), a PEFT LoRA adapter
// directory or a llama.cpp GGUF LoRA adapter.
struct LoadVector {
  std::filesystem::path path;
  double alpha = 1;
  bool partial = false;  // a full vector may leave weights unchanged (vec::OverlayTerm::partial)
};

struct ModelOptions {
  int threads = 0;  // 0: rv::num_threads()
  // Added in order, as `reasonvec apply` adds them (see Model::load).
  std::vector<LoadVector> vectors = {};
  // Receives the vectors' notes and warnings ("warning: ..."); may be empty.
  using Log = std::function<void(const std::string&)>;
  Log log = {};
  // Copy every weight matrix out of the mapped file into memory the model
  // owns, in 2 MiB pages where the kernel grants them (llama.cpp's
  // --no-mmap). Decode reads every weight once a token; where the page cache
  // holds the file in 4 KiB folios (see MappedFile), the mapping's TLB misses
  // slow that stream down (docs/engine.md has the measurement). Costs a copy
  // of the weights in RAM (the file's pages stay in the page cache,
  // reclaimable), a slower load, and variant() models no longer share
  // unchanged weights. Results are bit-identical either way.
  bool copy_weights = false;
};

// Key/value storage for up to `slots` sequences of up to `max_context`
// positions each, as f32 or (bf16 = true) bf16 rows, half the memory. A
// bf16 cache rounds K and V to nearest-even when they are written (8
// significant bits, relative error <= 2^-8 per element); attention widens
// them back to f32 exactly. Memory is reserved virtually and committed only
// as positions are written, so a large cache costs what is used.
class KVCache {
 public:
  KVCache(const ModelSpec& spec, int slots, int max_context, bool bf16 = false);
  ~KVCache();
  KVCache(const KVCache&) = delete;
  KVCache& operator=(const KVCache&) = delete;

  int slots() const { return slots_; }
  int max_context() const { return max_context_; }
  bool bf16() const { return bf16_; }
  // Bytes reserved for all slots at full context (what a full cache commits).
  size_t bytes() const { return bytes_; }
  // [max_context][kv_dim] rows of layer `layer` for sequence slot `slot`, of
  // float (f32 cache) or uint16_t bf16 bits (bf16 cache).
  void* k(int layer, int slot) { return base(layer, slot, 0); }
  void* v(int layer, int slot) { return base(layer, slot, 1); }
  // Returns the slot's memory to the OS (contents become zeros).
  void release(int slot);

 private:
  uint8_t* base(int layer, int slot, int kv) {
    return data_ + ((static_cast<size_t>(slot) * layers_ + layer) * 2 + kv) * per_;
  }
  int slots_, max_context_, layers_;
  bool bf16_;
  size_t per_;  // bytes per (slot, layer, k|v)
  size_t bytes_;
  uint8_t* data_ = nullptr;
};

// One token of a batch: the token id, the sequence slot it belongs to and
// its position there. REQUIRES: a slot's positions 0..pos-1 were written by
// earlier forward() calls or earlier in this batch, in order.
struct BatchToken {
  int32_t token = 0;
  int slot = 0;
  int pos = 0;
  bool logits = false;  // produce next-token logits for this token
};

class Model {
 public:
  // Opens a model directory (config.json + safetensors) or, when
  // gguf::is_gguf_path(path), a GGUF file as `reasonvec export-gguf` writes
  // it: general.architecture qwen2 | qwen3 | llama with F32/F16/BF16 tensors
  // under llama.cpp names. GGUF hyper-parameters come from the <arch>.*
  // keys; tied embeddings = no output.weight; Llama q/k rows are permuted
  // back to Hugging Face's layout into owned copies (the only weights not
  // used in place); a rope_freqs.weight tensor (Llama-3 rope scaling)
  // divides the RoPE frequencies exactly as the directory's rope_scaling
  // does (both use rv::llama3_rope_divisors: bit-identical logits). Throws
  // rv::Error "<file>: <problem>" naming the file, key or tensor on
  // unsupported configs or architectures, quantized tensor types, missing
  // keys or tensors, tensors the engine would not use, wrong shapes and
  // truncated files.
  //
  // opt.vectors are applied to the weights in memory as they load, exactly
  // as `reasonvec apply` computes them (vector/overlay.h: f32 θ + Σ αᵢ·Δᵢ,
  // rounded once to each tensor's dtype), so a full vector gives logits
  // bit-identical to apply's output model; LoRA adapters give Δ = scale·B·A.
  // Only the tensors a vector changes are materialised (owned, in the
  // tensor's dtype); every other one stays memory-mapped. Every vector is
  // checked against the model before any arithmetic: tensors the model
  // lacks, other shapes, a vocabulary-size mismatch, LoRA A/B that do not
  // fit throw rv::Error "<vector file>: <problem>" naming the tensor.
  static std::unique_ptr<Model> load(const std::filesystem::path& path,
                                     const ModelOptions& opt = {});
  // Another Model over this one's memory-mapped files (nothing is mapped
  // twice; a GGUF Llama's re-ordered q/k copies are made again) with opt.vectors (and opt.threads,
  // a pool of its own) applied to the file's weights: this model's own vectors are not inherited.
  // For serving several variants of one model. Throws as load(). Thread-safety: may run while
  // another thread drives this model.
  std::unique_ptr<Model> variant(const ModelOptions& opt) const;
  // A Model over caller-owned tensors: Hugging Face names, row-major in the
  // Hugging Face layout, F32/F16/BF16, used in place (nothing is copied but
  // norms and biases, as load() does), with hyper-parameters from `cfg` (as
  // parse_model_config gives). For sampling from weights being trained
  // without a disk round trip; weight_bytes() is the tensors' total size. REQUIRES: every tensor's
  // memory stays alive and unchanged while the Model lives. opt.vectors apply as in load(). Throws
  // rv::Error "memory: <problem>" naming the tensor for duplicate names, null data, missing
  // tensors, wrong shapes or dtypes, and as make_model_spec for unsupported configs.
  static std::unique_ptr<Model> from_memory(
      const ModelConfig& cfg, std::vector<std::pair<std::string, TensorSource::Tensor>> tensors,
      const ModelOptions& opt = {});
  ~Model();

  // The vectors applied at load, in order.
  const std::vector<LoadVector>& vectors() const { return vectors_; }
  // Bytes of weights this model holds in its own memory: tensors the vectors
  // changed, (GGUF Llama) q/k matrices re-ordered at load, and with
  // ModelOptions::copy_weights every other matrix (each padded to 64 bytes).
  uint64_t owned_bytes() const;

  // The config.json of a directory; for a GGUF file one synthesized from its
  // metadata (architectures, model_type, sizes, rope_theta, rms_norm_eps,
  // tie_word_embeddings, attention_bias, torch_dtype of token_embd; no
  // rope_scaling: its effect is in spec().inv_freq).
  const ModelConfig& config() const { return config_; }
  const ModelSpec& spec() const { return spec_; }
  // Bytes of the files holding the weights (all safetensors files, or the
  // GGUF file).
  uint64_t weight_bytes() const { return weight_bytes_; }
  // Whether any weight matrix (layers or output head) is stored as bf16:
  // only those go through the AVX-512 BF16 kernel.
  bool has_bf16_matrices() const;
  int threads() const;
  // The model's worker pool, for callers that post-process a batch's logits
  // in parallel on the same thread that calls forward().
  ThreadPool& pool() { return *pool_; }

  // Runs every token of `batch` through the network, appending their K/V to
  // `kv`, and writes one row of `spec().vocab` f32 logits per token with
  // logits=true, in batch order, to `logits` (resized).
  void forward(const std::vector<BatchToken>& batch, KVCache& kv, std::vector<float>& logits);
  // The same into caller-owned memory with room for every logits row: the
  // engine reuses one buffer, since growing a vector zero-fills and a
  // 256-row buffer of a 150k vocabulary is 150 MB.
  void forward(const std::vector<BatchToken>& batch, KVCache& kv, float* logits);

  // Convenience for tests and oracles: runs `tokens` as one fresh sequence
  // (positions 0..T-1) and returns logits at every position, [T][vocab].
  // `chunk` > 0 splits the prompt into forward() calls of that many tokens.
  std::vector<float> forward_all(const std::vector<int32_t>& tokens, int chunk = 0);

  // Greedy continuation of `prompt` for `n` tokens (argmax, ties -> lowest
  // id); stops early after any id in `stop_ids`.
  std::vector<int32_t> generate_greedy(const std::vector<int32_t>& prompt, int n,
                                       const std::vector<int32_t>& stop_ids = {});

 private:
  struct Linear {
    kern::WeightView w;
    std::vector<float> bias;  // empty: none
  };
  struct Layer {
    std::vector<float> attn_norm, mlp_norm;  // [hidden]
    std::vector<float> q_norm, k_norm;       // [head_dim], Qwen3
    Linear q, k, v, o;      // [q_dim][hidden], [kv_dim][hidden] x2, [hidden][q_dim]
    Linear gate, up, down;  // [inter][hidden] x2, [hidden][inter]
    // The seven weight matrices, for loops over all of them.
    std::array<Linear*, 7> linears() { return {&q, &k, &v, &o, &gate, &up, &down}; }
    std::array<const Linear*, 7> linears() const { return {&q, &k, &v, &o, &gate, &up, &down}; }
  };

  Model() = default;
  static std::unique_ptr<Model> load_dir(std::shared_ptr<const ModelDir> dir,
                                         const ModelOptions& opt);
  static std::unique_ptr<Model> load_gguf(std::shared_ptr<const MappedFile> file,
                                          const ModelOptions& opt);
  // Fills the weights from `src` for spec_ (set first), with opt.vectors
  // applied (engine/vector_overlay.h), and starts the pool.
  void load_from(TensorSource& src, const std::string& model_name, const ModelOptions& opt);
  void load_weights(TensorSource& src);
  void copy_weights();  // ModelOptions::copy_weights
  // Runs fn over [0, rows) of a product of T tokens, split across the pool.
  // One token (decode: short, memory-bound loops) is cut into about eight
  // pieces a thread, handed out as threads finish, so a thread the machine
  // slows holds up the others by one piece. More tokens give each thread one
  // contiguous share: every kern::matmul_rows call converts all of X, so
  // more pieces would repeat that work.
  void split_rows(int64_t rows, int T, const std::function<void(int64_t, int64_t)>& fn);
  // Y[T][L.w.rows] = X[T][L.w.cols] * L.w^T + L.bias for each linear of
  // `outs` (all reading the same X), in one pool dispatch: their rows form
  // one range split across the threads (split_rows), so the pool
  // synchronises once instead of once per matrix (decode pays for every
  // synchronisation); a thread adds the biases of the rows it computed.
  struct MatmulOut {
    const Linear* L;
    float* Y;
  };
  void matmuls(const float* X, int T, std::initializer_list<MatmulOut> outs);
  // matmuls() of one linear.
  void matmul(const float* X, int T, const Linear& L, float* Y);
  // act[T][I] = silu(X * gate^T) * (X * up^T) in one pool dispatch: each
  // thread computes gate and up for the same rows, then their product
  // (gate/up as scratch, [T][I] each). The same arithmetic as matmuls() of
  // both followed by kern::silu_mul.
  void gate_up(const float* X, int T, const Layer& L, float* gate, float* up, float* act);
  // Causal attention of every (token, query head) of `batch` over its
  // sequence's cached K/V rows of `layer` (f32 or bf16 cache): att_[t] from
  // q_[t], via kern::attend.
  void attention(const std::vector<BatchToken>& batch, KVCache& kv, int layer);

  ModelConfig config_;
  ModelSpec spec_;
  // What keeps the weights alive: the directory's mapped safetensors, or the
  // mapped GGUF file plus the tensors rearranged at load.
  // Shared with variant() models, so unchanged tensors are mapped once.
  std::shared_ptr<const ModelDir> dir_;
  std::shared_ptr<const MappedFile> gguf_;
  std::vector<OwnedBytes> owned_;
  std::vector<LoadVector> vectors_;
  uint64_t weight_bytes_ = 0;
  kern::WeightView embed_, lm_head_;
  std::vector<float> final_norm_;
  std::vector<Layer> layers_;
  std::unique_ptr<ThreadPool> pool_;
  // Scratch of forward(), grown on demand; T = tokens in the batch.
  std::vector<float> x_;          // [T][hidden] residual stream
  std::vector<float> xn_;         // [T][hidden] RMS-normed input of the current block
  std::vector<float> q_;          // [T][q_dim] queries (after qk-norm and RoPE)
  std::vector<float> k_, v_;      // [T][kv_dim] this batch's keys (qk-norm, RoPE) and values
  std::vector<float> att_;        // [T][q_dim] attention output, heads concatenated
  std::vector<float> attn_out_;   // [T][hidden] o_proj(att_), added to x_
  std::vector<float> gate_, up_;  // [T][intermediate] gate_proj(xn_), up_proj(xn_)
  std::vector<float> act_;        // [T][intermediate] silu(gate_) * up_
  std::vector<float> mlp_out_;    // [T][hidden] down_proj(act_), added to x_
};

}  // namespace rv::engine
