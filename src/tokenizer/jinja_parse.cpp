// Lexer and parser for the Jinja subset (grammar and precedence as Jinja2's
// parser.py: condexpr < or < and < not < compare < + - < ~ < * / // % < ** <
// unary - + < postfix/filters/tests).
#include <algorithm>
#include <cstring>

#include "tokenizer/jinja_parse.h"

#include "common/text.h"

namespace rv::jinja::detail {

namespace {

enum class TK { Data, BlockBegin, BlockEnd, VarBegin, VarEnd, Name, Str, Int, Float, Op, Eof };

struct Tok {
  TK k;
  std::string s;
  int line;
  int64_t i = 0;
  double f = 0;
};

bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || (c >= '0' && c <= '9');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Length of the Python whitespace code point at s[pos], or 0.
size_t py_space_at(std::string_view s, size_t pos) {
  size_t len = 0;
  int32_t cp = text::decode_utf8(s, pos, len);
  return cp >= 0 && text::is_space(static_cast<uint32_t>(cp)) ? len : 0;
}

class Lexer {
 public:
  Lexer(std::string_view source, const Options& o) : o_(o) {
    // Jinja2 normalises every newline sequence to "\n" and drops one
    // trailing newline unless keep_trailing_newline.
    src_.reserve(source.size());
    for (size_t k = 0; k < source.size(); ++k) {
      if (source[k] == '\r') {
        src_ += '\n';
        if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
      } else {
        src_ += source[k];
      }
    }
    if (!o_.keep_trailing_newline && !src_.empty() && src_.back() == '\n') src_.pop_back();
    for (size_t k = 0; k < src_.size(); ++k)
      if (src_[k] == '\n') newlines_.push_back(k);
  }

