// A minimal, fast JSON scanner for the two big members of tokenizer.json
// (model.vocab with ~150k entries and model.merges with ~150-280k entries).
// A full DOM parse of a 7-11 MB tokenizer.json costs several hundred
// milliseconds; this scanner walks the text once, decodes strings in place and
// hands every other (small) member to nlohmann::json as a raw text span.
// Internal to the tokenizer layer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace rv::tokjson {

class Scanner {
 public:
  Scanner(std::string_view text, std::string where)
      : p_(text.data()),
        end_(text.data() + text.size()),
        begin_(text.data()),
        where_(std::move(where)) {}

  void ws();
  bool peek(char c);    // after whitespace
  void expect(char c);  // after whitespace; throws naming the offset
  bool at_end();
  // Decodes a JSON string (escapes, surrogate pairs) into out (cleared first).
  void string(std::string& out);
  int64_t integer();
  // Skips any JSON value and returns its raw text.
  std::string_view skip_value();
  // Iterates an object: bool first = true; expect('{');
  // while (next_key(k, first)) {...read the value...}. Arrays likewise.
  bool next_key(std::string& key, bool& first);
  bool next_element(bool& first);
  [[noreturn]] void fail(const std::string& what) const;
  size_t offset() const { return static_cast<size_t>(p_ - begin_); }

 private:
  const char* p_;
  const char* end_;
  const char* begin_;
  std::string where_;
};

}  // namespace rv::tokjson
