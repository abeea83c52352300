#include "tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "common/error.h"
#include "common/file.h"
#include "formats/arch.h"
#include "formats/gguf.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/unicode.h"

namespace rv {

namespace {

using json = nlohmann::json;

struct SvHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  uint64_t w = 0;
  memcpy(&w, s.data() + i, s.size() - i);
  h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 29;
  return h;
}

// String -> id over strings owned elsewhere (keys[id]), open addressing.
// Cheaper to build and probe than std::unordered_map<std::string, int>:
// no per-entry allocation. A slot also holds the key's length and first 8
// bytes, so keys of up to 8 bytes (most BPE pieces) are decided without
// touching keys[] at all: one cache miss per probe instead of two or three.
class StrIdTable {
 public:
  void init(const std::vector<std::string>* keys, size_t expected) {
    keys_ = keys;
    size_t cap = 16;
    while (cap < expected * 2) cap <<= 1;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    size_ = 0;
  }
  // Adds keys[id]. An existing equal key keeps its id unless `replace`.
  void insert(int32_t id, bool replace) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    std::string_view s = (*keys_)[id];
    const Probe p(s);
    for (size_t i = p.h & mask_;; i = (i + 1) & mask_) {
      Slot& sl = slots_[i];
      if (sl.id < 0) {
        sl = Slot{p.tag, id, p.head};
        ++size_;
        return;
      }
      if (equal(sl, p, s)) {
        if (replace) sl.id = id;
        return;
      }
    }
  }
  // Starts loading the slot where a probe for `s` begins (no effect on results).
  void prefetch(std::string_view s) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[hash_bytes(s) & mask_]);
  }
  int32_t find(std::string_view s) const {
    if (slots_.empty()) return -1;
    const Probe p(s);
    for (size_t i = p.h & mask_;; i = (i + 1) & mask_) {
      const Slot& sl = slots_[i];
      if (sl.id < 0) return -1;
      if (equal(sl, p, s)) return sl.id;
    }
  }

 private:
  struct Slot {
    uint32_t tag = 0;  // hash bits, low byte = min(length, 255)
    int32_t id = -1;
    uint64_t head = 0;  // first 8 bytes, zero-padded
  };
  struct Probe {
    uint64_t h, head = 0;
    uint32_t tag;
    explicit Probe(std::string_view s) : h(hash_bytes(s)) {
      memcpy(&head, s.data(), std::min<size_t>(s.size(), 8));
      tag = (static_cast<uint32_t>(h >> 32) & 0xFFFFFF00u) |
            static_cast<uint32_t>(std::min<size_t>(s.size(), 255));
    }
  };
  bool equal(const Slot& sl, const Probe& p, std::string_view s) const {
    if (sl.tag != p.tag || sl.head != p.head) return false;
    return s.size() <= 8 || (*keys_)[sl.id] == s;
  }
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(old.size() * 2, Slot{});
    mask_ = slots_.size() - 1;
    size_ = 0;
    for (const Slot& s : old)
      if (s.id >= 0) insert(s.id, true);
  }
  const std::vector<std::string>* keys_ = nullptr;
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
};

// (left id, right id) -> (rank, merged id), open addressing.
class MergeMap {
 public:
  struct Entry {
    uint64_t key = kEmpty;
    int32_t rank = 0;
    int32_t id = 0;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    table_.assign(cap, Entry{});
    mask_ = cap - 1;
  }
  // Returns false when the pair is already present (the first rank wins, as in HF).
  bool insert(int32_t a, int32_t b, int32_t rank, int32_t id) {
    uint64_t k = key(a, b);
    for (size_t i = slot(k);; i = (i + 1) & mask_) {
      if (table_[i].key == kEmpty) {
        table_[i] = Entry{k, rank, id};
        return true;
      }
      if (table_[i].key == k) return false;
    }
  }
  const Entry* find(int32_t a, int32_t b) const {
    uint64_t k = key(a, b);
    for (size_t i = slot(k);; i = (i + 1) & mask_) {
      const Entry& e = table_[i];
      if (e.key == k) return &e;
      if (e.key == kEmpty) return nullptr;
    }
  }

 private:
  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  size_t slot(uint64_t k) const {
    return static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> 20) & mask_;
  }
  std::vector<Entry> table_;
  size_t mask_ = 0;
};

// Byte trie over added-token contents: finds the longest token starting at a
// position (Hugging Face uses a leftmost-longest Aho-Corasick automaton).
class AddedMatcher {
 public:
  void add(std::string_view s, int32_t index) {
    if (s.empty()) return;
    if (nodes_.empty()) nodes_.emplace_back();
    int32_t n = 0;
    for (char c : s) {
      auto b = static_cast<uint8_t>(c);
      int32_t next = child(n, b);
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_[n].kids.emplace_back(b, next);
        nodes_.emplace_back();
      }
      n = next;
    }
    if (nodes_[n].index < 0) nodes_[n].index = index;
    first_[static_cast<uint8_t>(s[0])] = true;
    empty_ = false;
  }
  bool empty() const { return empty_; }
  bool may_start(uint8_t b) const { return first_[b]; }
  // Longest match at text[i...]: returns the added index and sets len, or -1.
  int32_t match(std::string_view text, size_t i, size_t& len) const {
    int32_t n = 0, best = -1;
    for (size_t j = i; j < text.size(); ++j) {
      n = child(n, static_cast<uint8_t>(text[j]));
      if (n < 0) break;
      if (nodes_[n].index >= 0) {
        best = nodes_[n].index;
        len = j + 1 - i;
      }
    }
    return best;
  }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> kids;
    int32_t index = -1;
  };
  int32_t child(int32_t n, uint8_t b) const {
    for (const auto& [c, k] : nodes_[n].kids)
      if (c == b) return k;
    return -1;
  }
  std::vector<Node> nodes_;
  std::array<bool, 256> first_{};
  bool empty_ = true;
};

// BPE results per pre-token, sharded so concurrent encoders rarely contend.
class BpeCache {
 public:
  static constexpr size_t kShards = 64;
  static constexpr size_t kMaxPerShard = 8192;
  static constexpr size_t kMaxKeyBytes = 256;