  std::vector<Tok> run() {
    size_t n = src_.size();
    while (pos_ < n) {
      size_t p = pos_;
      while (p + 1 < n &&
             !(src_[p] == '{' && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')))
        ++p;
      if (p + 1 >= n) {
        emit(TK::Data, src_.substr(pos_), pos_);
        break;
      }
      char kind = src_[p + 1];
      char mod = p + 2 < n ? src_[p + 2] : 0;
      std::string text = src_.substr(pos_, p - pos_);
      if (mod == '-') {
        while (!text.empty()) {
          // Strip trailing whitespace (Python \s), one code point at a time.
          size_t k = text.size() - 1;
          while (k > 0 && (static_cast<unsigned char>(text[k]) & 0xC0) == 0x80) --k;
          if (!py_space_at(text, k)) break;
          text.resize(k);
        }
      } else if (kind != '{' && o_.lstrip_blocks && mod != '+') {
        size_t nl = text.rfind('\n');
        size_t tail = nl == std::string::npos ? 0 : nl + 1;
        bool line_start = nl != std::string::npos || pos_ == 0 || src_[pos_ - 1] == '\n';
        if (line_start && std::all_of(text.begin() + static_cast<long>(tail), text.end(),
                                      [](char c) { return c == ' ' || c == '\t'; }))
          text.resize(tail);
      }
      if (!text.empty()) emit(TK::Data, text, pos_);
      size_t q = p + 2 + ((mod == '-' || (mod == '+' && kind != '{')) ? 1 : 0);
      if (kind == '#') {
        size_t e = src_.find("#}", q);
        if (e == std::string::npos)
          throw SyntaxError{line_at(p), "comment '{#' is never closed (missing '#}')"};
        char emod = e > q ? src_[e - 1] : 0;
        pos_ = e + 2;
        after_tag(emod == '-', emod == '+', true);
        continue;
      }
      if (kind == '%') check_raw(q, p);
      tokens_.push_back({kind == '%' ? TK::BlockBegin : TK::VarBegin, "", line_at(p)});
      pos_ = q;
      lex_tag(kind == '%', line_at(p));
    }
    tokens_.push_back({TK::Eof, "", line_at(src_.size())});
    return std::move(tokens_);
  }

 private:
  int line_at(size_t pos) const {
    return 1 + static_cast<int>(std::lower_bound(newlines_.begin(), newlines_.end(), pos) -
                                newlines_.begin());
  }

  void emit(TK k, std::string s, size_t at) { tokens_.push_back({k, std::move(s), line_at(at)}); }

  bool starts(const char* lit) const { return src_.compare(pos_, strlen(lit), lit) == 0; }

  void after_tag(bool strip, bool plus, bool block) {
    if (strip) {
      while (pos_ < src_.size()) {
        size_t w = py_space_at(src_, pos_);
        if (!w) break;
        pos_ += w;
      }
    } else if (block && o_.trim_blocks && !plus && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
    }
  }

  void check_raw(size_t q, size_t p) {
    size_t k = q;
    while (k < src_.size() && is_ascii_space(src_[k])) ++k;
    if (src_.compare(k, 3, "raw") == 0 && (k + 3 >= src_.size() || !is_name_char(src_[k + 3])))
      throw SyntaxError{line_at(p), "unsupported Jinja tag 'raw'"};
  }

  void lex_tag(bool block, int open_line) {
    int depth = 0;
    size_t n = src_.size();
    for (;;) {
      while (pos_ < n && is_ascii_space(src_[pos_])) ++pos_;
      if (pos_ >= n)
        throw SyntaxError{open_line, block ? "tag '{%' is never closed (missing '%}')"
                                           : "expression '{{' is never closed (missing '}}')"};
      size_t at = pos_;
      if (block) {
        if (starts("-%}") || starts("+%}") || starts("%}")) {
          char m = src_[pos_];
          pos_ += m == '%' ? 2 : 3;
          tokens_.push_back({TK::BlockEnd, "", line_at(at)});
          after_tag(m == '-', m == '+', true);
          return;
        }
      } else if (depth == 0 && (starts("-}}") || starts("}}"))) {
        bool strip = src_[pos_] == '-';
        pos_ += strip ? 3 : 2;
        tokens_.push_back({TK::VarEnd, "", line_at(at)});
        after_tag(strip, false, false);
        return;
      }
      char c = src_[pos_];
      if (is_name_start(c)) {
        size_t b = pos_;
        while (pos_ < n && is_name_char(src_[pos_])) ++pos_;
        emit(TK::Name, src_.substr(b, pos_ - b), at);
      } else if (is_digit(c)) {
        lex_number();
      } else if (c == '\'' || c == '"') {
        lex_string(c);
      } else {
        static const char* ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*",
                                    "/",  "%",  "~",  "<",  ">",  "=",  "(", ")", "[",
                                    "]",  "{",  "}",  ",",  ".",  ":",  "|"};
        const char* hit = nullptr;
        for (const char* op : ops)
          if (starts(op)) {
            hit = op;
            break;
          }
        if (!hit) throw SyntaxError{line_at(at), std::string("unexpected character '") + c + "'"};
        if (hit[0] == '{') ++depth;
        if (hit[0] == '}') --depth;
        pos_ += strlen(hit);
        emit(TK::Op, hit, at);
      }
    }
  }

  std::string digits() {
    std::string d;
    while (pos_ < src_.size() &&
           (is_digit(src_[pos_]) || (src_[pos_] == '_' && pos_ + 1 < src_.size() &&
                                     is_digit(src_[pos_ + 1]) && !d.empty()))) {
      if (src_[pos_] != '_') d += src_[pos_];
      ++pos_;
    }
    return d;
  }

  void lex_number() {
    size_t at = pos_;
    std::string text = digits();
    bool after_dot = !tokens_.empty() && tokens_.back().k == TK::Op && tokens_.back().s == ".";
    bool is_float = false;
    if (!after_dot && pos_ + 1 < src_.size() && src_[pos_] == '.' && is_digit(src_[pos_ + 1])) {
      ++pos_;
      text += "." + digits();
      is_float = true;
    }
    if (!after_dot && pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t k = pos_ + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && is_digit(src_[k])) {
        text += 'e';
        if (src_[pos_ + 1] == '-') text += '-';
        pos_ = k;
        text += digits();
        is_float = true;
      }
    }
    Tok t{is_float ? TK::Float : TK::Int, text, line_at(at)};
    if (is_float) {
      t.f = std::strtod(text.c_str(), nullptr);
    } else {
      errno = 0;
      t.i = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE)
        throw SyntaxError{line_at(at), "integer literal " + text + " is too large"};
    }
    tokens_.push_back(std::move(t));
  }

