// Internal to the engine: vectors applied while a model loads.
//
// Wraps the model's TensorSource so that get() of a tensor the vectors
// change returns θ + Σ αᵢ·Δᵢ computed by rv::vec::Overlay (the arithmetic of
// `reasonvec apply`, in the vector layer) into memory the model owns; every
// other tensor passes through untouched, still memory-mapped. Doing it at
// the source keeps load_weights() unaware of vectors and gives both loaders
// (directory and GGUF, whose q/k rows are already in Hugging Face order
// here) the same behaviour.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/tensor_source.h"

namespace rv::engine {

// Checks opt.vectors against `inner`'s tensors (throws rv::Error naming the
// vector file before any arithmetic) and returns the wrapping source.
// `owned` receives the materialised tensors and must outlive the returned
// source's results (the Model's owned_). `inner` must outlive the source.
std::unique_ptr<TensorSource> overlay_source(TensorSource& inner, const ModelSpec& spec,
                                             const std::string& model_name, const ModelOptions& opt,
                                             std::vector<OwnedBytes>& owned);

}  // namespace rv::engine