  bool get(std::string_view key, size_t h, std::vector<int32_t>& out) const {
    Shard& s = shards_[h % kShards];
    std::lock_guard<std::mutex> lock(s.m);
    auto it = s.map.find(key);
    if (it == s.map.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }
  void put(std::string_view key, size_t h, const int32_t* ids, size_t n) const {
    Shard& s = shards_[h % kShards];
    std::lock_guard<std::mutex> lock(s.m);
    if (s.map.size() >= kMaxPerShard) s.map.clear();
    s.map.emplace(std::string(key), std::vector<int32_t>(ids, ids + n));
  }

 private:
  struct Shard {
    std::mutex m;
    std::unordered_map<std::string, std::vector<int32_t>, SvHash, std::equal_to<>> map;
  };
  mutable std::array<Shard, kShards> shards_;
};

struct Pcre2Deleter {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};

enum class Kind : uint8_t { kHole, kVocab, kAdded };

std::string describe(const std::filesystem::path& p) {
  return p.string();
}

// tokenizer_config.json token fields are a string, {"content": ...} or null.
std::string config_token(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return "";
}

// A JSON file that must hold an object (tokenizer_config.json).
json read_json_object(const std::filesystem::path& p) {
  json j;
  try {
    j = json::parse(read_file(p));
  } catch (const json::exception& e) {
    throw Error(describe(p), std::string("malformed JSON: ") + e.what());
  }
  if (!j.is_object()) throw Error(describe(p), "expected a JSON object");
  return j;
}

bool json_bool(const json& j, const char* key, bool dflt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) return dflt;
  return it->get<bool>();
}

}  // namespace

struct Tokenizer::Impl {
  std::string where;  // file the vocabulary came from, for messages

  std::vector<std::string> id_to_token;  // tokenizer.json form
  std::vector<std::string> pieces;       // raw bytes
  std::vector<Kind> kind;
  std::vector<uint8_t> special;
  // Token lookup. Vocabulary tokens are keyed by their raw bytes (the
  // encoder's hot path needs exactly that); the few that are not pure
  // byte-level text by their tokenizer.json string; added tokens by content.
  StrIdTable bytes_to_id;  // over pieces
  StrIdTable odd_to_id;    // over id_to_token
  StrIdTable added_to_id;  // over id_to_token
  int32_t find_token(std::string_view token) const {
    int32_t id = added_to_id.find(token);
    if (id >= 0) return id;
    id = odd_to_id.find(token);
    if (id >= 0) return id;
    std::string bytes;
    if (!unicode::token_text_to_bytes(token, bytes)) return -1;
    return bytes_to_id.find(bytes);
  }
  // Per vocabulary id: 0 unknown, 1 BPE of the token's own bytes gives exactly
  // this token, 2 it does not. Filled lazily by encoders (benign races: every
  // writer stores the same value); lets most pieces skip the locked cache.
  std::unique_ptr<std::atomic<uint8_t>[]> self_merge;
  std::array<int32_t, 256> byte_id{};
  MergeMap merge_map;
  std::vector<std::pair<std::string, std::string>> merges;
  bool ignore_merges = false;

  std::vector<AddedToken> added;
  AddedMatcher raw_all, raw_plain;    // normalized=false tokens (all / non-special only)
  AddedMatcher norm_all, norm_plain;  // normalized=true tokens

  std::string normalizer;  // "NFC" or ""
  std::string regex;
  std::unique_ptr<pcre2_code, Pcre2Deleter> code;
  pretok::Pattern fast_split = pretok::Pattern::kNone;  // hand-written matcher for `regex`
  bool add_prefix_space = false;

  std::string chat_template, bos_token, eos_token, pad_token, unk_token;
  bool clean_up = false;
  bool adds_bos = false;
  std::optional<bool> configured_add_bos, configured_add_eos;  // as tokenizer_config.json sets them

  mutable BpeCache cache;

  // --- loading ---
  void finish_vocab(const std::string& file);
  void set_regex(const std::string& pattern, bool literal, const std::string& file);
  void set_added(std::vector<AddedToken> tokens, const std::string& file);
  void apply_config(const std::filesystem::path& dir);

  // --- encoding ---
  void encode_text(std::string_view text, bool parse_special, std::vector<int32_t>& out) const;
  void encode_section(std::string_view text, bool parse_special, std::vector<int32_t>& out) const;
  void encode_normalized(std::string_view text, std::vector<int32_t>& out) const;
  void encode_piece(std::string_view bytes, std::vector<int32_t>& out) const;
  void bpe(std::string_view bytes, std::vector<int32_t>& out) const;
  void check_id(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= kind.size() || kind[id] == Kind::kHole)
      throw Error("token id " + std::to_string(id) + " is not in the vocabulary (valid ids: 0.." +
                  std::to_string(static_cast<int64_t>(kind.size()) - 1) + ")");
  }
};

// ---------------------------------------------------------------- loading

static void add_vocab_entry(Tokenizer::Impl& t, std::string token, int64_t id,
                            const std::string& file) {
  if (id < 0 || id > (int64_t{1} << 31) - 2)
    throw Error(file, "vocabulary id " + std::to_string(id) + " out of range");
  if (static_cast<size_t>(id) >= t.id_to_token.size()) {
    size_t n = static_cast<size_t>(id) + 1;
    t.id_to_token.resize(n);
    t.kind.resize(n, Kind::kHole);
  }
  if (t.kind[id] != Kind::kHole)
    throw Error(file, "vocabulary id " + std::to_string(id) + " is used twice");
  t.kind[id] = Kind::kVocab;
  t.id_to_token[id] = std::move(token);
}