  // Python string-literal escapes (Jinja2 decodes literals with unicode-escape).
  void lex_string(char quote) {
    size_t at = pos_++;
    std::string out;
    for (;;) {
      if (pos_ >= src_.size()) throw SyntaxError{line_at(at), "string literal is never closed"};
      char c = src_[pos_++];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= src_.size()) throw SyntaxError{line_at(at), "string literal is never closed"};
      char e = src_[pos_++];
      auto hex = [&](int len) {
        if (pos_ + static_cast<size_t>(len) > src_.size())
          throw SyntaxError{line_at(at), "truncated \\x/\\u escape in string literal"};
        uint32_t v = 0;
        for (int k = 0; k < len; ++k) {
          char h = src_[pos_++];
          int d = h >= '0' && h <= '9'   ? h - '0'
                  : h >= 'a' && h <= 'f' ? h - 'a' + 10
                  : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                         : -1;
          if (d < 0) throw SyntaxError{line_at(at), "bad \\x/\\u escape in string literal"};
          v = v * 16 + static_cast<uint32_t>(d);
        }
        return v;
      };
      switch (e) {
        case '\n':
          break;  // line continuation
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'v':
          out += '\v';
          break;
        case 'x':
          text::append_utf8(out, hex(2));
          break;
        case 'u':
          text::append_utf8(out, hex(4));
          break;
        case 'U': {
          uint32_t cp = hex(8);
          if (cp > 0x10FFFF) throw SyntaxError{line_at(at), "bad \\U escape in string literal"};
          text::append_utf8(out, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '7';
                 ++k)
              v = v * 8 + static_cast<uint32_t>(src_[pos_++] - '0');
            text::append_utf8(out, v);
          } else {
            out += '\\';  // unknown escapes stay as written
            out += e;
          }
      }
    }
    emit(TK::Str, std::move(out), at);
  }

  Options o_;
  std::string src_;
  std::vector<size_t> newlines_;
  std::vector<Tok> tokens_;
  size_t pos_ = 0;
};

const char* const kUnsupportedTags[] = {"include",   "import", "from",      "extends",    "block",
                                        "call",      "filter", "with",      "autoescape", "do",
                                        "trans",     "raw",    "pluralize", "endblock",   "endcall",
                                        "endfilter", "endwith"};

class Parser {
 public:
  explicit Parser(std::vector<Tok> toks) : t_(std::move(toks)) {}

  std::unique_ptr<Program> run() {
    auto prog = std::make_unique<Program>();
    std::string which;
    prog->body = parse_body({}, &which, "", 0);
    return prog;
  }

 private:
  const Tok& cur() const { return t_[p_]; }
  const Tok& look(size_t k = 1) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  bool is_op(const char* s) const { return cur().k == TK::Op && cur().s == s; }
  bool is_name(const char* s) const { return cur().k == TK::Name && cur().s == s; }

  static std::string describe(const Tok& t) {
    switch (t.k) {
      case TK::Data:
        return "template text";
      case TK::BlockBegin:
        return "'{%'";
      case TK::BlockEnd:
        return "'%}'";
      case TK::VarBegin:
        return "'{{'";
      case TK::VarEnd:
        return "'}}'";
      case TK::Name:
        return "'" + t.s + "'";
      case TK::Str:
        return "string literal";
      case TK::Int:
      case TK::Float:
        return "number " + t.s;
      case TK::Op:
        return "'" + t.s + "'";
      case TK::Eof:
        return "end of template";
    }
    return "?";
  }

  [[noreturn]] void error(const std::string& msg) const { throw SyntaxError{cur().line, msg}; }
  [[noreturn]] void unexpected(const std::string& wanted) const {
    error("expected " + wanted + ", got " + describe(cur()));
  }

  void expect_op(const char* s) {
    if (!is_op(s)) unexpected(std::string("'") + s + "'");
    ++p_;
  }
  void expect_block_end() {
    if (cur().k != TK::BlockEnd) unexpected("'%}'");
    ++p_;
  }
  std::string expect_name(const char* what) {
    if (cur().k != TK::Name) unexpected(what);
    return t_[p_++].s;
  }

