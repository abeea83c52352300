// reasonvec serve: the OpenAI-compatible HTTP server over the engine.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/commands.h"
#include "cli/vector_flags.h"
#include "common/error.h"
#include "common/file.h"
#include "engine/engine.h"
#include "server/server.h"

namespace rv::cli {

namespace {

struct ServeArgs {
  std::string model;
  engine::EngineOptions engine;
  server::ServerOptions server;
  std::string chat_template_file;
  double max_body_mb = 10;
  VectorFlags vectors;                // applied to the main model
  std::vector<std::string> variants;  // NAME=VECTOR:ALPHA+VECTOR:ALPHA...
};

void run_serve(ServeArgs& a) {
  if (!a.chat_template_file.empty()) a.server.chat_template = read_file(a.chat_template_file);
  if (a.max_body_mb <= 0) throw Error("--max-body-mb: must be positive");
  a.server.max_body_bytes = size_t(a.max_body_mb * 1024 * 1024);
  if (a.server.served_model_name.empty()) {
    // The directory name, also for paths given with a trailing slash.
    std::filesystem::path p = std::filesystem::path(a.model).lexically_normal();
    if (p.filename().empty()) p = p.parent_path();
    a.server.served_model_name = p.filename().string();
  }
  // Every variant is checked (names, alphas) before any model loads.
  std::vector<std::pair<std::string, std::vector<engine::LoadVector>>> variants;
  for (const auto& v : a.variants) {
    const size_t eq = v.find('=');
    if (eq == std::string::npos || eq == 0)
      throw CLI::ValidationError("--variant", "'" + v + "' is not NAME=VECTOR:ALPHA[+...]");
    const std::string name = v.substr(0, eq);
    bool taken = name == a.server.served_model_name;
    for (const auto& [n, vs] : variants) taken = taken || n == name;
    if (taken) throw CLI::ValidationError("--variant", "model name '" + name + "' is used twice");
    variants.push_back({name, parse_vector_list(v.substr(eq + 1))});
    for (auto& lv : variants.back().second) lv.partial = a.vectors.partial;
  }
  a.engine.vectors = load_vectors(a.vectors);
  a.engine.log = log_line;
  auto eng = engine::Engine::open(a.model, a.engine);
  std::vector<std::unique_ptr<engine::Engine>> variant_engines;  // outlive the server
  server::Server srv(*eng, a.server);
  for (auto& [name, vectors] : variants) {
    engine::EngineOptions eo = a.engine;
    eo.vectors = vectors;
    variant_engines.push_back(eng->variant(eo));
    srv.add_variant(name, *variant_engines.back());
    fprintf(stderr, "reasonvec serve: variant %s = %s%s%s\n", name.c_str(),
            srv.served_model_name().c_str(), vectors.empty() ? "" : " + ",
            describe_vectors(vectors).c_str());
  }
  const int port = srv.bind();
  std::atomic<bool> done{false};
  // The interrupt handler only sets a flag; turn it into a server stop.
  std::thread watcher([&] {
    while (!done.load()) {
      if (interrupted()) {
        srv.stop();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  fprintf(stderr, "reasonvec serve: model %s listening on http://%s:%d\n",
          srv.served_model_name().c_str(), a.server.host.c_str(), port);
  fflush(stderr);
  srv.run();
  done.store(true);
  watcher.join();
  fprintf(stderr, "reasonvec serve: stopped\n");
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto* a = keep_alive<ServeArgs>();
  auto* sub = app.add_subcommand(
      "serve",
      "Serve a model over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions)");
  sub->add_option("--model,-m", a->model, "Model directory (or .gguf written by export-gguf)")
      ->required();
  sub->add_option("--host", a->server.host, "Address to listen on (loopback by default)")
      ->capture_default_str();
  sub->add_option("--port", a->server.port, "Port (0: pick a free one and print it)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  sub->add_option("--api-key", a->server.api_key,
                  "Require 'Authorization: Bearer KEY' on every /v1 request");
  sub->add_option("--served-model-name", a->server.served_model_name,
                  "Model name in the API (default: the model directory's name)");
  sub->add_option("--chat-template", a->chat_template_file,
                  "Jinja chat template file (default: the tokenizer's)");
  sub->add_option("--max-batch", a->engine.max_batch, "Sequences decoded together")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--max-context", a->engine.max_context,
                  "Tokens per sequence (prompt + completion); sizes the KV cache")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_flag("--kv-bf16", a->engine.kv_bf16,
                "Store the KV cache in bf16 (half the memory, logits change slightly)");
  add_no_mmap_flag(sub, &a->engine.copy_weights);
  sub->add_option("--max-body-mb", a->max_body_mb, "Largest request body in MiB (else 413)")
      ->capture_default_str();
  sub->add_option("--http-threads", a->server.http_threads,
                  "HTTP worker threads = most requests in flight")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option(
         "--shutdown-grace", a->server.shutdown_grace_s,
         "Seconds in-flight requests get to finish after SIGINT/SIGTERM before they are cancelled")
      ->capture_default_str();
  sub->add_flag("--log-requests", a->server.log_requests,
                "Log each answered request (method, path, status, milliseconds) to stderr");
  add_vector_flags(sub, &a->vectors);
  sub->add_option("--variant", a->variants,
                  "Also serve NAME = the model + vectors, chosen by a request's \"model\" "
                  "(repeatable): NAME=VECTOR:ALPHA, several joined by '+', or NAME= for the plain "
                  "model. Variants share the model's memory-mapped weights; each has its own "
                  "scheduler and KV cache. --vector/--alpha apply to the main model only");
  sub->callback([a] { run_serve(*a); });
}

}  // namespace rv::cli
