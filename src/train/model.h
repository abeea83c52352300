// Training for the engine's own architecture: the Qwen2 decoder (token
// embeddings, RMSNorm, RoPE, grouped-query causal attention with q/k/v
// biases, SwiGLU MLP, tied or untied LM head) with f32 master weights, a
// forward pass that keeps its activations and a hand-written backward pass.
//
//   rv::train::TrainModel m(shape, {.threads = 2});
//   m.init(seed);
//   const auto& logits = m.forward(batch);          // [rows*T][vocab]
//   double loss = rv::train::cross_entropy(logits, shape.vocab, targets, norm, dlogits);
//   m.backward(dlogits);                            // grads += dL/dθ
//
// Checkpoints are Hugging Face directories (config.json, f32
// model.safetensors, generation_config.json) that Model::load, `reasonvec
// generate`, `eval` and `export-gguf` read unchanged; the caller copies the
// tokenizer files in.
//
// Thread-safety: a TrainModel is driven by one thread at a time; matrix
// products use OpenBLAS on `threads` threads (forward/backward set
// OpenBLAS's process-wide thread count), attention the model's own pool.
// The f32 arithmetic lives in model_core.h (templated, so that the tests
// can run the same code in f64).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace rv::train {

// Hyper-parameters of the trained decoder (Qwen2 semantics, as config.json).
struct ModelShape {
  int vocab = 1024;
  int hidden = 128;
  int layers = 4;
  int heads = 4;
  int kv_heads = 2;
  int intermediate = 384;
  int max_position = 1024;
  double rope_theta = 10000.0;
  double rms_eps = 1e-6;
  bool tied = true;
  int head_dim() const { return hidden / heads; }
  // Throws rv::Error("<where>: <key>: <problem>") for sizes that do not
  // divide (hidden % heads, heads % kv_heads, odd head_dim) or are < 1.
  void validate(const std::string& where) const;
};

// Named f32 tensors in one contiguous buffer, in a fixed order (embeddings,
// then per layer input_layernorm, q/k/v (weight, bias), o, post_attention_layernorm,
// gate/up/down, then the final norm and, untied, lm_head), by Hugging Face name.
struct ParamSet {
  struct Entry {
    std::string name;
    std::vector<int64_t> shape;
    size_t offset = 0;  // in floats
    size_t size = 0;    // in floats
  };
  std::vector<Entry> entries;
  std::vector<float> data;

  // REQUIRES: a tensor of that name exists (throws rv::Error otherwise).
  float* get(const std::string& name);
  const float* get(const std::string& name) const;
  const Entry& entry(const std::string& name) const;
  size_t size() const { return data.size(); }
};

// A training batch: `rows` sequences of `T` tokens each (row-major
// [rows][T]). Per token: its id, its position (RoPE) and its segment:
// a token attends to earlier tokens of its own row with the same segment
// (sequence packing: several documents per row, positions restarting at 0
// for each). seg = -1 marks padding: not attended, its logits are
// unspecified and its dlogits must be 0.
struct Batch {
  int rows = 0;
  int T = 0;
  std::vector<int32_t> tokens;  // [rows*T]
  std::vector<int32_t> pos;     // [rows*T]
  std::vector<int32_t> seg;     // [rows*T]
};

struct TrainModelOptions {
  int threads = 0;  // 0: rv::num_threads()
};

class TrainModel {
 public:
  TrainModel(const ModelShape& shape, const TrainModelOptions& opt = {});
  ~TrainModel();
  TrainModel(TrainModel&&) noexcept;
  TrainModel& operator=(TrainModel&&) noexcept;

  // Seeded init: matrices and embeddings N(0, std²) (std = 0.02), o_proj and
  // down_proj scaled by 1/sqrt(2·layers), norms 1, biases 0. Same seed, same
  // weights on any thread count.
  void init(uint64_t seed, float std = 0.02f);

  // Loads a Hugging Face Qwen2 directory (f32, bf16 or f16 safetensors) into
  // f32 master weights. Throws rv::Error naming the file and tensor.
  static TrainModel load(const std::filesystem::path& dir, const TrainModelOptions& opt = {});
  // Writes config.json (Qwen2ForCausalLM, torch_dtype float32),
  // generation_config.json and model.safetensors (f32) into `dir`
  // atomically (a temporary sibling renamed into place; an existing `dir`
  // is replaced). `eos_token_id` / `bos_token_id` go into both configs (-1: none).
  void save(const std::filesystem::path& dir, int bos_token_id, int eos_token_id) const;

  const ModelShape& shape() const;
  ParamSet& params();
  const ParamSet& params() const;
  ParamSet& grads();  // same layout as params()
  void zero_grad();

  // Runs the batch; returns logits [rows*T][vocab] and keeps what backward()
  // needs. The reference stays valid until the next forward().
  const std::vector<float>& forward(const Batch& batch);
  // Accumulates (+=) dL/dθ into grads() from dL/dlogits of the last
  // forward() (same layout as its logits).
  void backward(const std::vector<float>& dlogits);

 private:
  struct Impl;
  Impl* impl_;
};

// The config.json TrainModel::save writes for `shape` (Qwen2ForCausalLM,
// float32; bos/eos -1: null): also what the engine is given for a model over
// in-memory training weights.
nlohmann::json hf_config(const ModelShape& shape, int bos_token_id, int eos_token_id);

// Mean token cross-entropy: for every i with targets[i] >= 0, -log softmax(logits[i])[targets[i]],
// summed and divided by `normalizer` (> 0; usually the number of counted tokens).
// Writes dL/dlogits into `dlogits` (resized to logits.size(); rows with target < 0 get 0).
// Log-softmax in double.
double cross_entropy(const std::vector<float>& logits, int vocab,
                     const std::vector<int32_t>& targets, double normalizer,
                     std::vector<float>& dlogits);

}  // namespace rv::train