  ExprP node(EK k, int line) {
    auto e = std::make_unique<Expr>();
    e->k = k;
    e->line = line;
    return e;
  }

  // Parses statements until a block tag named in `ends`; consumes '{%' and
  // that name and reports it in *which (the caller parses the rest).
  Body parse_body(std::initializer_list<const char*> ends, std::string* which, const char* opener,
                  int open_line) {
    Body body;
    for (;;) {
      const Tok& t = cur();
      if (t.k == TK::Eof) {
        if (ends.size() == 0) return body;
        throw SyntaxError{open_line, std::string("'") + opener + "' block opened at line " +
                                         std::to_string(open_line) +
                                         " is never closed (missing '{% " + "end" +
                                         std::string(opener) + " %}')"};
      }
      if (t.k == TK::Data) {
        auto s = std::make_unique<Stmt>();
        s->k = SK::Text;
        s->line = t.line;
        s->text = t.s;
        body.push_back(std::move(s));
        ++p_;
      } else if (t.k == TK::VarBegin) {
        auto s = std::make_unique<Stmt>();
        s->k = SK::Print;
        s->line = t.line;
        ++p_;
        s->e = parse_tuple(true, false);
        if (cur().k != TK::VarEnd) unexpected("'}}'");
        ++p_;
        body.push_back(std::move(s));
      } else if (t.k == TK::BlockBegin) {
        const Tok& nm = look();
        if (nm.k == TK::Name)
          for (const char* e : ends)
            if (nm.s == e) {
              *which = nm.s;
              p_ += 2;
              return body;
            }
        body.push_back(parse_statement());
      } else {
        unexpected("template text or a tag");
      }
    }
  }

