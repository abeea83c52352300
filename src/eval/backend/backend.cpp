#include "eval/backend/backend.h"

namespace rv::eval {

namespace {

// Collects a streamed batch into request order.
template <typename Resp, typename Req, typename Stream>
std::vector<Resp> collect(const std::vector<Req>& reqs, const ProgressFn& progress,
                          const Stream& stream) {
  std::vector<Resp> out(reqs.size());
  size_t done = 0;
  stream([&](size_t i, const Resp& r) {
    out[i] = r;
    if (progress) progress(++done, reqs.size());
  });
  return out;
}

}  // namespace

std::vector<GenResponse> Backend::generate(const std::vector<GenRequest>& reqs,
                                           const ProgressFn& progress) {
  return collect<GenResponse>(reqs, progress,
                              [&](const GenResultFn& f) { generate_stream(reqs, f); });
}

std::vector<LoglikResponse> Backend::loglikelihood(const std::vector<LoglikRequest>& reqs,
                                                   const ProgressFn& progress) {
  return collect<LoglikResponse>(reqs, progress,
                                 [&](const LoglikResultFn& f) { loglikelihood_stream(reqs, f); });
}

}  // namespace rv::eval