void Tokenizer::Impl::finish_vocab(const std::string& file) {
  size_t n = id_to_token.size();
  pieces.assign(n, std::string());
  special.assign(n, 0);
  bytes_to_id.init(&pieces, n + 1024);
  odd_to_id.init(&id_to_token, 64);
  added_to_id.init(&id_to_token, 64);
  for (size_t id = 0; id < n; ++id) {
    if (kind[id] != Kind::kVocab) continue;
    if (unicode::token_text_to_bytes(id_to_token[id], pieces[id])) {
      bytes_to_id.insert(static_cast<int32_t>(id), false);
    } else {
      odd_to_id.insert(static_cast<int32_t>(id), false);
    }
  }
  for (int b = 0; b < 256; ++b) {
    int32_t bid = bytes_to_id.find(std::string(1, static_cast<char>(b)));
    if (bid < 0) {
      std::string s;
      unicode::append_utf8(s, unicode::byte_to_char()[b]);
      throw Error(file, "byte-level BPE vocabulary lacks the token for byte " + std::to_string(b) +
                            " ('" + s +
                            "'); byte-fallback/other vocabularies are not supported yet");
    }
    byte_id[b] = bid;
  }
  // Merges: both halves and the result must be in the vocabulary (as HF
  // checks). Vocabularies trained by `tokenizers` number merge results
  // consecutively (Qwen: id = rank + 256), so the previous offset is tried
  // before a hash lookup.
  merge_map.reserve(merges.size());
  // Lookups go in chunks whose table slots are prefetched first: the tables
  // are larger than the caches, so the misses of a chunk overlap instead of
  // being waited for one by one.
  struct Pending {
    std::string a, b, ab;
    bool bytes = false;
  };
  constexpr size_t kChunk = 16;
  std::array<Pending, kChunk> pend;
  int64_t offset = 0;
  int misses = 0;  // guessing stops after a run of misses (Llama-3's vocabulary is not ordered so)
  for (size_t r0 = 0; r0 < merges.size(); r0 += kChunk) {
    const size_t r1 = std::min(merges.size(), r0 + kChunk);
    for (size_t r = r0; r < r1; ++r) {
      Pending& p = pend[r - r0];
      p.a.clear();
      p.b.clear();
      p.bytes = unicode::token_text_to_bytes(merges[r].first, p.a) &&
                unicode::token_text_to_bytes(merges[r].second, p.b);
      if (!p.bytes) continue;
      p.ab.assign(p.a).append(p.b);
      bytes_to_id.prefetch(p.a);
      bytes_to_id.prefetch(p.b);
      bytes_to_id.prefetch(p.ab);
    }
    for (size_t r = r0; r < r1; ++r) {
      const auto& [a, b] = merges[r];
      const Pending& p = pend[r - r0];
      int32_t ia, ib, ic = -1;
      if (p.bytes) {
        ia = bytes_to_id.find(p.a);
        ib = bytes_to_id.find(p.b);
        int64_t guess = static_cast<int64_t>(r) + offset;
        if (misses < 64 && guess >= 0 && guess < static_cast<int64_t>(n) &&
            kind[guess] == Kind::kVocab && pieces[guess] == p.ab) {
          ic = static_cast<int32_t>(guess);
          misses = 0;
        } else {
          ic = bytes_to_id.find(p.ab);
          if (ic >= 0) offset = ic - static_cast<int64_t>(r);
          ++misses;
        }
      } else {
        ia = find_token(a);
        ib = find_token(b);
        ic = find_token(a + b);
      }
      if (ia < 0 || ib < 0 || ic < 0)
        throw Error(file, "merge " + std::to_string(r) + " ('" + a + " " + b +
                              "') uses a token that is not in the vocabulary");
      merge_map.insert(ia, ib, static_cast<int32_t>(r), ic);
    }
  }
}

void Tokenizer::Impl::set_regex(const std::string& pattern, bool literal, const std::string& file) {
  regex = pattern;
  int err = 0;
  PCRE2_SIZE off = 0;
  uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
  pcre2_code* c = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), opts,
                                &err, &off, nullptr);
  if (!c) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw Error(file, "pre-tokenizer regex does not compile at offset " + std::to_string(off) +
                          ": " + reinterpret_cast<const char*>(msg));
  }
  code.reset(c);
  fast_split = literal ? pretok::Pattern::kNone : pretok::recognise(pattern);
  pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
}

void Tokenizer::Impl::set_added(std::vector<AddedToken> tokens, const std::string& file) {
  added = std::move(tokens);
  for (size_t i = 0; i < added.size(); ++i) {
    const AddedToken& a = added[i];
    if (a.id < 0) throw Error(file, "added token '" + a.content + "' has a negative id");
    if (a.content.empty())
      throw Error(file, "added token " + std::to_string(a.id) + " has empty content");
    if (!utf8_valid(a.content))
      throw Error(file, "added token " + std::to_string(a.id) + " is not valid UTF-8");
    size_t id = static_cast<size_t>(a.id);
    if (id >= id_to_token.size()) {
      id_to_token.resize(id + 1);
      kind.resize(id + 1, Kind::kHole);
      pieces.resize(id + 1);
      special.resize(id + 1, 0);
    }
    kind[id] = Kind::kAdded;
    id_to_token[id] = a.content;
    pieces[id] = a.content;
    special[id] = a.special;
    added_to_id.insert(a.id, true);
    auto idx = static_cast<int32_t>(i);
    if (a.normalized) {
      norm_all.add(a.content, idx);
      if (!a.special) norm_plain.add(a.content, idx);
    } else {
      raw_all.add(a.content, idx);
      if (!a.special) raw_plain.add(a.content, idx);
    }
  }
}

static AddedToken parse_added(const json& j, int32_t id, const std::string& file) {
  if (!j.is_object() || !j.contains("content") || !j["content"].is_string())
    throw Error(file, "added token " + std::to_string(id) + " has no \"content\" string");
  AddedToken a;
  a.id = id;
  a.content = j["content"].get<std::string>();
  a.special = json_bool(j, "special", false);
  a.lstrip = json_bool(j, "lstrip", false);
  a.rstrip = json_bool(j, "rstrip", false);
  a.single_word = json_bool(j, "single_word", false);
  a.normalized = json_bool(j, "normalized", !a.special);
  return a;
}

void Tokenizer::Impl::apply_config(const std::filesystem::path& dir) {
  auto cfg_path = dir / "tokenizer_config.json";
  if (std::filesystem::exists(cfg_path)) {
    const json cfg = read_json_object(cfg_path);
    bos_token = config_token(cfg, "bos_token");
    eos_token = config_token(cfg, "eos_token");
    pad_token = config_token(cfg, "pad_token");
    unk_token = config_token(cfg, "unk_token");
    for (auto [key, flag] : {std::pair{"add_bos_token", &configured_add_bos},
                             std::pair{"add_eos_token", &configured_add_eos}})
      if (auto it = cfg.find(key); it != cfg.end() && it->is_boolean()) *flag = it->get<bool>();
    clean_up = json_bool(cfg, "clean_up_tokenization_spaces", false);
    if (json_bool(cfg, "add_bos_token", false)) adds_bos = true;
    auto ct = cfg.find("chat_template");
    if (ct != cfg.end()) {
      if (ct->is_string()) {
        chat_template = ct->get<std::string>();
      } else if (ct->is_array()) {
        for (const auto& e : *ct)
          if (e.is_object() && e.value("name", "") == "default" && e.contains("template") &&
              e["template"].is_string())
            chat_template = e["template"].get<std::string>();
      }
    }
  }
  // Newer transformers save the template as its own file, which then wins.
  auto jinja = dir / "chat_template.jinja";
  if (std::filesystem::exists(jinja)) chat_template = read_file(jinja);
}

