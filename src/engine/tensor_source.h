// Internal to the engine: where Model::load finds a model's tensors.
//
// The loader asks for tensors by their Hugging Face name
// ("model.layers.3.self_attn.q_proj.weight"); a source maps that to its own
// file layout and returns row-major data in the Hugging Face layout (shape
// outermost first), used in place. Two sources exist: a safetensors model
// directory (model.cpp) and a GGUF file written by `reasonvec export-gguf`
// (model_gguf.cpp), which renames tensors and, for Llama, permutes q/k rows.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "formats/dtype.h"

namespace rv::engine {

struct TensorSource {
  struct Tensor {
    const uint8_t* data = nullptr;  // valid for the Model's lifetime
    DType dtype = DType::F32;
    std::vector<int64_t> shape;  // Hugging Face order (rows first)
  };

  virtual ~TensorSource() = default;
  virtual bool has(const std::string& hf_name) const = 0;
  // REQUIRES: has(hf_name).
  virtual Tensor get(const std::string& hf_name) = 0;
  // Every tensor of the source by Hugging Face name, with dtype and shape
  // only (data null, nothing read or copied): what load-time vectors are
  // checked against.
  virtual std::vector<std::pair<std::string, Tensor>> list() const = 0;
  // The tensor's name in the file, for messages.
  virtual std::string file_name(const std::string& hf_name) const = 0;

  std::string where;       // message prefix: the directory or file
  std::string implied_by;  // what the expected shapes come from ("config.json")
};

}  // namespace rv::engine
