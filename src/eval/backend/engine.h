// EngineBackend: the evaluation backend over the built-in engine
// (`reasonvec eval --model DIR`).
//
// Every request of a batch is submitted at once so the engine's scheduler
// batches them; results are handed over as they complete.
//
// Tokenization follows lm-evaluation-harness's Hugging Face model:
//  - prompts are encoded without added BOS/EOS (special-token text in the
//    prompt, e.g. from a chat template, is parsed as special tokens);
//  - loglikelihood(context, continuation): trailing whitespace of the context
//    moves to the start of the continuation, then context+continuation and
//    the context are encoded and the continuation's tokens are
//    whole[len(encode(context)):] (lm-eval's _encode_pair); an empty context
//    becomes the BOS token (else EOS, lm-eval's prefix token);
//  - sequences longer than the engine's context window lose tokens on the
//    left (the prompt's start), as lm-eval truncates;
//  - chat requests are rendered with the model's own chat template
//    (add_generation_prompt = true).
//
// Thread-safety: as Backend.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"
#include "eval/backend/backend.h"
#include "tokenizer/chat_template.h"

namespace rv::eval {

class EngineBackend : public Backend {
 public:
  // Opens the model with engine::Engine::open. `identity`: see fingerprint().
  static std::unique_ptr<EngineBackend> open(const std::filesystem::path& model_dir,
                                             const engine::EngineOptions& opt,
                                             std::string identity = "");
  // Wraps an engine already open; `model_dir` supplies the chat template and
  // the fingerprint (empty: fingerprint from the engine's model name only).
  EngineBackend(std::shared_ptr<engine::Engine> eng, std::filesystem::path model_dir,
                std::string identity = "");

  // `identity` when given, else "engine|" + rv::model_fingerprint(model_dir)
  // (content of weights, config, tokenizer and chat template: base and
  // base+v models with equal shapes differ); "|vector:<sha256>*<alpha>" per
  // load-time vector (content of its files) and "|<numerics>" appended when
  // there are any. Computed once, lazily.
  std::string fingerprint() const override;
  std::string describe() const override;

  void generate_stream(const std::vector<GenRequest>& reqs, const GenResultFn& on_result) override;
  void loglikelihood_stream(const std::vector<LoglikRequest>& reqs,
                            const LoglikResultFn& on_result) override;

  // lm-eval's _encode_pair: (context ids, continuation ids). Exposed for tests.
  std::pair<std::vector<int32_t>, std::vector<int32_t>> encode_pair(
      const std::string& context, const std::string& continuation) const;
  // The text a request is tokenized from (chat requests rendered).
  std::string prompt_text(const GenRequest& r) const;

  engine::Engine& engine() { return *eng_; }

 private:
  std::shared_ptr<engine::Engine> eng_;
  std::filesystem::path dir_;
  std::string identity_;
  std::vector<engine::LoadVector> vectors_;  // those open() loaded
  mutable std::string fingerprint_;
  mutable std::optional<ChatTemplateSource> chat_;
};

}  // namespace rv::eval