static void load_tokenizer_json(Tokenizer::Impl& t, const std::filesystem::path& path) {
  const std::string file = describe(path);
  MappedFile mf(path);
  std::string_view text(reinterpret_cast<const char*>(mf.data()), mf.size());
  tokjson::Scanner sc(text, file);

  json normalizer, pre_tokenizer, decoder, post_processor, added_tokens;
  bool has_model = false, has_vocab = false, has_merges = false;
  std::string model_type;
  std::string key, s1, s2;

  auto parse_small = [&](std::string_view raw, const std::string& what) {
    try {
      return json::parse(raw);
    } catch (const json::exception& e) {
      throw Error(file, "malformed JSON in \"" + what + "\": " + e.what());
    }
  };

  bool first = true;
  sc.expect('{');
  while (sc.next_key(key, first)) {
    if (key == "model") {
      has_model = true;
      bool mfirst = true;
      sc.expect('{');
      while (sc.next_key(key, mfirst)) {
        if (key == "vocab") {
          if (!sc.peek('{')) {
            // Unigram stores its vocabulary as a list; report the type below.
            sc.skip_value();
            continue;
          }
          has_vocab = true;
          bool vfirst = true;
          sc.expect('{');
          while (sc.next_key(s1, vfirst)) add_vocab_entry(t, s1, sc.integer(), file);
        } else if (key == "merges") {
          has_merges = true;
          bool afirst = true;
          sc.expect('[');
          while (sc.next_element(afirst)) {
            if (sc.peek('[')) {
              sc.expect('[');
              sc.string(s1);
              sc.expect(',');
              sc.string(s2);
              sc.expect(']');
              t.merges.emplace_back(s1, s2);
            } else {
              sc.string(s1);
              size_t sp = s1.find(' ');
              if (sp == std::string::npos || s1.find(' ', sp + 1) != std::string::npos)
                throw Error(file, "merge " + std::to_string(t.merges.size()) + " ('" + s1 +
                                      "') is not of the form \"a b\"");
              t.merges.emplace_back(s1.substr(0, sp), s1.substr(sp + 1));
            }
          }
        } else {
          json v = parse_small(sc.skip_value(), "model." + key);
          if (key == "type" && v.is_string()) {
            model_type = v.get<std::string>();
          } else if (key == "ignore_merges") {
            t.ignore_merges = v.is_boolean() && v.get<bool>();
          } else if (key == "byte_fallback" && v.is_boolean() && v.get<bool>()) {
            throw Error(file, "BPE byte_fallback is not supported yet");
          } else if ((key == "continuing_subword_prefix" || key == "end_of_word_suffix") &&
                     v.is_string() && !v.get<std::string>().empty()) {
            throw Error(file, "BPE " + key + " is not supported yet");
          } else if (key == "dropout" && v.is_number() && v.get<double>() > 0) {
            throw Error(
                file, "BPE dropout is not supported (inference needs deterministic tokenization)");
          }
        }
      }
    } else if (key == "normalizer" || key == "pre_tokenizer" || key == "decoder" ||
               key == "post_processor" || key == "added_tokens") {
      json v = parse_small(sc.skip_value(), key);
      if (key == "normalizer")
        normalizer = std::move(v);
      else if (key == "pre_tokenizer")
        pre_tokenizer = std::move(v);
      else if (key == "decoder")
        decoder = std::move(v);
      else if (key == "post_processor")
        post_processor = std::move(v);
      else
        added_tokens = std::move(v);
    } else {
      sc.skip_value();
    }
  }
  if (!sc.at_end()) sc.fail("trailing characters after the top-level object");

  if (!has_model) throw Error(file, "no \"model\" section");
  if (model_type.empty() && has_merges) model_type = "BPE";
  if (model_type != "BPE")
    throw Error(file, "model type '" + (model_type.empty() ? std::string("(none)") : model_type) +
                          "' is not supported yet (only byte-level BPE)");
  if (!has_vocab) throw Error(file, "model has no \"vocab\" object");
  if (!has_merges) throw Error(file, "model has no \"merges\" list");

  // Normalizer: none or NFC (possibly inside a one-element Sequence).
  if (normalizer.is_object() && normalizer.value("type", "") == "Sequence" &&
      normalizer.contains("normalizers") && normalizer["normalizers"].is_array() &&
      normalizer["normalizers"].size() <= 1) {
    normalizer = normalizer["normalizers"].empty() ? json() : normalizer["normalizers"][0];
  }
  if (normalizer.is_object()) {
    std::string type = normalizer.value("type", "");
    if (type != "NFC")
      throw Error(file, "normalizer '" + type + "' is not supported yet (only NFC)");
    t.normalizer = "NFC";
  } else if (!normalizer.is_null()) {
    throw Error(file, "\"normalizer\" must be an object or null");
  }

  // Pre-tokenizer: [Split(regex, Isolated)] + ByteLevel(use_regex=false), or ByteLevel alone.
  std::vector<json> steps;
  if (pre_tokenizer.is_object() && pre_tokenizer.value("type", "") == "Sequence") {
    if (!pre_tokenizer.contains("pretokenizers") || !pre_tokenizer["pretokenizers"].is_array())
      throw Error(file, "pre_tokenizer Sequence has no \"pretokenizers\" list");
    for (const auto& s : pre_tokenizer["pretokenizers"]) steps.push_back(s);
  } else if (pre_tokenizer.is_object()) {
    steps.push_back(pre_tokenizer);
  }
  bool have_bytelevel = false, have_split = false;
  for (const auto& s : steps) {
    std::string type = s.is_object() ? s.value("type", "") : "";
    if (type == "Split") {
      if (have_split || have_bytelevel)
        throw Error(file, "this pre_tokenizer sequence (several splits) is not supported yet");
      std::string behavior = s.value("behavior", "");
      if (behavior != "Isolated")
        throw Error(file, "Split behavior '" + behavior + "' is not supported yet (only Isolated)");
      if (s.value("invert", false))
        throw Error(file, "Split with invert=true is not supported yet");
      const json& pat = s.contains("pattern") ? s["pattern"] : json();
      if (pat.contains("Regex") && pat["Regex"].is_string()) {
        t.set_regex(pat["Regex"].get<std::string>(), false, file);
      } else if (pat.contains("String") && pat["String"].is_string()) {
        t.set_regex(pat["String"].get<std::string>(), true, file);
      } else {
        throw Error(file, "Split pre-tokenizer has no Regex or String pattern");
      }
      have_split = true;
    } else if (type == "ByteLevel") {
      if (have_bytelevel) throw Error(file, "two ByteLevel pre-tokenizers are not supported");
      have_bytelevel = true;
      t.add_prefix_space = s.value("add_prefix_space", false);
      if (s.value("use_regex", true)) {
        if (have_split)
          throw Error(file, "Split followed by ByteLevel(use_regex=true) is not supported yet");
        t.set_regex(std::string(kGpt2Regex), false, file);
      }
    } else {
      throw Error(file, "pre-tokenizer '" + type + "' is not supported yet");
    }
  }
  if (!have_bytelevel)
    throw Error(file, "no ByteLevel pre-tokenizer: only byte-level BPE is supported yet");
  if (!decoder.is_null() && !(decoder.is_object() && decoder.value("type", "") == "ByteLevel"))
    throw Error(file, "decoder '" +
                          (decoder.is_object() ? decoder.value("type", "?") : std::string("?")) +
                          "' is not supported yet (only ByteLevel)");

  // Llama-3's post-processor prepends <|begin_of_text|> to plain prompts.
  std::function<void(const json&)> scan_pp = [&](const json& pp) {
    if (!pp.is_object()) return;
    if (pp.value("type", "") == "TemplateProcessing" && pp.contains("single") &&
        pp["single"].is_array() && !pp["single"].empty() &&
        pp["single"][0].contains("SpecialToken"))
      t.adds_bos = true;
    if (pp.contains("processors") && pp["processors"].is_array())
      for (const auto& p : pp["processors"]) scan_pp(p);
  };
  scan_pp(post_processor);

  t.where = file;
  t.finish_vocab(file);

  std::vector<AddedToken> added;
  if (!added_tokens.is_null()) {
    if (!added_tokens.is_array()) throw Error(file, "\"added_tokens\" must be a list");
    for (const auto& a : added_tokens) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer())
        throw Error(file, "an added token has no integer \"id\"");
      added.push_back(parse_added(a, a["id"].get<int32_t>(), file));
    }
  }
  t.set_added(std::move(added), file);
}

