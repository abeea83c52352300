// HttpBackend: the evaluation backend for any OpenAI-compatible server
// (vLLM, SGLang, llama.cpp, `reasonvec serve`).
//
//  - Raw prompts go to POST {base}/v1/completions, chat requests to
//    POST {base}/v1/chat/completions (the server applies its own template).
//  - Log-likelihood uses /v1/completions with echo=true, logprobs=1 and
//    max_tokens=0 (retried once with max_tokens=1 if the server refuses 0) on
//    context+continuation; the continuation's tokens are found through
//    text_offset and their token_logprobs summed. is_greedy compares each
//    continuation token with the best entry of top_logprobs.
//    A server that refuses echo or returns no prompt logprobs (llama.cpp)
//    makes loglikelihood() throw: we never score at chance silently.
//  - `concurrency` requests are in flight at once; 429, 5xx, timeouts and
//    connection errors are retried with exponential backoff (honouring
//    Retry-After); any other 4xx throws rv::Error with the server's message.
//  - Stop strings are sent to the server and also applied to the returned
//    text, so a server that ignores some of them cannot change the answer.
//
// Thread-safety: as Backend (one caller at a time); the callbacks of the
// *_stream methods are serialised.
#pragma once

#include <atomic>
#include <string>

#include "eval/backend/backend.h"

namespace rv::eval {

struct HttpOptions {
  std::string base_url;            // "http://host:port" or "http://host:port/v1" (https too)
  std::string model;               // the server's model name, sent as "model"
  std::string api_key;             // sent as "Authorization: Bearer KEY" when non-empty
  int concurrency = 8;             // requests in flight
  int max_retries = 6;             // after the first attempt
  double backoff_initial_s = 1.0;  // doubled per retry (with +-25% jitter), capped below
  double backoff_max_s = 60.0;
  double timeout_s = 600;  // per request (read); connection timeout is 30 s
  // Replaces fingerprint() when not empty (see BackendSpec::identity).
  std::string identity;
};

class HttpBackend : public Backend {
 public:
  // Throws rv::Error for a malformed base URL or empty model name. Does not
  // contact the server.
  explicit HttpBackend(HttpOptions opt);

  std::string fingerprint() const override;  // identity, or "openai|<base url>|<model>"
  std::string describe() const override;

  void generate_stream(const std::vector<GenRequest>& reqs, const GenResultFn& on_result) override;
  void loglikelihood_stream(const std::vector<LoglikRequest>& reqs,
                            const LoglikResultFn& on_result) override;

  // Number of HTTP attempts made (first tries plus retries); for tests and
  // the benchmark.
  uint64_t attempts() const { return attempts_.load(); }
  uint64_t retries() const { return retries_.load(); }

  struct Url {
    std::string scheme_host_port;  // "http://127.0.0.1:8000"
    std::string prefix;            // "/v1" (or "/something/v1")
  };
  static Url parse_base_url(const std::string& url);

 private:
  struct Worker;
  template <typename Req, typename Resp, typename Fn>
  void run_all(const std::vector<Req>& reqs, const Fn& on_result,
               Resp (HttpBackend::*one)(Worker&, const Req&));
  std::string post(Worker& w, const std::string& path, const std::string& body, int* status_out);
  GenResponse generate_one(Worker& w, const GenRequest& r);
  LoglikResponse loglik_one(Worker& w, const LoglikRequest& r);

  HttpOptions opt_;
  Url url_;
  std::atomic<int> loglik_max_tokens_{0};  // becomes 1 once a server refuses max_tokens=0
  std::atomic<uint64_t> attempts_{0}, retries_{0};
};

// The continuation part of an echoed /v1/completions logprobs object
// (legacy shape: tokens, token_logprobs, top_logprobs, text_offset) for the
// prompt `context + continuation`. Exposed for tests. Throws rv::Error when
// the object holds no prompt logprobs.
LoglikResponse loglik_from_echo(const std::string& logprobs_json, const std::string& context,
                                const std::string& continuation, const std::string& where);

}  // namespace rv::eval
