// Internal to the Jinja interpreter: lexer, AST and parser.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/jinja.h"
#include "tokenizer/jinja_value.h"

namespace rv::jinja::detail {

// Parse-time error with the line it concerns.
struct SyntaxError {
  int line;
  std::string msg;
};

enum class EK {
  Const,
  Name,
  List,
  Tuple,
  Dict,    // a = [k0, v0, k1, v1, ...]
  Attr,    // a = [obj], name
  Item,    // a = [obj, key]
  Slice,   // a = [obj, start, stop, step] (null parts allowed)
  Call,    // a = [callee, positional...], kw
  Filter,  // a = [operand, positional...], kw, name
  Test,    // a = [operand, positional...], kw, name, negate
  Neg,
  Pos,
  Not,
  Binary,   // a = [l, r], name = operator (+ - * / // % ** ~)
  Compare,  // a = [first, rest...], ops
  And,
  Or,
  Cond,  // a = [cond, then, else-or-null]
};

struct Expr;
using ExprP = std::unique_ptr<Expr>;
struct Expr {
  EK k;
  int line;
  Value v;
  std::string name;
  std::vector<ExprP> a;
  std::vector<std::string> ops;
  std::vector<std::pair<std::string, ExprP>> kw;
  bool negate = false;
};

enum class SK { Text, Print, If, For, Set, SetAttr, SetBlock, Macro, Break, Continue, Block };

struct Stmt;
using StmtP = std::unique_ptr<Stmt>;
using Body = std::vector<StmtP>;
struct Stmt {
  SK k;
  int line;
  std::string text;  // Text
  ExprP e;           // Print expr, Set/SetAttr value, For iterable
  std::vector<std::string>
      names;  // Set/For/SetBlock targets; SetAttr [object, attribute]; Macro [name]
  bool tuple_target = false;
  ExprP cond;                                         // For: `if` filter
  std::vector<std::pair<ExprP, Body>> branches;       // If
  Body body, else_body;                               // For, SetBlock, Macro, Block; If/For else
  std::vector<std::pair<std::string, ExprP>> params;  // Macro parameters and defaults
};

struct Program {
  Body body;
};

std::unique_ptr<Program> parse_template(std::string_view source, const Options& opts);

// Filters and tests the interpreter implements (checked while parsing).
bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);

}  // namespace rv::jinja::detail