static void load_vocab_merges(Tokenizer::Impl& t, const std::filesystem::path& dir) {
  auto vpath = dir / "vocab.json", mpath = dir / "merges.txt";
  const std::string vfile = describe(vpath), mfile = describe(mpath);
  if (!std::filesystem::exists(mpath))
    throw Error(mfile, "missing (vocab.json needs merges.txt next to it)");
  {
    MappedFile mf(vpath);
    std::string_view text(reinterpret_cast<const char*>(mf.data()), mf.size());
    tokjson::Scanner sc(text, vfile);
    std::string key;
    bool first = true;
    sc.expect('{');
    while (sc.next_key(key, first)) add_vocab_entry(t, key, sc.integer(), vfile);
    if (!sc.at_end()) sc.fail("trailing characters after the top-level object");
  }
  {
    std::string m = read_file(mpath);
    size_t pos = 0, line_no = 0;
    while (pos < m.size()) {
      size_t nl = m.find('\n', pos);
      if (nl == std::string::npos) nl = m.size();
      std::string_view line(m.data() + pos, nl - pos);
      pos = nl + 1;
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) continue;
      if (line_no == 1 && line.substr(0, 8) == "#version") continue;
      size_t sp = line.find(' ');
      if (sp == std::string_view::npos || sp == 0 || sp + 1 >= line.size() ||
          line.find(' ', sp + 1) != std::string_view::npos)
        throw Error(mfile,
                    "line " + std::to_string(line_no) + " is not a merge of the form \"a b\"");
      t.merges.emplace_back(std::string(line.substr(0, sp)), std::string(line.substr(sp + 1)));
    }
  }
  t.where = vfile;
  t.finish_vocab(mfile);

  // The slow tokenizer classes fix the normalizer and pattern; added tokens
  // come from tokenizer_config.json's added_tokens_decoder.
  std::string cls;
  std::vector<AddedToken> added;
  auto cfg_path = dir / "tokenizer_config.json";
  if (std::filesystem::exists(cfg_path)) {
    const json cfg = read_json_object(cfg_path);
    cls = cfg.value("tokenizer_class", "");
    if (cfg.contains("added_tokens_decoder") && cfg["added_tokens_decoder"].is_object()) {
      for (const auto& [k, v] : cfg["added_tokens_decoder"].items()) {
        int32_t id = 0;
        try {
          id = std::stoi(k);
        } catch (...) {
          throw Error(describe(cfg_path), "added_tokens_decoder key '" + k + "' is not an id");
        }
        added.push_back(parse_added(v, id, describe(cfg_path)));
      }
    }
  }
  if (cls == "Qwen2Tokenizer" || cls == "Qwen2TokenizerFast" || cls.empty()) {
    t.normalizer = "NFC";
    t.set_regex(std::string(kQwen2PreTokenizer.regex), false, vfile);
  } else {
    t.set_regex(std::string(kGpt2Regex), false, vfile);
  }
  t.set_added(std::move(added), describe(cfg_path));
}

Tokenizer Tokenizer::load(const std::filesystem::path& dir) {
  if (gguf::is_gguf_path(dir)) return load_gguf(dir);
  auto t = std::make_shared<Impl>();
  if (!std::filesystem::is_directory(dir)) throw Error(describe(dir), "no such model directory");
  if (std::filesystem::exists(dir / "tokenizer.json")) {
    load_tokenizer_json(*t, dir / "tokenizer.json");
  } else if (std::filesystem::exists(dir / "vocab.json")) {
    load_vocab_merges(*t, dir);
  } else {
    throw Error(describe(dir), "no tokenizer.json (or vocab.json + merges.txt) found");
  }
  t->apply_config(dir);
  t->self_merge.reset(new std::atomic<uint8_t>[t->kind.size()]());
  return Tokenizer(std::move(t));
}

