// Trains a byte-level BPE tokenizer for the lab's tiny models and writes it
// as a Hugging Face model directory that rv::Tokenizer (and transformers)
// load like any Qwen/Llama tokenizer.
//
// The vocabulary: ids 0..255 are the 256 bytes (token strings in GPT-2's
// byte-to-unicode alphabet, id = byte value), then one id per learned merge
// in merge order, then the special tokens in the order given. Pre-tokenizer:
// Llama-3's Split regex (digits in groups of 1-3, so frequent numbers can
// become single tokens), matched by the tokenizer layer's own matcher
// (tokenizer/pretokenize.h) in training and in rv::Tokenizer; special-token
// strings in the corpus are cut out before pre-tokenizing, as encoding does.
// No normalizer, ignore_merges off, ByteLevel decoder: decode(encode(x)) == x
// for any valid UTF-8 text.
//
// Training: repeatedly merge the adjacent pair with the highest count over
// the unique pre-tokens weighted by their frequency; ties go to the pair
// with the smaller (left id, right id). Pair counts are updated
// incrementally, touching only the words that contain the merged pair, so a
// few MB of corpus train in well under a second. The lab's synthetic corpus
// has few distinct words: once every pre-token is a single token there is
// nothing left to merge (about 830 ids for the default task), so ask
// rv::Tokenizer::vocab_size() for the size actually reached.
//
// Thread-safety: no shared state.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace rv::lab {

struct BpeOptions {
  // Total number of ids, special tokens included (>= 256 + specials). The
  // result is smaller when the corpus runs out of pairs to merge (the special
  // tokens then follow the last merge).
  int vocab_size = 1024;
  // Added as special tokens after the BPE vocabulary. Must contain the
  // ChatML tokens the chat template uses: "<|endoftext|>" (pad),
  // "<|im_start|>" and "<|im_end|>" (eos).
  std::vector<std::string> special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
};

// Trains on `corpus` (documents; invalid UTF-8 is replaced by U+FFFD) and
// writes OUT_DIR/tokenizer.json (BPE model, vocab, merges, Split + ByteLevel
// pre-tokenizer, ByteLevel decoder, special added tokens) and
// OUT_DIR/tokenizer_config.json (ChatML chat_template with generation prompt
// "<|im_start|>assistant\n", eos_token "<|im_end|>", pad_token
// "<|endoftext|>", no bos). The files' bytes depend only on corpus and
// options. Creates OUT_DIR if needed.
// Throws rv::Error("vocab_size: ...") when vocab_size < 256 + specials,
// rv::Error("special_tokens: ...") for empty, duplicate or missing ChatML
// tokens, rv::Error("path: ...") on I/O failure.
void train_bpe_tokenizer(const std::vector<std::string>& corpus, const BpeOptions& o,
                         const std::filesystem::path& out_dir);

}  // namespace rv::lab
