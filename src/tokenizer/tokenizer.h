// Byte-level BPE tokenizer, id-exact with Hugging Face `tokenizers` for the
// Qwen2.5 / Qwen3 / Llama-3 family.
//
// Start here: Tokenizer::load(model_dir), then encode()/decode().
//
// Pipeline of encode(), in the order Hugging Face applies it:
//   1. added tokens (special and non-special) are cut out of the raw text
//      first, longest match wins, honouring lstrip/rstrip/single_word;
//   2. each remaining section is normalized (NFC for Qwen, none for Llama-3);
//   3. the pre-tokenizer splits it: the `Split` regex exactly as written in
//      tokenizer.json (PCRE2, UTF + Unicode properties, "Isolated" behaviour)
//      or the GPT-2 ByteLevel regex when the file asks for it;
//   4. every piece is BPE-merged over its UTF-8 bytes (ignore_merges: a piece
//      that is itself in the vocabulary is emitted directly).
// Both file forms are accepted: tokenizer.json, or vocab.json + merges.txt
// (Qwen2Tokenizer / GPT2Tokenizer conventions), each with an optional
// tokenizer_config.json next to it.
//
// Thread-safety: a Tokenizer is immutable after load(); encode/decode and all
// accessors may be called concurrently from any number of threads (the BPE
// cache inside is internally locked). Copies are cheap and share state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rv {

// One entry of tokenizer.json's "added_tokens" (or tokenizer_config.json's
// "added_tokens_decoder" in the two-file form). `content` is plain text.
struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;  // skipped by decode(skip_special); not matched when parse_special=false
  bool lstrip = false;   // swallow whitespace on the left of a match
  bool rstrip = false;   // swallow whitespace on the right of a match
  bool single_word = false;  // only match when not inside a word
  bool normalized = false;   // matched against the normalized text instead of the raw text
};

class Tokenizer {
 public:
  // Loads a tokenizer from a model directory: tokenizer.json if present, else
  // vocab.json + merges.txt; plus tokenizer_config.json and chat_template.jinja
  // when present. A GGUF file (gguf::is_gguf_path) is read with load_gguf.
  // Throws rv::Error("file: problem") for missing or malformed files and for
  // features outside byte-level BPE ("... not supported yet").
  static Tokenizer load(const std::filesystem::path& dir);

  // Loads the tokenizer a GGUF file carries (tokenizer.ggml.*, as written by
  // `reasonvec export-gguf` and llama.cpp's converter): model "gpt2" with pre
  // "qwen2" or "llama-bpe". It is rebuilt as the Hugging Face tokenizer of
  // that family: the family's Split regex + ByteLevel, NFC for qwen2,
  // ignore_merges and clean_up_tokenization_spaces for llama-bpe; tokens of
  // type normal form the BPE vocabulary, control tokens become special added
  // tokens and user-defined ones non-special added tokens (both matched on
  // the raw text, no lstrip/rstrip), unused ones (the exporter's [PAD<i>]
  // rows) are holes. bos/eos/padding ids name bos_token()/eos_token()/pad;
  // add_bos_token gives adds_bos(); tokenizer.chat_template the template.
  // For the files export-gguf writes, encode/decode/stop_ids/chat_template
  // then equal those of the source directory's tokenizer, except that a
  // BOS id the exporter took from config.json (Qwen: bos_token null in
  // tokenizer_config.json) is kept as bos_id(). Throws rv::Error("file:
  // problem") for other tokenizer models or pre-tokenizers, missing keys and
  // token types other than normal/control/user-defined/unused.
  static Tokenizer load_gguf(const std::filesystem::path& file);

  // Text -> ids. No BOS/EOS are added (like add_special_tokens=False): chat
  // templates put them in the text. parse_special=false treats special added
  // tokens as plain text (HF split_special_tokens=True); non-special added
  // tokens are still matched. Invalid UTF-8 in `text` is first replaced by
  // U+FFFD (Hugging Face only ever sees valid strings).
  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const;