// GGUF: tokenizer.ggml.* rebuilt as the equivalent tokenizer.json (see
// load_gguf in tokenizer.h; gguf_export.cpp writes the inverse).
Tokenizer Tokenizer::load_gguf(const std::filesystem::path& path) {
  const std::string file = describe(path);
  const gguf::File f(path);
  auto array_of = [&](const std::string& key,
                      gguf::ValueType elem) -> const std::vector<gguf::Value>& {
    const gguf::Value& v = f.get(key);
    if (v.type() != gguf::ValueType::ARRAY || v.elem_type() != elem)
      throw Error(file, "key '" + key + "' is not an array of " + gguf::value_type_name(elem));
    return v.as_array();
  };
  auto token_id = [&](const char* key) -> std::optional<int64_t> {
    const gguf::Value* v = f.find(key);
    if (!v) return std::nullopt;
    if (!v->is_integer()) throw Error(file, std::string("key '") + key + "' is not an integer");
    return v->as_int();
  };

  const std::string& model = f.get_string("tokenizer.ggml.model");
  if (model != "gpt2")
    throw Error(
        file, "tokenizer.ggml.model '" + model + "' is not supported (only gpt2: byte-level BPE)");
  const std::string& pre_name = f.get_string("tokenizer.ggml.pre");
  const PreTokenizer* pre = pre_tokenizer_by_name(pre_name);
  if (!pre)
    throw Error(file, "tokenizer.ggml.pre '" + pre_name +
                          "' is not supported (supported: " + pre_tokenizer_names() + ")");
  const auto& tokens = array_of("tokenizer.ggml.tokens", gguf::ValueType::STRING);
  const auto& types = array_of("tokenizer.ggml.token_type", gguf::ValueType::I32);
  const auto& merges = array_of("tokenizer.ggml.merges", gguf::ValueType::STRING);
  if (types.size() != tokens.size())
    throw Error(file, "tokenizer.ggml.token_type has " + std::to_string(types.size()) +
                          " entries for " + std::to_string(tokens.size()) + " tokens");
  if (tokens.size() > size_t{1} << 30) throw Error(file, "tokenizer.ggml.tokens is too large");

  auto t = std::make_shared<Impl>();
  std::vector<AddedToken> added;
  for (size_t id = 0; id < tokens.size(); ++id) {
    const int64_t type = types[id].as_int();
    const std::string& tok = tokens[id].as_string();
    if (type == gguf::kTokenNormal) {
      add_vocab_entry(*t, tok, static_cast<int64_t>(id), file);
    } else if (type == gguf::kTokenControl || type == gguf::kTokenUserDefined) {
      AddedToken a;
      a.id = static_cast<int32_t>(id);
      a.content = tok;
      a.special = type == gguf::kTokenControl;
      added.push_back(std::move(a));
    } else if (type != gguf::kTokenUnused) {
      throw Error(file, "token " + std::to_string(id) + " has type " + std::to_string(type) +
                            " (supported: 1 normal, 3 control, 4 user-defined, 5 unused)");
    }
  }
  t->merges.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const std::string& m = merges[r].as_string();
    const size_t sp = m.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= m.size() ||
        m.find(' ', sp + 1) != std::string::npos)
      throw Error(file, "tokenizer.ggml.merges[" + std::to_string(r) + "] ('" + m +
                            "') is not of the form \"a b\"");
    t->merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
  }
  t->where = file;
  t->finish_vocab(file);
  // The Hugging Face tokenizer of the family: Split(regex, Isolated) +
  // ByteLevel(add_prefix_space=false, use_regex=false), ByteLevel decoder,
  // with the family's normalizer and flags (formats/arch.h).
  if (pre->nfc) t->normalizer = "NFC";
  t->ignore_merges = pre->ignore_merges;
  t->clean_up = pre->clean_up_spaces;
  t->set_regex(std::string(pre->regex), false, file);
  t->set_added(std::move(added), file);

  auto token_string = [&](const char* key) -> std::string {
    auto id = token_id(key);
    if (!id) return "";
    if (*id < 0 || static_cast<size_t>(*id) >= t->kind.size() || t->kind[*id] == Kind::kHole)
      throw Error(file, std::string("key '") + key + "': token id " + std::to_string(*id) +
                            " is not in the vocabulary");
    return t->id_to_token[*id];
  };
  t->bos_token = token_string("tokenizer.ggml.bos_token_id");
  t->eos_token = token_string("tokenizer.ggml.eos_token_id");
  t->pad_token = token_string("tokenizer.ggml.padding_token_id");
  if (f.find("tokenizer.ggml.add_bos_token"))
    t->adds_bos = f.get_bool("tokenizer.ggml.add_bos_token");
  if (f.find("tokenizer.chat_template")) t->chat_template = f.get_string("tokenizer.chat_template");
  t->self_merge.reset(new std::atomic<uint8_t>[t->kind.size()]());
  return Tokenizer(std::move(t));
}

// ---------------------------------------------------------------- encoding

namespace {

struct MatchState {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mc = nullptr;
  pcre2_jit_stack* stack = nullptr;
  MatchState() {
    md = pcre2_match_data_create(32, nullptr);
    mc = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    pcre2_jit_stack_assign(mc, nullptr, stack);
  }
  ~MatchState() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
  }
};

MatchState& match_state() {
  thread_local MatchState st;
  return st;
}

// Byte length of the UTF-8 character ending just before `end`.
size_t prev_char_len(std::string_view s, size_t end) {
  size_t k = 1;
  while (k < 4 && k < end && (static_cast<uint8_t>(s[end - k]) & 0xC0) == 0x80) ++k;
  return k;
}

struct Segment {
  size_t begin, end;
  int32_t added;  // index into added tokens, or -1 for text
};

