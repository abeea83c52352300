// PEFT LoRA adapter directory -> llama.cpp LoRA adapter GGUF.
//
// What llama.cpp (src/llama-adapter.cpp) reads, and what is written:
// - general.architecture = the base's GGUF architecture (llama.cpp refuses
//   an adapter whose architecture differs from the model's),
//   general.type = "adapter", adapter.type = "lora", adapter.lora.alpha (f32).
// - per LoRA module, "<gguf weight name>.lora_a" and ".lora_b", e.g.
//   blk.0.attn_q.weight.lora_a, in f32. In PyTorch shape order lora_a is
//   [r, in] and lora_b is [out, r] (ggml ne [in, r] and [r, out]), exactly
//   PEFT's lora_A / lora_B; llama.cpp checks a.ne[0] == W.ne[0],
//   b.ne[1] == W.ne[1] and a.ne[1] == b.ne[0], and computes
//   W·x + scale·alpha/r · B·(A·x) with r = b.ne[0] and scale the user's.
// - Llama q/k projections: the base GGUF holds their rows permuted
//   (formats/arch.h gguf_qk_source_row); lora_b's rows get the same
//   permutation so B·A lands on the permuted weight.
// Scaling: GGUF has one alpha per file while PEFT has one per module
// (alpha_pattern / rank_pattern, optionally rsLoRA's alpha/√r). The file's
// alpha is the config's lora_alpha, and each module's B is multiplied by
// s_t · r_t / lora_alpha (s_t = PEFT's scaling of that module), so llama.cpp
// at scale 1 adds exactly PEFT's s_t · B·A.
// Not representable in a llama.cpp LoRA GGUF, hence left out and listed in
// the result: modules_to_save tensors and biases. DoRA and fan_in_fan_out
// adapters are rejected.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace rv {

struct GgufLoraResult {
  std::string arch;                  // general.architecture written
  double alpha = 0;                  // adapter.lora.alpha
  size_t n_modules = 0;              // LoRA pairs written
  std::vector<std::string> skipped;  // adapter tensors left out (modules_to_save, biases)
};

// Reads `peft_adapter_dir` (adapter_config.json + adapter_model.safetensors)
// and the base model's config.json from `base_model_dir`, and writes
// `out_gguf` atomically (rv::AtomicOutput; replaced only when `force`).
// Throws rv::Error("file: problem") for unsupported architectures or adapter
// options, a LoRA module without a GGUF counterpart, A/B shape mismatches
// and I/O errors — all checked before the output is created.
GgufLoraResult write_gguf_lora(const std::filesystem::path& peft_adapter_dir,
                               const std::filesystem::path& base_model_dir,
                               const std::filesystem::path& out_gguf, bool force);

}  // namespace rv
