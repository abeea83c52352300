// Internal: the math checker's expression tree, LaTeX parser and comparison.
//
// The tree is deliberately close to what latex2sympy/SymPy build for
// math_verify (subtraction is a + (-1)*b, division a * b^-1, "(a,b)" an open
// interval, "a,b" a finite set), because math_verify's comparison rules are
// written against those shapes and we mirror the rules.
#pragma once

#include <gmpxx.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace rv::eval::math::detail {

enum class Kind {
  Num,       // exact rational q; is_float when written with a decimal point / exponent
  Sym,       // free variable, name
  Const,     // name: "pi", "E", "I", "oo" (+infinity)
  Add,       // sum of a
  Mul,       // product of a
  Pow,       // a[0] ^ a[1]
  Func,      // name(a...): known functions, or user functions (undefined = true)
  Rel,       // chain a[0] ops[0] a[1] ops[1] a[2] ...
  Set,       // finite set (deduplicated)
  Tuple,     // ordered tuple
  Interval,  // a[0], a[1] with lopen / ropen
  Union,     // union of sets/intervals
  Matrix,    // rows x cols, row-major a
  Pm,        // a[0] ± a[1], or ± a[0] when a.size() == 1
  Empty,     // the empty set
};

enum RelOp { kEq, kLt, kLe, kGt, kGe, kNe };

struct Node;
using NodeP = std::shared_ptr<const Node>;

struct Node {
  Kind k = Kind::Num;
  mpq_class q;
  bool is_float = false;
  bool undefined = false;  // Func: a user function such as f(x)
  std::string name;
  std::vector<NodeP> a;
  std::vector<int> ops;
  bool lopen = false, ropen = false;
  int rows = 0, cols = 0;
};

struct ParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Limits that keep parsing and evaluation bounded on hostile input.
constexpr size_t kMaxParseChars = 4096;
constexpr int kMaxDepth = 200;

// Parses normalized LaTeX (or a plain expression such as "2**(1/2)" or
// "np.arcsin(10/13)") into a tree. Throws ParseError on anything it does not
// understand; never recurses deeper than kMaxDepth.
NodeP parse_math(std::string_view text);

// Printable canonical form (also used for structural equality).
std::string to_string(const NodeP& n);

NodeP make_num(const mpq_class& q, bool is_float = false);

// math_verify's sympy_expr_eq: gold first.
struct CompareOpts {
  int precision = 6;
  bool strict = true;
  bool allow_set_relation_comp = false;
};
bool expr_eq(const NodeP& gold, const NodeP& pred, const CompareOpts& o);

}  // namespace rv::eval::math::detail