// Cuts added tokens out of `text` (Hugging Face AddedVocabulary::split_with_indices).
void split_added(std::string_view text, const AddedMatcher& m, const std::vector<AddedToken>& added,
                 std::vector<Segment>& segs) {
  segs.clear();
  size_t n = text.size(), start = 0, i = 0;
  while (i < n) {
    if (!m.may_start(static_cast<uint8_t>(text[i]))) {
      ++i;
      continue;
    }
    size_t len = 0;
    int32_t idx = m.match(text, i, len);
    if (idx < 0) {
      ++i;
      continue;
    }
    const AddedToken& a = added[idx];
    size_t ms = i, me = i + len;
    if (a.single_word) {
      size_t l = 0;
      bool before_ok = ms == 0;
      if (!before_ok) {
        size_t pl = prev_char_len(text, ms);
        int32_t cp = unicode::decode_utf8(text, ms - pl, l);
        before_ok = cp < 0 || !unicode::is_word_char(static_cast<uint32_t>(cp));
      }
      bool after_ok = me == n;
      if (!after_ok) {
        int32_t cp = unicode::decode_utf8(text, me, l);
        after_ok = cp < 0 || !unicode::is_word_char(static_cast<uint32_t>(cp));
      }
      if (!before_ok || !after_ok) {
        i = me;  // the automaton moves past a discarded match
        continue;
      }
    }
    if (a.lstrip) {
      while (ms > start) {
        size_t pl = prev_char_len(text, ms), l = 0;
        int32_t cp = unicode::decode_utf8(text, ms - pl, l);
        if (cp < 0 || !unicode::is_whitespace(static_cast<uint32_t>(cp))) break;
        ms -= pl;
      }
    }
    if (a.rstrip) {
      while (me < n) {
        size_t l = 0;
        int32_t cp = unicode::decode_utf8(text, me, l);
        if (cp < 0 || !unicode::is_whitespace(static_cast<uint32_t>(cp))) break;
        me += l;
      }
    }
    if (ms > start) segs.push_back({start, ms, -1});
    segs.push_back({ms, me, idx});
    start = i = me;
  }
  if (start < n) segs.push_back({start, n, -1});
}

}  // namespace

void Tokenizer::Impl::bpe(std::string_view bytes, std::vector<int32_t>& out) const {
  struct Sym {
    int32_t id, prev, next;
  };
  struct Cand {
    int32_t rank, pos, id;
    bool operator<(const Cand& o) const {  // std heaps are max-heaps: invert for min-(rank, pos)
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  thread_local std::vector<Sym> syms;
  thread_local std::vector<Cand> heap;
  size_t n = bytes.size();
  syms.resize(n);
  for (size_t i = 0; i < n; ++i)
    syms[i] = {byte_id[static_cast<uint8_t>(bytes[i])], static_cast<int32_t>(i) - 1,
               i + 1 < n ? static_cast<int32_t>(i + 1) : -1};
  heap.clear();
  auto push = [](const Cand& c) {
    heap.push_back(c);
    std::push_heap(heap.begin(), heap.end());
  };
  for (size_t i = 0; i + 1 < n; ++i) {
    if (const auto* e = merge_map.find(syms[i].id, syms[i + 1].id))
      heap.push_back({e->rank, static_cast<int32_t>(i), e->id});
  }
  std::make_heap(heap.begin(), heap.end());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    Cand c = heap.back();
    heap.pop_back();
    Sym& s = syms[c.pos];
    if (s.id < 0 || s.next < 0) continue;
    const auto* e = merge_map.find(s.id, syms[s.next].id);
    if (!e || e->id != c.id) continue;  // stale: a neighbour changed since this was queued
    int32_t dead = s.next;
    s.id = c.id;
    s.next = syms[dead].next;
    if (s.next >= 0) syms[s.next].prev = c.pos;
    syms[dead].id = -1;
    if (s.prev >= 0) {
      if (const auto* pe = merge_map.find(syms[s.prev].id, s.id)) push({pe->rank, s.prev, pe->id});
    }
    if (s.next >= 0) {
      if (const auto* ne = merge_map.find(s.id, syms[s.next].id)) push({ne->rank, c.pos, ne->id});
    }
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

void Tokenizer::Impl::encode_piece(std::string_view bytes, std::vector<int32_t>& out) const {
  if (bytes.size() == 1) {
    out.push_back(byte_id[static_cast<uint8_t>(bytes[0])]);
    return;
  }
  int32_t id = bytes_to_id.find(bytes);
  if (id >= 0) {
    if (ignore_merges) {
      out.push_back(id);
      return;
    }
    // Most pieces of real text are whole vocabulary tokens whose BPE gives
    // the token itself; remembering that per id avoids the locked cache.
    uint8_t st = self_merge[id].load(std::memory_order_relaxed);
    if (st == 1) {
      out.push_back(id);
      return;
    }
    if (st == 0) {
      size_t before = out.size();
      bpe(bytes, out);
      bool self = out.size() == before + 1 && out[before] == id;
      self_merge[id].store(self ? 1 : 2, std::memory_order_relaxed);
      return;
    }
  }
  bool cacheable = bytes.size() <= BpeCache::kMaxKeyBytes;
  size_t h = 0;
  if (cacheable) {
    h = hash_bytes(bytes);
    if (cache.get(bytes, h, out)) return;
  }
  size_t before = out.size();
  bpe(bytes, out);
  if (cacheable) cache.put(bytes, h, out.data() + before, out.size() - before);
}

void Tokenizer::Impl::encode_normalized(std::string_view text, std::vector<int32_t>& out) const {
  std::string prefixed;
  if (add_prefix_space && !text.empty() && text[0] != ' ') {
    prefixed = " ";
    prefixed.append(text);
    text = prefixed;
  }
  if (!code) {
    encode_piece(text, out);
    return;
  }
  if (fast_split != pretok::Pattern::kNone) {
    for (size_t pos = 0, n = text.size(); pos < n;) {
      size_t e = pretok::next_piece(fast_split, text, pos);
      encode_piece(text.substr(pos, e - pos), out);
      pos = e;
    }
    return;
  }
  MatchState& st = match_state();
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t n = text.size(), pos = 0, last = 0;
  PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.md);
  while (pos <= n) {
    int rc = pcre2_match(code.get(), subject, n, pos, PCRE2_NO_UTF_CHECK, st.md, st.mc);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw Error(where,
                  std::string("pre-tokenizer regex failed: ") + reinterpret_cast<const char*>(msg));
    }
    size_t s = ov[0], e = ov[1];
    if (s > last) encode_piece(text.substr(last, s - last), out);
    if (e > s) encode_piece(text.substr(s, e - s), out);
    last = e;
    if (e == s) {
      if (s >= n) break;
      size_t l = 0;
      unicode::decode_utf8(text, s, l);
      pos = s + l;
    } else {
      pos = e;
    }
  }
  if (last < n) encode_piece(text.substr(last), out);
}

void Tokenizer::Impl::encode_section(std::string_view text, bool parse_special,
                                     std::vector<int32_t>& out) const {
  std::string normed;
  if (normalizer == "NFC") {
    if (unicode::nfc(text, normed)) text = normed;
  }
  const AddedMatcher& m = parse_special ? norm_all : norm_plain;
  if (m.empty()) {
    encode_normalized(text, out);
    return;
  }
  std::vector<Segment> segs;
  split_added(text, m, added, segs);
  for (const auto& s : segs) {
    if (s.added >= 0)
      out.push_back(added[s.added].id);
    else
      encode_normalized(text.substr(s.begin, s.end - s.begin), out);
  }
}

void Tokenizer::Impl::encode_text(std::string_view text, bool parse_special,
                                  std::vector<int32_t>& out) const {
  const AddedMatcher& m = parse_special ? raw_all : raw_plain;
  if (m.empty()) {
    encode_section(text, parse_special, out);
    return;
  }
  thread_local std::vector<Segment> segs;
  std::vector<Segment> local;
  local.swap(segs);  // re-entrancy safe: encode_section may not reuse it
  split_added(text, m, added, local);
  for (const auto& s : local) {
    if (s.added >= 0)
      out.push_back(added[s.added].id);
    else
      encode_section(text.substr(s.begin, s.end - s.begin), parse_special, out);
  }
  local.swap(segs);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (utf8_valid(text)) {
    impl_->encode_text(text, parse_special, out);
  } else {
    std::string fixed = utf8_replace_invalid(text);
    impl_->encode_text(fixed, parse_special, out);
  }
  return out;
}

// ---------------------------------------------------------------- decoding

namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (s.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (true) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out.append(to);
    pos = hit + from.size();
  }
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

// transformers' clean_up_tokenization (same list and order).
void clean_up_tokenization(std::string& s) {
  replace_all(s, " .", ".");
  replace_all(s, " ?", "?");
  replace_all(s, " !", "!");
  replace_all(s, " ,", ",");
  replace_all(s, " ' ", "'");
  replace_all(s, " n't", "n't");
  replace_all(s, " 'm", "'m");
  replace_all(s, " 's", "'s");
  replace_all(s, " 've", "'ve");
  replace_all(s, " 're", "'re");
}

}  // namespace

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special,
                              std::optional<bool> clean_up) const {
  const Impl& t = *impl_;
  std::string bytes;
  for (int32_t id : ids) {
    t.check_id(id);
    if (skip_special && t.special[id]) continue;
    bytes.append(t.pieces[id]);
  }
  std::string text = utf8_replace_invalid(bytes);
  if (clean_up.value_or(t.clean_up)) clean_up_tokenization(text);
  return text;
}

