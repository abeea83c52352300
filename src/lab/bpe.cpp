#include "lab/bpe.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <queue>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file.h"
#include "formats/arch.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace rv::lab {
namespace {

using ojson = nlohmann::ordered_json;

// ChatML, as Qwen's templates render a conversation without tools.
constexpr const char* kChatMlTemplate =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

void check_options(const BpeOptions& o) {
  std::set<std::string> seen;
  for (const auto& s : o.special_tokens) {
    if (s.empty()) throw Error("special_tokens", "empty token");
    if (!utf8_valid(s)) throw Error("special_tokens", "'" + s + "' is not valid UTF-8");
    if (!seen.insert(s).second) throw Error("special_tokens", "'" + s + "' listed twice");
  }
  for (const char* need : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
    if (!seen.count(need))
      throw Error("special_tokens", std::string("must contain ") + need +
                                        " (the ChatML chat template and pad/eos use it)");
  const int64_t min = 256 + static_cast<int64_t>(o.special_tokens.size());
  if (o.vocab_size < min)
    throw Error("vocab_size", std::to_string(o.vocab_size) + " is below the minimum " +
                                  std::to_string(min) + " (256 bytes + " +
                                  std::to_string(o.special_tokens.size()) + " special tokens)");
}

// Unique pre-tokens of the corpus with their counts, sorted by text.
std::vector<std::pair<std::string, int64_t>> count_words(const std::vector<std::string>& corpus,
                                                         const std::vector<std::string>& specials) {
  std::unordered_map<std::string, int64_t> counts;
  auto add_section = [&](std::string_view s) {
    for (size_t pos = 0; pos < s.size();) {
      const size_t end = pretok::next_piece(pretok::Pattern::kLlama3, s, pos);
      ++counts[std::string(s.substr(pos, end - pos))];
      pos = end;
    }
  };
  for (const auto& raw : corpus) {
    const std::string doc = utf8_replace_invalid(raw);
    // Special tokens are cut out first, as encode() does (longest match at
    // the earliest position), and never take part in merges.
    size_t pos = 0;
    while (pos < doc.size()) {
      size_t best = std::string::npos, best_len = 0;
      for (const auto& sp : specials) {
        const size_t at = doc.find(sp, pos);
        if (at == std::string::npos) continue;
        if (at < best || (at == best && sp.size() > best_len)) {
          best = at;
          best_len = sp.size();
        }
      }
      const size_t stop = best == std::string::npos ? doc.size() : best;
      add_section(std::string_view(doc).substr(pos, stop - pos));
      pos = best == std::string::npos ? doc.size() : best + best_len;
    }
  }
  std::vector<std::pair<std::string, int64_t>> out(counts.begin(), counts.end());
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct Word {
  std::vector<int32_t> syms;
  int64_t count = 0;
};

struct Trained {
  std::vector<std::string> tokens;  // raw bytes per id (BPE part only)
  std::vector<std::pair<int32_t, int32_t>> merges;
};

Trained train(const std::vector<std::pair<std::string, int64_t>>& word_counts, int bpe_size) {
  Trained t;
  std::unordered_map<std::string, int32_t> id_of;
  for (int b = 0; b < 256; ++b) {
    t.tokens.emplace_back(1, static_cast<char>(b));
    id_of[t.tokens.back()] = b;
  }
  std::vector<Word> words;
  words.reserve(word_counts.size());
  std::unordered_map<uint64_t, int64_t> count;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;  // may hold stale or repeated words
  for (const auto& [text, c] : word_counts) {
    Word w;
    w.count = c;
    for (unsigned char ch : text) w.syms.push_back(ch);
    const auto wi = static_cast<int32_t>(words.size());
    for (size_t i = 0; i + 1 < w.syms.size(); ++i) {
      const uint64_t k = pair_key(w.syms[i], w.syms[i + 1]);
      count[k] += c;
      where[k].push_back(wi);
    }
    words.push_back(std::move(w));
  }
  // Max-heap on (count, smaller pair first); entries go stale when a count
  // changes and are skipped when popped (the current count was pushed too).
  using Entry = std::pair<int64_t, uint64_t>;
  auto worse = [](const Entry& x, const Entry& y) {
    return x.first != y.first ? x.first < y.first : x.second > y.second;
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(worse)> heap(worse);
  {
    std::vector<uint64_t> keys;
    for (const auto& [k, c] : count) keys.push_back(k);
    std::sort(keys.begin(), keys.end());  // deterministic heap construction
    for (uint64_t k : keys) heap.push({count[k], k});
  }

  std::vector<uint64_t> changed;
  std::unordered_set<uint64_t> changed_set;
  auto touch = [&](uint64_t k) {
    if (changed_set.insert(k).second) changed.push_back(k);
  };
  while (static_cast<int>(t.tokens.size()) < bpe_size && !heap.empty()) {
    const auto [c, key] = heap.top();
    heap.pop();
    auto it = count.find(key);
    if (it == count.end() || it->second != c || c <= 0) continue;
    const auto a = static_cast<int32_t>(key >> 32);
    const auto b = static_cast<int32_t>(key & 0xffffffffu);
    std::string merged = t.tokens[static_cast<size_t>(a)] + t.tokens[static_cast<size_t>(b)];
    int32_t id;
    if (auto f = id_of.find(merged); f != id_of.end()) {
      id = f->second;  // the same string from another pair: same token
    } else {
      id = static_cast<int32_t>(t.tokens.size());
      id_of.emplace(merged, id);
      t.tokens.push_back(std::move(merged));
    }
    t.merges.emplace_back(a, b);

    std::vector<int32_t> ws = std::move(where[key]);
    where.erase(key);
    std::sort(ws.begin(), ws.end());
    ws.erase(std::unique(ws.begin(), ws.end()), ws.end());
    changed.clear();
    changed_set.clear();
    for (int32_t wi : ws) {
      Word& w = words[static_cast<size_t>(wi)];
      bool has = false;
      for (size_t i = 0; i + 1 < w.syms.size() && !has; ++i)
        has = w.syms[i] == a && w.syms[i + 1] == b;
      if (!has) continue;  // stale entry
      // Replace the word's pairs wholesale: simpler than patching
      // neighbours, and pre-tokens are short.
      for (size_t i = 0; i + 1 < w.syms.size(); ++i) {
        const uint64_t k = pair_key(w.syms[i], w.syms[i + 1]);
        count[k] -= w.count;
        touch(k);
      }
      std::vector<int32_t> next;
      next.reserve(w.syms.size());
      for (size_t i = 0; i < w.syms.size(); ++i) {
        if (i + 1 < w.syms.size() && w.syms[i] == a && w.syms[i + 1] == b) {
          next.push_back(id);
          ++i;
        } else {
          next.push_back(w.syms[i]);
        }
      }
      w.syms = std::move(next);
      for (size_t i = 0; i + 1 < w.syms.size(); ++i) {
        const uint64_t k = pair_key(w.syms[i], w.syms[i + 1]);
        count[k] += w.count;
        where[k].push_back(wi);
        touch(k);
      }
    }
    for (uint64_t k : changed) {
      auto ci = count.find(k);
      if (ci == count.end()) continue;
      if (ci->second > 0) {
        heap.push({ci->second, k});
      } else {
        count.erase(ci);
        where.erase(k);
      }
    }
  }
  return t;
}

}  // namespace

void train_bpe_tokenizer(const std::vector<std::string>& corpus, const BpeOptions& o,
                         const std::filesystem::path& out_dir) {
  check_options(o);
  const int bpe_size = o.vocab_size - static_cast<int>(o.special_tokens.size());
  const Trained t = train(count_words(corpus, o.special_tokens), bpe_size);

  ojson vocab = ojson::object();
  for (size_t i = 0; i < t.tokens.size(); ++i)
    vocab[unicode::bytes_to_token_text(t.tokens[i])] = static_cast<int64_t>(i);
  ojson merges = ojson::array();
  for (const auto& [a, b] : t.merges)
    merges.push_back(unicode::bytes_to_token_text(t.tokens[static_cast<size_t>(a)]) + " " +
                     unicode::bytes_to_token_text(t.tokens[static_cast<size_t>(b)]));
  ojson added = ojson::array();
  ojson added_decoder = ojson::object();
  for (size_t i = 0; i < o.special_tokens.size(); ++i) {
    const auto id = static_cast<int64_t>(t.tokens.size() + i);
    ojson a;
    a["id"] = id;
    a["content"] = o.special_tokens[i];
    a["single_word"] = false;
    a["lstrip"] = false;
    a["rstrip"] = false;
    a["normalized"] = false;
    a["special"] = true;
    added.push_back(a);
    ojson d;
    d["content"] = o.special_tokens[i];
    d["lstrip"] = false;
    d["normalized"] = false;
    d["rstrip"] = false;
    d["single_word"] = false;
    d["special"] = true;
    added_decoder[std::to_string(id)] = d;
  }
  auto byte_level = [](bool trim_offsets) {
    ojson b;
    b["type"] = "ByteLevel";
    b["add_prefix_space"] = false;
    b["trim_offsets"] = trim_offsets;
    b["use_regex"] = false;
    return b;
  };

  ojson tj;
  tj["version"] = "1.0";
  tj["truncation"] = nullptr;
  tj["padding"] = nullptr;
  tj["added_tokens"] = added;
  tj["normalizer"] = nullptr;
  ojson split;
  split["type"] = "Split";
  split["pattern"] = {{"Regex", std::string(kLlama3PreTokenizer.regex)}};
  split["behavior"] = "Isolated";
  split["invert"] = false;
  tj["pre_tokenizer"] = {{"type", "Sequence"},
                         {"pretokenizers", ojson::array({split, byte_level(true)})}};
  tj["post_processor"] = byte_level(false);
  tj["decoder"] = byte_level(false);
  ojson model;
  model["type"] = "BPE";
  model["dropout"] = nullptr;
  model["unk_token"] = nullptr;
  model["continuing_subword_prefix"] = nullptr;
  model["end_of_word_suffix"] = nullptr;
  model["fuse_unk"] = false;
  model["byte_fallback"] = false;
  model["ignore_merges"] = false;
  model["vocab"] = std::move(vocab);
  model["merges"] = std::move(merges);
  tj["model"] = std::move(model);

  ojson cfg;
  cfg["add_bos_token"] = false;
  cfg["add_prefix_space"] = false;
  cfg["added_tokens_decoder"] = added_decoder;
  cfg["bos_token"] = nullptr;
  cfg["chat_template"] = kChatMlTemplate;
  cfg["clean_up_tokenization_spaces"] = false;
  cfg["eos_token"] = "<|im_end|>";
  cfg["errors"] = "replace";
  cfg["model_max_length"] = 32768;
  cfg["pad_token"] = "<|endoftext|>";
  cfg["split_special_tokens"] = false;
  cfg["tokenizer_class"] = "PreTrainedTokenizerFast";
  cfg["unk_token"] = nullptr;

  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) throw Error(out_dir.string(), "cannot create directory: " + ec.message());
  write_file(out_dir / "tokenizer.json", tj.dump(2) + "\n");
  write_file(out_dir / "tokenizer_config.json", cfg.dump(2) + "\n");
}

}  // namespace rv::lab
