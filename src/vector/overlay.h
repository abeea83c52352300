// Vectors at load time: the tensors that one or more vectors change in a
// model, computed exactly as `apply` computes them, for a caller (the
// engine) that keeps every other tensor where it is (memory-mapped).
//
//   θ'[name] = round_to(dtype of θ[name], θ + Σ αᵢ·Δᵢ)    (f32 accumulator)
//
// A term's file is one of:
//   - a full vector: a .safetensors file, a sharded index.json or a
//     directory, as `apply` reads it; Δ = the stored tensor;
//   - a PEFT LoRA adapter directory (adapter_config.json +
//     adapter_model.safetensors, tensors
//     base_model.model.<module>.lora_A.weight [r, in] and .lora_B.weight
//     [out, r]): Δ = (B·A) · lora_alpha / r (or / sqrt(r) with use_rslora;
//     rank_pattern / alpha_pattern override r and lora_alpha per module);
//   - a llama.cpp GGUF LoRA adapter (general.type = adapter, adapter.type =
//     lora): tensors <llama.cpp name>.lora_a [r, in] and .lora_b [out, r]
//     (ggml ne reversed), Δ = (B·A) · adapter.lora.alpha / r (scale 1 when
//     alpha is 0, as llama.cpp); for architectures whose GGUF q/k rows are
//     permuted (Llama) B's rows are put back in Hugging Face order.
// LoRA products B·A are summed in f32 over the rank in increasing order and
// then scaled, so the dense Δ is not bit-identical to one computed another
// way (a framework's matmul); a full vector gives bit for bit the weights
// `apply` writes: the same f32 arithmetic (fused_axpy or the generic loop,
// in rv_vector with -ffp-contract=off), terms added in order, one rounding.
//
// Policies (apply's defaults): a vector's lm_head delta on a tied target is
// not applied (a note); a vector from tied models (embed_tokens only) also
// changes an untied target's lm_head; a vocabulary-size mismatch is an
// error. Unlike apply, a vector tensor the target lacks is an error: a
// vector meant for another model should not load silently.
//
// Thread-safety: an Overlay is immutable after construction; compute() runs
// on the process-wide pool (common/parallel.h) and may be called from one
// thread at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/arch.h"
#include "formats/dtype.h"

namespace rv::vec {

struct OverlayTerm {
  std::filesystem::path path;  // full vector, PEFT adapter directory or GGUF adapter
  double alpha = 1.0;          // finite; negative subtracts
  // A full vector that leaves some of the target's weights (float *.weight /
  // *.bias tensors) unchanged is refused unless this is set, as `apply`
  // refuses it without --partial. (LoRA adapters cover projections only by
  // design and are never refused for it.)
  bool partial = false;
};

// What the overlay checks the vectors against.
struct OverlayTarget {
  struct Tensor {
    DType dtype = DType::F32;
    std::vector<int64_t> shape;  // Hugging Face order (rows first)
  };
  std::map<std::string, Tensor> tensors;  // by Hugging Face name
  ArchId arch = ArchId::kQwen2;           // GGUF adapters: architecture and q/k layout
  int head_dim = 0;
  std::string name;  // the model's directory or file name (adapters' base_model_name_or_path)
};

class Overlay {
 public:
  using Log = std::function<void(const std::string&)>;

  // Opens every term's file and checks it against `target` before any
  // arithmetic. Throws rv::Error "<term's file>: <problem>" naming the
  // tensor: unreadable or unknown file kinds, a non-finite alpha, tensors
  // the target lacks, other shapes, a vocabulary-size mismatch, non-float
  // dtypes, a full vector that leaves target weights unchanged (unless
  // partial), LoRA A/B ranks or sizes that do not fit, unsupported adapter
  // features (DoRA, embedding LoRA, modules_to_save, another architecture).
  // `log` (may be empty) gets notes and warnings ("warning: ...": an
  // adapter's base_model_name_or_path that is not target.name).
  Overlay(const OverlayTarget& target, const std::vector<OverlayTerm>& terms, const Log& log);
  ~Overlay();
  Overlay(const Overlay&) = delete;
  Overlay& operator=(const Overlay&) = delete;

  // Whether the vectors change target tensor `name`, and all such names.
  bool changes(const std::string& name) const;
  std::vector<std::string> changed() const;

  // Writes θ + Σ αᵢ·Δᵢ of tensor `name` to `out`, in the target's dtype.
  // `base` is the tensor's current data in the target's dtype and Hugging
  // Face layout. REQUIRES: changes(name); `out` holds the tensor's bytes and
  // does not overlap `base`. Returns the number of non-finite results.
  uint64_t compute(const std::string& name, const uint8_t* base, uint8_t* out) const;

  // A term's vector file opened as dense f32 deltas by Hugging Face name
  // (internal; public so the implementation's readers can derive from it).
  class Delta;

 private:
  struct Add {
    size_t term;
    std::string tensor;  // the name in the delta
  };
  OverlayTarget target_;
  std::vector<OverlayTerm> terms_;
  std::vector<std::unique_ptr<Delta>> deltas_;
  std::map<std::string, std::vector<Add>> plan_;  // target tensor -> its addends, in term order
};

}  // namespace rv::vec