std::string Tokenizer::token_to_piece(int32_t id) const {
  impl_->check_id(id);
  return impl_->pieces[id];
}

int32_t Tokenizer::vocab_size() const {
  return static_cast<int32_t>(impl_->kind.size());
}
bool Tokenizer::is_valid_id(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->kind.size() && impl_->kind[id] != Kind::kHole;
}

static std::optional<int32_t> lookup(const Tokenizer::Impl& t, const std::string& s) {
  if (s.empty()) return std::nullopt;
  int32_t id = t.find_token(s);
  if (id < 0) return std::nullopt;
  return id;
}

std::optional<int32_t> Tokenizer::bos_id() const {
  return lookup(*impl_, impl_->bos_token);
}
std::optional<int32_t> Tokenizer::eos_id() const {
  return lookup(*impl_, impl_->eos_token);
}
std::optional<int32_t> Tokenizer::pad_id() const {
  return lookup(*impl_, impl_->pad_token);
}
std::optional<int32_t> Tokenizer::unk_id() const {
  return lookup(*impl_, impl_->unk_token);
}
std::optional<bool> Tokenizer::configured_add_bos() const {
  return impl_->configured_add_bos;
}
std::optional<bool> Tokenizer::configured_add_eos() const {
  return impl_->configured_add_eos;
}

std::vector<int32_t> Tokenizer::stop_ids() const {
  std::vector<int32_t> ids;
  if (auto e = eos_id()) ids.push_back(*e);
  for (const char* s :
       {"<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|eom_id|>", "<|end_of_text|>"}) {
    if (auto id = lookup(*impl_, s)) ids.push_back(*id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

bool Tokenizer::adds_bos() const {
  return impl_->adds_bos && bos_id().has_value();
}
const std::string& Tokenizer::chat_template() const {
  return impl_->chat_template;
}
std::string Tokenizer::bos_token() const {
  return impl_->bos_token;
}
std::string Tokenizer::eos_token() const {
  return impl_->eos_token;
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  int32_t id = impl_->find_token(token);
  if (id < 0) return std::nullopt;
  return id;
}

bool Tokenizer::is_special(int32_t id) const {
  return is_valid_id(id) && impl_->special[id];
}
const std::vector<std::string>& Tokenizer::id_to_token() const {
  return impl_->id_to_token;
}
const std::vector<std::pair<std::string, std::string>>& Tokenizer::merges() const {
  return impl_->merges;
}
const std::vector<AddedToken>& Tokenizer::added_tokens() const {
  return impl_->added;
}
const std::string& Tokenizer::pre_tokenizer_regex() const {
  return impl_->regex;
}
const std::string& Tokenizer::normalizer() const {
  return impl_->normalizer;
}

// ---------------------------------------------------------------- streaming

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tok, bool skip_special)
    : tok_(&tok), skip_special_(skip_special) {}

std::string IncrementalDecoder::push(int32_t id) {
  const Tokenizer::Impl& t = *tok_->impl_;
  t.check_id(id);
  if (skip_special_ && t.special[id]) return "";
  pending_.append(t.pieces[id]);
  size_t tail = unicode::incomplete_utf8_tail(pending_);
  std::string out =
      utf8_replace_invalid(std::string_view(pending_).substr(0, pending_.size() - tail));
  pending_.erase(0, pending_.size() - tail);
  return out;
}

std::string IncrementalDecoder::flush() {
  std::string out = utf8_replace_invalid(pending_);
  pending_.clear();
  return out;
}

// ---------------------------------------------------------------- UTF-8

bool utf8_valid(std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    if (unicode::decode_utf8(s, i, len) < 0) return false;
    i += len;
  }
  return true;
}

std::string utf8_replace_invalid(std::string_view s) {
  if (utf8_valid(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 16);
  for (size_t i = 0; i < s.size();) {
    size_t len = 0;
    if (unicode::decode_utf8(s, i, len) < 0)
      out.append("\xEF\xBF\xBD");
    else
      out.append(s.substr(i, len));
    i += len;
  }
  return out;
}

}  // namespace rv