  // Ids -> text: byte-level decoding, invalid UTF-8 replaced by U+FFFD per
  // maximal subpart (as Python's errors="replace" and WHATWG TextDecoder).
  // skip_special drops added tokens flagged special. The tokenizer_config's
  // clean_up_tokenization_spaces (true for Llama-3.1) is applied like
  // transformers does unless clean_up is given explicitly.
  // Throws rv::Error for ids that name no token.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false,
                     std::optional<bool> clean_up = std::nullopt) const;

  // The raw bytes a token stands for (may be part of a UTF-8 character);
  // added tokens give their content. Throws rv::Error for an unknown id.
  std::string token_to_piece(int32_t id) const;

  // Largest token id + 1 (the model's embedding matrix may be larger).
  int32_t vocab_size() const;
  // True when `id` names a token (the id space may have holes).
  bool is_valid_id(int32_t id) const;

  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> pad_id() const;
  // tokenizer_config.json's unk_token (byte-level BPE never emits it).
  std::optional<int32_t> unk_id() const;
  // Ids that end a generation: eos plus the chat end tokens present in the
  // vocabulary (<|im_end|>, <|eot_id|>, <|endoftext|>, <|eom_id|>,
  // <|end_of_text|>). Sorted, unique.
  std::vector<int32_t> stop_ids() const;
  // Whether plain-text prompts get BOS prepended by the model's post-processor
  // (Llama-3: yes; Qwen: no). encode() never adds it; callers that want HF's
  // add_special_tokens=True behaviour prepend bos_id() themselves.
  bool adds_bos() const;
  // tokenizer_config.json's add_bos_token / add_eos_token when it sets them
  // (true or false), for exporters that must write the flags as configured.
  std::optional<bool> configured_add_bos() const;
  std::optional<bool> configured_add_eos() const;

  // tokenizer_config.json "chat_template" (a string, or the "default" entry of
  // a list of named templates), else chat_template.jinja; empty if none.
  const std::string& chat_template() const;
  // Token strings for templates ("" when the config has none).
  std::string bos_token() const;
  std::string eos_token() const;

  // Exact lookup of a vocabulary or added token by its tokenizer.json string
  // (e.g. "Ġthe", "<|im_end|>").
  std::optional<int32_t> token_id(std::string_view token) const;
  bool is_special(int32_t id) const;

  // --- For exporters (GGUF): the vocabulary in tokenizer.json form. ---
  // Indexed by id, size vocab_size(); holes hold "".
  const std::vector<std::string>& id_to_token() const;
  // Merge rules in rank order, as (left, right) token strings.
  const std::vector<std::pair<std::string, std::string>>& merges() const;
  const std::vector<AddedToken>& added_tokens() const;
  // The pre-tokenizer regex as written in the file (the GPT-2 pattern when
  // the file uses ByteLevel's built-in regex).
  const std::string& pre_tokenizer_regex() const;
  // "NFC" or "" (none).
  const std::string& normalizer() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
  friend class IncrementalDecoder;
};

// Streaming-safe decoding for generation: feed ids one by one, get back only
// complete UTF-8 text. Bytes of a character split across tokens are held
// until the character completes; a sequence that can no longer become valid
// is emitted as U+FFFD exactly as decode() would. No clean-up of tokenization
// spaces is applied. Not thread-safe; one per stream. The Tokenizer must
// outlive the decoder.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tok, bool skip_special = true);
  // Returns the newly completed text (possibly empty). Throws for unknown ids.
  std::string push(int32_t id);
  // Returns whatever is pending (incomplete bytes become U+FFFD) and resets.
  std::string flush();

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  std::string pending_;  // bytes of an incomplete UTF-8 character
};

// UTF-8 helpers shared with the CLI and tests.
// Replaces each maximal ill-formed subpart with U+FFFD (WHATWG / Python
// errors="replace" semantics).
std::string utf8_replace_invalid(std::string_view bytes);
bool utf8_valid(std::string_view bytes);

}  // namespace rv
