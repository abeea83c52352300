// Backends that hand each response over the moment it is ready.
//
// The runner stores every response in its SQLite cache as soon as it
// arrives, so a run killed half-way (kill -9) loses nothing that finished.
// Backend::generate / loglikelihood return only when a whole batch is done;
// a StreamingBackend also reports each result as it completes. Both built-in
// backends (HttpBackend, EngineBackend) are StreamingBackends; the runner
// falls back to small chunks for any other Backend.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "eval/backend/backend.h"

namespace rv::eval {

// Called once per request with its index in the request vector. Calls are
// serialised (never concurrent) but may come from any thread, in completion
// order. An exception thrown from the callback aborts the batch and is
// rethrown by the *_stream call.
using GenResultFn = std::function<void(size_t index, const GenResponse& resp)>;
using LoglikResultFn = std::function<void(size_t index, const LoglikResponse& resp)>;

class StreamingBackend : public Backend {
 public:
  // Returns when every request is answered (or throws the first error).
  virtual void generate_stream(const std::vector<GenRequest>& reqs,
                               const GenResultFn& on_result) = 0;
  virtual void loglikelihood_stream(const std::vector<LoglikRequest>& reqs,
                                    const LoglikResultFn& on_result) = 0;

  // Batch forms built on the streaming ones.
  std::vector<GenResponse> generate(const std::vector<GenRequest>& reqs,
                                    const ProgressFn& progress) override {
    std::vector<GenResponse> out(reqs.size());
    size_t done = 0;
    generate_stream(reqs, [&](size_t i, const GenResponse& r) {
      out[i] = r;
      if (progress) progress(++done, reqs.size());
    });
    return out;
  }
  std::vector<LoglikResponse> loglikelihood(const std::vector<LoglikRequest>& reqs,
                                            const ProgressFn& progress) override {
    std::vector<LoglikResponse> out(reqs.size());
    size_t done = 0;
    loglikelihood_stream(reqs, [&](size_t i, const LoglikResponse& r) {
      out[i] = r;
      if (progress) progress(++done, reqs.size());
    });
    return out;
  }
};

}  // namespace rv::eval
