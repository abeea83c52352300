// An OpenAI-compatible HTTP server over an engine::Engine.
//
// Start here: Server srv(engine, opts); int port = srv.bind(); srv.run();
// and srv.stop() from another thread (or a signal watcher) to shut down.
//
// Routes: GET /v1/models, POST /v1/completions, POST /v1/chat/completions
// (both with "stream": true as server-sent events), GET /health. Every
// request is handled on its own HTTP worker thread and submitted to the
// engine at once, so concurrent requests are batched by the engine's
// scheduler. Errors are OpenAI error objects: 400 bad JSON / parameters /
// prompt too long, 401 wrong API key, 404 unknown route or model, 405 wrong
// method, 413 body over the limit, 500 engine failure.
//
// Named variants (add_variant): one server may answer for several versions
// of its model, e.g. the base plus base + α·vector, chosen by the request's
// "model" field and all listed by /v1/models. Each variant is its own
// Engine (Engine::variant: the weights the vectors do not change stay one
// shared mapping), with its own scheduler thread and KV cache. That is the
// simplest correct design: a batch runs one set of weights, so a single
// scheduler batching per variant would need the same per-variant state and
// queues and would serialise the variants' steps; separate engines run
// them concurrently and reuse the engine unchanged. The cost is one worker
// pool per variant (threads contend when several variants are busy at once).
//
// Thread-safety: bind() and run() are called once, from one thread; stop()
// may be called from any thread at any time (it only sets a flag, so it is
// also safe to call before run()).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "engine/engine.h"

namespace rv::server {

struct ServerOptions {
  std::string host = "127.0.0.1";     // loopback unless asked otherwise
  int port = 8080;                    // 0: any free port (bind() returns it)
  std::string api_key;                // non-empty: require "Authorization: Bearer <key>"
  std::string served_model_name;      // empty: engine.model_name()
  std::string chat_template;          // empty: the tokenizer's chat template
  size_t max_body_bytes = 10u << 20;  // larger request bodies get 413
  // HTTP worker threads = the most requests in flight at once (each waits on
  // the engine while it runs); keep it above the engine's max_batch so that
  // concurrent clients can fill a batch.
  int http_threads = 256;
  // After stop(): in-flight requests get this long to finish, then the
  // engine's remaining work is cancelled (clients see an error).
  double shutdown_grace_s = 10;
  // One stderr line per answered request ("METHOD PATH STATUS MS"), written
  // once the response has been sent (as llama-server's and vLLM's logs).
  bool log_requests = false;
};

class Server {
 public:
  // `engine` must outlive the Server.
  Server(engine::Engine& engine, ServerOptions opt);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Also answers requests whose "model" is `name` with `engine`, a variant
  // of the main engine (same tokenizer and context size, e.g. from
  // Engine::variant). `engine` must outlive the Server. Throws rv::Error when
  // `name` is already served. REQUIRES: before bind().
  void add_variant(std::string name, engine::Engine& engine);

  // Binds the listening socket; returns the port (the chosen one for port 0).
  // Throws rv::Error("host:port: ...") when the address cannot be bound.
  int bind();
  // Serves until stop(); returns once in-flight requests have finished.
  // REQUIRES: bind() succeeded.
  void run();
  // Requests shutdown: stop accepting, let in-flight requests finish (up to
  // shutdown_grace_s, then cancel them), make run() return. Idempotent.
  void stop();

  const std::string& served_model_name() const;

  struct Impl;  // opaque; public only so the implementation file can name it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace rv::server
