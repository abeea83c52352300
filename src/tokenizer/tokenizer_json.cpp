#include "tokenizer/tokenizer_json.h"

#include <cstring>

#include "common/error.h"
#include "tokenizer/unicode.h"

namespace rv::tokjson {

void Scanner::fail(const std::string& what) const {
  throw Error(where_, "malformed JSON at byte " + std::to_string(offset()) + ": " + what);
}

void Scanner::ws() {
  while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
}

bool Scanner::peek(char c) {
  ws();
  return p_ < end_ && *p_ == c;
}

bool Scanner::at_end() {
  ws();
  return p_ >= end_;
}

void Scanner::expect(char c) {
  ws();
  if (p_ >= end_) fail(std::string("expected '") + c + "', found end of file");
  if (*p_ != c) fail(std::string("expected '") + c + "', found '" + *p_ + "'");
  ++p_;
}

static int hex4(const char* p) {
  int v = 0;
  for (int i = 0; i < 4; ++i) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= c - '0';
    else if (c >= 'a' && c <= 'f')
      v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v |= c - 'A' + 10;
    else
      return -1;
  }
  return v;
}

void Scanner::string(std::string& out) {
  out.clear();
  expect('"');
  while (true) {
    const char* q = p_;
    while (q < end_ && *q != '"' && *q != '\\') ++q;
    if (q >= end_) fail("unterminated string");
    out.append(p_, static_cast<size_t>(q - p_));
    p_ = q;
    if (*p_ == '"') {
      ++p_;
      return;
    }
    // escape
    if (p_ + 1 >= end_) fail("unterminated escape");
    char e = p_[1];
    p_ += 2;
    switch (e) {
      case '"':
        out.push_back('"');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '/':
        out.push_back('/');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        if (end_ - p_ < 4) fail("truncated \\u escape");
        int v = hex4(p_);
        if (v < 0) fail("bad \\u escape");
        p_ += 4;
        uint32_t cp = static_cast<uint32_t>(v);
        if (cp >= 0xD800 && cp <= 0xDBFF && end_ - p_ >= 6 && p_[0] == '\\' && p_[1] == 'u') {
          int lo = hex4(p_ + 2);
          if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (static_cast<uint32_t>(lo) - 0xDC00);
            p_ += 6;
          }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // lone surrogate
        unicode::append_utf8(out, cp);
        break;
      }
      default:
        fail(std::string("bad escape '\\") + e + "'");
    }
  }
}

int64_t Scanner::integer() {
  ws();
  bool neg = false;
  if (p_ < end_ && *p_ == '-') {
    neg = true;
    ++p_;
  }
  if (p_ >= end_ || *p_ < '0' || *p_ > '9') fail("expected an integer");
  int64_t v = 0;
  while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
    v = v * 10 + (*p_ - '0');
    if (v > (int64_t{1} << 40)) fail("integer out of range");
    ++p_;
  }
  if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) fail("expected an integer");
  return neg ? -v : v;
}

std::string_view Scanner::skip_value() {
  ws();
  const char* start = p_;
  if (p_ >= end_) fail("expected a value, found end of file");
  int depth = 0;
  do {
    if (p_ >= end_) fail("unterminated value");
    char c = *p_;
    if (c == '"') {
      ++p_;
      while (p_ < end_ && *p_ != '"') p_ += (*p_ == '\\') ? 2 : 1;
      if (p_ >= end_) fail("unterminated string");
      ++p_;
    } else if (c == '{' || c == '[') {
      ++depth;
      ++p_;
    } else if (c == '}' || c == ']') {
      if (depth == 0) fail(std::string("unexpected '") + c + "'");
      --depth;
      ++p_;
    } else {
      ++p_;
      // scalars: run to the next delimiter
      while (p_ < end_ && depth == 0 && !strchr(",}] \n\r\t", *p_)) ++p_;
    }
  } while (depth > 0);
  return std::string_view(start, static_cast<size_t>(p_ - start));
}

bool Scanner::next_key(std::string& key, bool& first) {
  if (peek('}')) {
    ++p_;
    return false;
  }
  if (!first) expect(',');
  first = false;
  string(key);
  expect(':');
  return true;
}

bool Scanner::next_element(bool& first) {
  if (peek(']')) {
    ++p_;
    return false;
  }
  if (!first) expect(',');
  first = false;
  return true;
}

}  // namespace rv::tokjson
