// reasonvec generate: run the built-in engine on one prompt, streaming text
// to stdout and the prefill/decode speeds to stderr.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/vector_flags.h"
#include "common/error.h"
#include "common/file.h"
#include "common/parallel.h"
#include "engine/engine.h"
#include "tokenizer/tokenizer.h"
// The chat template renderer is a separate piece of the tokenizer layer;
// without it --chat reports that it is unavailable.
#include "tokenizer/chat_template.h"

namespace rv::cli {

namespace {

struct GenerateArgs {
  std::string model, prompt, chat;
  engine::SamplingParams sp;
  int threads = 0;
  int max_context = 4096;
  bool kv_bf16 = false, no_mmap = false;
  VectorFlags vectors;
};

void run_generate(GenerateArgs& a) {
  engine::EngineOptions eo;
  eo.threads = a.threads > 0 ? a.threads : rv::num_threads();
  eo.max_batch = 1;
  eo.max_context = a.max_context;
  eo.kv_bf16 = a.kv_bf16;
  eo.copy_weights = a.no_mmap;
  eo.vectors = load_vectors(a.vectors);
  eo.log = log_line;
  auto eng = engine::Engine::open(a.model, eo);
  const Tokenizer& tok = eng->tokenizer();
  std::vector<int32_t> ids;
  if (!a.chat.empty()) {
    nlohmann::ordered_json msgs;
    try {
      msgs = nlohmann::ordered_json::parse(read_file(a.chat));
    } catch (const nlohmann::json::exception& e) {
      throw Error(a.chat, std::string("malformed JSON: ") + e.what());
    }
    if (msgs.is_object() && msgs.contains("messages")) msgs = msgs["messages"];
    if (!msgs.is_array())
      throw Error(a.chat, "expected a JSON array of {\"role\", \"content\"} messages");
    ChatTemplateSource src = load_chat_template(a.model);
    ChatTemplateInputs in;
    in.messages = msgs;
    in.add_generation_prompt = true;
    in.bos_token = src.bos_token;
    in.eos_token = src.eos_token;
    ids = tok.encode(render_chat_template(src.tmpl, in), true);
  } else {
    ids = tok.encode(a.prompt, true);
    if (tok.adds_bos() && tok.bos_id()) ids.insert(ids.begin(), *tok.bos_id());
  }
  if (ids.empty()) throw Error("--prompt: the prompt is empty");
  auto fut = eng->submit_generate(ids, a.sp, [](const std::string& delta) {
    fwrite(delta.data(), 1, delta.size(), stdout);
    fflush(stdout);
  });
  engine::GenerationResult r = fut.get();
  fputc('\n', stdout);
  fflush(stdout);
  const double prefill_tps = r.prefill_seconds > 0 ? r.prompt_tokens / r.prefill_seconds : 0;
  const size_t n = r.tokens.size();
  const double decode_tps = n > 1 && r.decode_seconds > 0 ? (n - 1) / r.decode_seconds : 0;
  fprintf(stderr,
          "prompt %d tokens, prefill %.1f tok/s; generated %zu tokens, decode %.1f tok/s; "
          "finish: %s\n",
          r.prompt_tokens, prefill_tps, n, decode_tps, r.finish_reason.c_str());
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto* a = keep_alive<GenerateArgs>();
  a->sp.max_tokens = 256;
  auto* sub = app.add_subcommand("generate", "Generate text with the built-in CPU engine");
  sub->add_option("--model", a->model,
                  "Hugging Face model directory (or .gguf written by export-gguf)")
      ->required();
  auto* p = sub->add_option("--prompt", a->prompt, "Prompt text (used as is, no chat template)");
  auto* c = sub->add_option("--chat", a->chat,
                            "JSON file with [{\"role\": ..., \"content\": ...}, ...]; rendered "
                            "with the model's chat template");
  p->excludes(c);
  c->excludes(p);
  sub->add_option("--max-tokens", a->sp.max_tokens, "Tokens to generate at most")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--temperature", a->sp.temperature, "0: greedy")->capture_default_str();
  sub->add_option("--top-k", a->sp.top_k, "0: off")->capture_default_str();
  sub->add_option("--top-p", a->sp.top_p, "1: off")->capture_default_str();
  sub->add_option("--min-p", a->sp.min_p, "0: off")->capture_default_str();
  sub->add_option("--seed", a->sp.seed, "Sampling seed")->capture_default_str();
  sub->add_option("--stop", a->sp.stop_strings, "Stop string (repeatable)");
  sub->add_flag("--ignore-eos", a->sp.ignore_eos, "Do not stop at end-of-generation tokens");
  sub->add_option("--threads", a->threads, "Worker threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--max-context", a->max_context, "Context size in tokens")->capture_default_str();
  sub->add_flag("--kv-bf16", a->kv_bf16,
                "Store the KV cache in bf16 (half the memory, logits change slightly)");
  add_no_mmap_flag(sub, &a->no_mmap);
  add_vector_flags(sub, &a->vectors);
  sub->callback([a] {
    if (a->prompt.empty() && a->chat.empty()) throw CLI::RequiredError("--prompt or --chat");
    run_generate(*a);
  });
}

}  // namespace rv::cli
