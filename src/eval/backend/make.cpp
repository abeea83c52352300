#include "eval/backend/make.h"

#include "common/error.h"
#include "eval/backend/engine.h"

namespace rv::eval {

std::unique_ptr<Backend> make_backend(const BackendSpec& spec) {
  if (spec.kind == BackendSpec::Kind::kHttp) {
    if (!spec.vectors.empty())
      throw Error("--vector", "vectors load into the built-in engine only, not into a server (" +
                                  spec.http.base_url +
                                  "); serve them with `reasonvec serve --variant`");
    HttpOptions h = spec.http;
    h.identity = spec.identity;
    return std::make_unique<HttpBackend>(h);
  }
  engine::EngineOptions eo;
  eo.max_batch = spec.max_batch;
  eo.max_context = spec.max_context;
  eo.kv_bf16 = spec.kv_bf16;
  eo.copy_weights = spec.copy_weights;
  eo.vectors = spec.vectors;
  return EngineBackend::open(spec.model_dir, eo, spec.identity);
}

}  // namespace rv::eval