  StmtP parse_statement() {
    int line = cur().line;
    ++p_;  // '{%'
    if (cur().k != TK::Name) unexpected("a tag name");
    std::string tag = t_[p_++].s;
    auto s = std::make_unique<Stmt>();
    s->line = line;
    std::string which;
    if (tag == "if") {
      s->k = SK::If;
      ExprP cond = parse_tuple(true, false);
      expect_block_end();
      for (;;) {
        Body b = parse_body({"elif", "else", "endif"}, &which, "if", line);
        s->branches.emplace_back(std::move(cond), std::move(b));
        if (which == "elif") {
          cond = parse_tuple(true, false);
          expect_block_end();
          continue;
        }
        if (which == "else") {
          expect_block_end();
          s->else_body = parse_body({"endif"}, &which, "if", line);
        }
        expect_block_end();
        break;
      }
    } else if (tag == "for") {
      s->k = SK::For;
      parse_targets(s.get(), "in");
      if (!is_name("in")) unexpected("'in'");
      ++p_;
      s->e = parse_tuple(false, false);
      if (is_name("if")) {
        ++p_;
        s->cond = parse_tuple(true, false);
      }
      if (is_name("recursive")) error("unsupported Jinja construct 'recursive' loop");
      expect_block_end();
      ++loop_depth_;
      s->body = parse_body({"endfor", "else"}, &which, "for", line);
      --loop_depth_;
      if (which == "else") {
        expect_block_end();
        s->else_body = parse_body({"endfor"}, &which, "for", line);
      }
      expect_block_end();
    } else if (tag == "set") {
      std::string first = expect_name("a variable name after 'set'");
      if (is_op(".")) {
        ++p_;
        s->k = SK::SetAttr;
        s->names = {first, expect_name("an attribute name")};
        expect_op("=");
        s->e = parse_tuple(true, false);
        expect_block_end();
      } else {
        s->names.push_back(first);
        while (is_op(",")) {
          ++p_;
          s->tuple_target = true;
          if (cur().k != TK::Name) break;
          s->names.push_back(t_[p_++].s);
        }
        if (is_op("=")) {
          ++p_;
          s->k = SK::Set;
          s->e = parse_tuple(true, false);
          expect_block_end();
        } else if (cur().k == TK::BlockEnd && !s->tuple_target) {
          ++p_;
          s->k = SK::SetBlock;
          s->body = parse_body({"endset"}, &which, "set", line);
          expect_block_end();
        } else if (is_op("|")) {
          error("unsupported Jinja construct: filtered block 'set'");
        } else {
          unexpected("'='");
        }
      }
    } else if (tag == "macro") {
      s->k = SK::Macro;
      s->names.push_back(expect_name("a macro name"));
      expect_op("(");
      while (!is_op(")")) {
        if (!s->params.empty()) expect_op(",");
        if (is_op(")")) break;
        std::string pname = expect_name("a parameter name");
        ExprP def;
        if (is_op("=")) {
          ++p_;
          def = parse_expression(true);
        }
        s->params.emplace_back(pname, std::move(def));
      }
      ++p_;
      expect_block_end();
      int saved = loop_depth_;
      loop_depth_ = 0;
      s->body = parse_body({"endmacro"}, &which, "macro", line);
      loop_depth_ = saved;
      if (cur().k == TK::Name && cur().s == s->names[0]) ++p_;
      expect_block_end();
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) throw SyntaxError{line, "'" + tag + "' outside of a loop"};
      s->k = tag == "break" ? SK::Break : SK::Continue;
      expect_block_end();
    } else if (tag == "generation") {
      // transformers' assistant-mask marker: renders its body unchanged.
      s->k = SK::Block;
      expect_block_end();
      s->body = parse_body({"endgeneration"}, &which, "generation", line);
      expect_block_end();
    } else {
      for (const char* u : kUnsupportedTags)
        if (tag == u) throw SyntaxError{line, "unsupported Jinja tag '" + tag + "'"};
      if (tag.rfind("end", 0) == 0 || tag == "elif" || tag == "else")
        throw SyntaxError{line, "unexpected '{% " + tag + " %}' (no open block it could close)"};
      throw SyntaxError{line, "unknown Jinja tag '" + tag + "'"};
    }
    return s;
  }

  void parse_targets(Stmt* s, const char* end_name) {
    bool paren = is_op("(");
    if (paren) ++p_;
    s->names.push_back(expect_name("a loop variable name"));
    while (is_op(",")) {
      ++p_;
      s->tuple_target = true;
      if (cur().k != TK::Name || (!paren && cur().s == end_name)) break;
      s->names.push_back(t_[p_++].s);
    }
    if (paren) {
      expect_op(")");
      s->tuple_target = true;
    }
  }

  bool tuple_end() const {
    return cur().k == TK::VarEnd || cur().k == TK::BlockEnd || is_op(")") || is_name("if") ||
           is_name("in");
  }

  // Comma-separated expressions; a tuple when there is a comma.
  ExprP parse_tuple(bool with_condexpr, bool explicit_parens) {
    int line = cur().line;
    std::vector<ExprP> items;
    bool is_tuple = false;
    for (;;) {
      if (!items.empty()) expect_op(",");
      if (!items.empty() && tuple_end()) break;
      if (items.empty() && explicit_parens && is_op(")")) break;
      items.push_back(parse_expression(with_condexpr));
      if (is_op(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple && items.size() == 1) return std::move(items[0]);
    if (items.empty() && !explicit_parens) unexpected("an expression");
    auto e = node(EK::Tuple, line);
    e->a = std::move(items);
    return e;
  }

  ExprP parse_expression(bool with_condexpr = true) {
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprP parse_condexpr() {
    ExprP e = parse_or();
    while (is_name("if")) {
      int line = cur().line;
      ++p_;
      ExprP cond = parse_or();
      ExprP other;
      if (is_name("else")) {
        ++p_;
        other = parse_condexpr();
      }
      auto c = node(EK::Cond, line);
      c->a.push_back(std::move(cond));
      c->a.push_back(std::move(e));
      c->a.push_back(std::move(other));
      e = std::move(c);
    }
    return e;
  }

  ExprP parse_or() {
    ExprP l = parse_and();
    while (is_name("or")) {
      auto e = node(EK::Or, cur().line);
      ++p_;
      e->a.push_back(std::move(l));
      e->a.push_back(parse_and());
      l = std::move(e);
    }
    return l;
  }

  ExprP parse_and() {
    ExprP l = parse_not();
    while (is_name("and")) {
      auto e = node(EK::And, cur().line);
      ++p_;
      e->a.push_back(std::move(l));
      e->a.push_back(parse_not());
      l = std::move(e);
    }
    return l;
  }

  ExprP parse_not() {
    if (is_name("not")) {
      auto e = node(EK::Not, cur().line);
      ++p_;
      e->a.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprP parse_compare() {
    int line = cur().line;
    ExprP first = parse_math1();
    std::vector<std::string> ops;
    std::vector<ExprP> rest;
    for (;;) {
      if (cur().k == TK::Op && (cur().s == "==" || cur().s == "!=" || cur().s == "<" ||
                                cur().s == ">" || cur().s == "<=" || cur().s == ">=")) {
        ops.push_back(t_[p_++].s);
      } else if (is_name("in")) {
        ++p_;
        ops.push_back("in");
      } else if (is_name("not") && look().k == TK::Name && look().s == "in") {
        p_ += 2;
        ops.push_back("not in");
      } else {
        break;
      }
      rest.push_back(parse_math1());
    }
    if (ops.empty()) return first;
    auto e = node(EK::Compare, line);
    e->a.push_back(std::move(first));
    for (auto& r : rest) e->a.push_back(std::move(r));
    e->ops = std::move(ops);
    return e;
  }

  ExprP binary(const std::string& op, ExprP l, ExprP r, int line) {
    auto e = node(EK::Binary, line);
    e->name = op;
    e->a.push_back(std::move(l));
    e->a.push_back(std::move(r));
    return e;
  }

  ExprP parse_math1() {
    ExprP l = parse_concat();
    while (is_op("+") || is_op("-")) {
      int line = cur().line;
      std::string op = t_[p_++].s;
      l = binary(op, std::move(l), parse_concat(), line);
    }
    return l;
  }

  ExprP parse_concat() {
    ExprP l = parse_math2();
    while (is_op("~")) {
      int line = cur().line;
      ++p_;
      l = binary("~", std::move(l), parse_math2(), line);
    }
    return l;
  }

  ExprP parse_math2() {
    ExprP l = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      int line = cur().line;
      std::string op = t_[p_++].s;
      l = binary(op, std::move(l), parse_pow(), line);
    }
    return l;
  }

  ExprP parse_pow() {
    ExprP l = parse_unary(true);
    while (is_op("**")) {
      int line = cur().line;
      ++p_;
      l = binary("**", std::move(l), parse_unary(true), line);
    }
    return l;
  }

  ExprP parse_unary(bool with_filter) {
    ExprP e;
    if (is_op("-") || is_op("+")) {
      e = node(is_op("-") ? EK::Neg : EK::Pos, cur().line);
      ++p_;
      e->a.push_back(parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprP parse_primary() {
    const Tok& t = cur();
    int line = t.line;
    if (t.k == TK::Name) {
      ++p_;
      auto e = node(EK::Const, line);
      if (t.s == "true" || t.s == "True")
        e->v = Value::boolean(true);
      else if (t.s == "false" || t.s == "False")
        e->v = Value::boolean(false);
      else if (t.s == "none" || t.s == "None")
        e->v = Value::none();
      else {
        e->k = EK::Name;
        e->name = t.s;
      }
      return e;
    }
    if (t.k == TK::Str) {
      std::string s;
      while (cur().k == TK::Str) s += t_[p_++].s;  // adjacent literals concatenate
      auto e = node(EK::Const, line);
      e->v = Value::str(std::move(s));
      return e;
    }
    if (t.k == TK::Int || t.k == TK::Float) {
      auto e = node(EK::Const, line);
      e->v = t.k == TK::Int ? Value::integer(t.i) : Value::number(t.f);
      ++p_;
      return e;
    }
    if (is_op("(")) {
      ++p_;
      ExprP e = parse_tuple(true, true);
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      ++p_;
      auto e = node(EK::List, line);
      while (!is_op("]")) {
        if (!e->a.empty()) expect_op(",");
        if (is_op("]")) break;
        e->a.push_back(parse_expression());
      }
      ++p_;
      return e;
    }
    if (is_op("{")) {
      ++p_;
      auto e = node(EK::Dict, line);
      while (!is_op("}")) {
        if (!e->a.empty()) expect_op(",");
        if (is_op("}")) break;
        e->a.push_back(parse_expression());
        expect_op(":");
        e->a.push_back(parse_expression());
      }
      ++p_;
      return e;
    }
    if (t.k == TK::Op && (t.s == "*" || t.s == "**"))
      error("unsupported Jinja construct: argument unpacking");
    unexpected("an expression");
  }

  ExprP parse_postfix(ExprP e) {
    for (;;) {
      int line = cur().line;
      if (is_op(".")) {
        ++p_;
        if (cur().k == TK::Name) {
          auto a = node(EK::Attr, line);
          a->name = t_[p_++].s;
          a->a.push_back(std::move(e));
          e = std::move(a);
        } else if (cur().k == TK::Int) {
          auto key = node(EK::Const, line);
          key->v = Value::integer(t_[p_++].i);
          auto a = node(EK::Item, line);
          a->a.push_back(std::move(e));
          a->a.push_back(std::move(key));
          e = std::move(a);
        } else {
          unexpected("an attribute name after '.'");
        }
      } else if (is_op("[")) {
        ++p_;
        e = parse_subscript(std::move(e), line);
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprP parse_subscript(ExprP obj, int line) {
    ExprP parts[3];
    bool slice = false;
    if (!is_op(":")) parts[0] = parse_expression();
    if (is_op(":")) {
      slice = true;
      ++p_;
      if (!is_op(":") && !is_op("]")) parts[1] = parse_expression();
      if (is_op(":")) {
        ++p_;
        if (!is_op("]")) parts[2] = parse_expression();
      }
    }
    expect_op("]");
    auto e = node(slice ? EK::Slice : EK::Item, line);
    e->a.push_back(std::move(obj));
    e->a.push_back(std::move(parts[0]));
    if (slice) {
      e->a.push_back(std::move(parts[1]));
      e->a.push_back(std::move(parts[2]));
    }
    return e;
  }

  // '(' args ')' into e->a (after any existing operands) and e->kw.
  void parse_args(Expr* e) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) error("unsupported Jinja construct: argument unpacking");
      if (cur().k == TK::Name && look().k == TK::Op && look().s == "=") {
        std::string k = t_[p_].s;
        p_ += 2;
        e->kw.emplace_back(k, parse_expression());
      } else {
        if (!e->kw.empty()) error("positional argument follows keyword argument");
        e->a.push_back(parse_expression());
      }
    }
    ++p_;
  }

  ExprP parse_call(ExprP callee) {
    auto e = node(EK::Call, cur().line);
    e->a.push_back(std::move(callee));
    parse_args(e.get());
    return e;
  }

  ExprP parse_filter_expr(ExprP e) {
    for (;;) {
      if (is_op("|")) {
        int line = cur().line;
        ++p_;
        std::string name = expect_name("a filter name after '|'");
        while (is_op(".")) {
          ++p_;
          name += "." + expect_name("a filter name");
        }
        if (!is_known_filter(name))
          throw SyntaxError{line, "unsupported Jinja filter '" + name + "'"};
        auto f = node(EK::Filter, line);
        f->name = name;
        f->a.push_back(std::move(e));
        if (is_op("(")) parse_args(f.get());
        e = std::move(f);
      } else if (is_name("is")) {
        int line = cur().line;
        ++p_;
        auto f = node(EK::Test, line);
        if (is_name("not")) {
          ++p_;
          f->negate = true;
        }
        std::string name = expect_name("a test name after 'is'");
        while (is_op(".")) {
          ++p_;
          name += "." + expect_name("a test name");
        }
        if (!is_known_test(name)) throw SyntaxError{line, "unsupported Jinja test '" + name + "'"};
        f->name = name;
        f->a.push_back(std::move(e));
        if (is_op("(")) {
          parse_args(f.get());
        } else if ((cur().k == TK::Name || cur().k == TK::Str || cur().k == TK::Int ||
                    cur().k == TK::Float || is_op("(") || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          if (is_name("is")) error("you cannot chain multiple tests with 'is'");
          f->a.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(f);
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  std::vector<Tok> t_;
  size_t p_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

std::unique_ptr<Program> parse_template(std::string_view source, const Options& opts) {
  Lexer lex(source, opts);
  Parser parser(lex.run());
  return parser.run();
}

}  // namespace rv::jinja::detail
