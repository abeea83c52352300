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
//  - Sampling: seed (when temperature > 0), top_k and min_p (when set) and
//    chat_template_kwargs (chat requests) are sent as the extra body fields
//    vLLM, SGLang and llama.cpp's server accept. A server answering 400/422
//    that names one of them (its error's "param" or the message) gets the
//    request again without it, and from then on never; such parameters are
//    reported by unsent_parameters() (results.json config).
//  - Consecutive requests that differ only by consecutive seeds (a
//    document's K samples) go as one request with n = K and the first seed
//    (`reasonvec serve` gives choice j the seed + j; `use_n`). A server that
//    refuses n gets separate requests from then on.
//  - Several servers (base_urls): `concurrency` requests in flight to each,
//    all taking work from one queue. The fingerprint names the first server
//    only, so which server answered never changes the cache key.
//  - completion_tokens: usage.completion_tokens (with n > 1 divided evenly
//    among the choices, the remainder to the first ones).
//
// Thread-safety: as Backend (one caller at a time); the callbacks of the
// *_stream methods are serialised.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "eval/backend/backend.h"

namespace rv::eval {

struct HttpOptions {
  std::string base_url;  // "http://host:port" or "http://host:port/v1" (https too)
  // Several servers of the same model; when not empty it replaces base_url
  // (whose place the first one takes, e.g. in the fingerprint).
  std::vector<std::string> base_urls;
  bool use_n = true;               // one request with n = K for a document's K samples
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

  std::string fingerprint() const override;  // identity, or "openai|<first base url>|<model>"
  std::string describe() const override;
  std::vector<std::string> unsent_parameters() const override;

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
  struct GenGroup {  // requests sent as one (n = indices.size())
    const GenRequest* req;
    std::vector<size_t> indices;
  };
  template <typename Req, typename Resp, typename Fn>
  void run_all(const std::vector<Req>& reqs, const Fn& on_result,
               Resp (HttpBackend::*one)(Worker&, const Req&));
  std::string post(Worker& w, const std::string& path, const std::string& body, int* status_out);
  std::vector<GenResponse> generate_group(Worker& w, const GenGroup& g);
  std::vector<GenResponse> generate_n(Worker& w, const GenRequest& r, int n);
  LoglikResponse loglik_one(Worker& w, const LoglikRequest& r);
  bool dropped(const std::string& param) const;

  HttpOptions opt_;
  std::vector<Url> urls_;
  Url url_;  // urls_[0]
  mutable std::mutex drop_mu_;
  std::vector<std::string> dropped_;  // parameters the server refused
  std::atomic<bool> n_refused_{false};
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
