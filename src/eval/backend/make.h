// One way to construct an evaluation backend from a description, shared by
// `reasonvec eval` and `reasonvec experiment`.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/model.h"

#include "eval/backend/backend.h"
#include "eval/backend/http.h"

namespace rv::eval {

// What to evaluate with: the built-in engine over a model directory (or a
// .gguf file), or an OpenAI-compatible server that is already running.
struct BackendSpec {
  enum class Kind { kEngine, kHttp };
  Kind kind = Kind::kEngine;

  // kEngine: the model directory or .gguf file and engine settings.
  std::filesystem::path model_dir;
  int max_batch = 64;
  int max_context = 4096;
  bool kv_bf16 = false;  // bf16 KV cache (changes the numbers; cached apart)
  // Weights copied into RAM (engine::ModelOptions::copy_weights): same numbers.
  bool copy_weights = false;
  // Vectors added to the weights at load (engine::ModelOptions::vectors);
  // their content and alpha are part of the backend's own fingerprint, so
  // results are cached apart (an `identity` given below must cover them
  // itself). kHttp: must be empty.
  std::vector<engine::LoadVector> vectors;

  // kHttp: base URL, model name, API key, concurrency, retries.
  HttpOptions http;

  // The model identity the request cache keys on (Backend::fingerprint()).
  // Empty: the backend's own (engine: a content hash of the model directory,
  // see ModelDir::fingerprint; server: "openai|URL|model"). Set it when the
  // caller knows a better identity, e.g. the experiment, whose servers get a
  // new port on every run and whose applied models are identified by their
  // inputs (the vector and α included, which spares hashing a vector file
  // as large as the model once per variant). The engine still appends
  // "|<numerics>" (bf16 KV cache or activations change the responses), so
  // such runs stay cached apart.
  std::string identity;
};

// Opens the backend. Throws rv::Error for a missing model, a malformed URL,
// an empty server model name or vectors with a server backend (a server's
// weights are its own: serve the variant, `reasonvec serve --variant`);
// never contacts a server.
std::unique_ptr<Backend> make_backend(const BackendSpec& spec);

}  // namespace rv::eval
