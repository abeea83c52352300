// Equivalence of two parsed answers, following math_verify's sympy_expr_eq
// rule by rule; where math_verify asks SymPy to simplify, we evaluate:
// exactly over the rationals when both sides are rational, else numerically.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <functional>
#include <map>
#include <set>

#include "eval/math/expr.h"

namespace rv::eval::math::detail {

namespace {

using C = std::complex<long double>;

// Exact arithmetic stops beyond this many bits per numerator/denominator
// (about 6000 decimal digits); the value is then left to the numeric path,
// where it overflows to infinity and compares as "not a number".
constexpr size_t kMaxBits = 20000;
// Relative tolerance for "mathematically equal" when a side is irrational or
// has free variables: far below any float_rounding a caller would use, far
// above long double rounding error (about 1e-19) after a few operations.
constexpr long double kSymbolicTol = 1e-10L;
constexpr int kTrials = 4;

NodeP mk(Kind k, std::vector<NodeP> a = {}) {
  auto n = std::make_shared<Node>();
  n->k = k;
  n->a = std::move(a);
  return n;
}

bool small(const mpq_class& q) {
  return mpz_sizeinbase(q.get_num_mpz_t(), 2) <= kMaxBits &&
         mpz_sizeinbase(q.get_den_mpz_t(), 2) <= kMaxBits;
}

bool exact_root(const mpq_class& b, unsigned long n, mpq_class& out) {
  if (n == 0 || n > 64) return false;
  if (b < 0 && n % 2 == 0) return false;
  mpz_class num = abs(b.get_num()), den = b.get_den(), rn, rd;
  if (!mpz_root(rn.get_mpz_t(), num.get_mpz_t(), n)) return false;
  if (!mpz_root(rd.get_mpz_t(), den.get_mpz_t(), n)) return false;
  out = mpq_class(b < 0 ? -rn : rn, rd);
  out.canonicalize();
  return true;
}

// Exact rational value, when the expression is rational and small enough.
bool exact(const NodeP& n, mpq_class& out, int depth = 0) {
  if (depth > kMaxDepth) return false;
  switch (n->k) {
    case Kind::Num:
      out = n->q;
      return true;
    case Kind::Add: {
      mpq_class s = 0, t;
      for (const NodeP& c : n->a) {
        if (!exact(c, t, depth + 1)) return false;
        s += t;
        if (!small(s)) return false;
      }
      out = s;
      return true;
    }
    case Kind::Mul: {
      mpq_class s = 1, t;
      for (const NodeP& c : n->a) {
        if (!exact(c, t, depth + 1)) return false;
        s *= t;
        if (!small(s)) return false;
      }
      out = s;
      return true;
    }
    case Kind::Pow: {
      mpq_class b, e;
      if (!exact(n->a[0], b, depth + 1) || !exact(n->a[1], e, depth + 1)) return false;
      if (e.get_den() != 1) {
        if (!(e.get_den() <= 64)) return false;
        mpq_class r;
        if (!exact_root(b, e.get_den().get_ui(), r)) return false;
        b = r;
        e = e.get_num();
      }
      mpz_class ez = e.get_num();
      if (abs(ez) > 100000) return false;
      long ev = ez.get_si();
      size_t bits =
          std::max(mpz_sizeinbase(b.get_num_mpz_t(), 2), mpz_sizeinbase(b.get_den_mpz_t(), 2));
      if (bits * static_cast<size_t>(std::labs(ev)) > kMaxBits && !(b == 1 || b == -1 || b == 0))
        return false;
      if (b == 0 && ev < 0) return false;
      mpz_class pn, pd;
      mpz_pow_ui(pn.get_mpz_t(), b.get_num_mpz_t(), std::labs(ev));
      mpz_pow_ui(pd.get_mpz_t(), b.get_den_mpz_t(), std::labs(ev));
      out = ev >= 0 ? mpq_class(pn, pd) : mpq_class(pd, pn);
      out.canonicalize();
      return true;
    }
    case Kind::Func: {
      if (n->undefined) return false;
      std::vector<mpq_class> v(n->a.size());
      for (size_t i = 0; i < n->a.size(); ++i)
        if (!exact(n->a[i], v[i], depth + 1)) return false;
      if (n->name == "abs" && v.size() == 1) return out = abs(v[0]), true;
      if (n->name == "factorial" && v.size() == 1 && v[0].get_den() == 1 && v[0] >= 0 &&
          v[0] <= 1000) {
        mpz_class f;
        mpz_fac_ui(f.get_mpz_t(), v[0].get_num().get_ui());
        return out = f, true;
      }
      if (n->name == "binom" && v.size() == 2 && v[0].get_den() == 1 && v[1].get_den() == 1 &&
          v[0] >= 0 && v[0] <= 100000 && v[1] >= 0 && v[1] <= v[0]) {
        mpz_class f;
        mpz_bin_uiui(f.get_mpz_t(), v[0].get_num().get_ui(), v[1].get_num().get_ui());
        return out = f, true;
      }
      if ((n->name == "floor" || n->name == "ceiling") && v.size() == 1) {
        mpz_class z;
        if (n->name == "floor")
          mpz_fdiv_q(z.get_mpz_t(), v[0].get_num_mpz_t(), v[0].get_den_mpz_t());
        else
          mpz_cdiv_q(z.get_mpz_t(), v[0].get_num_mpz_t(), v[0].get_den_mpz_t());
        return out = z, true;
      }
      if (n->name == "base" && v.size() == 2 && v[0].get_den() == 1 && v[0] >= 0) {
        int b = static_cast<int>(v[1].get_num().get_si());
        if (b < 2 || b > 36) return false;
        std::string digits = v[0].get_num().get_str(10);
        mpz_class r;
        if (mpz_set_str(r.get_mpz_t(), digits.c_str(), b) != 0) return false;
        return out = r, true;
      }
      return false;
    }
    default:
      return false;
  }
}

long double to_ld(const mpq_class& q) {
  // mpq -> long double keeping the 64-bit mantissa (a double alone would lose 11 bits).
  if (q == 0) return 0;
  mpf_class f(q, 128);
  long e = 0;
  double hi = mpf_get_d_2exp(&e, f.get_mpf_t());  // f = hi * 2^e
  if (e > 16000) return q < 0 ? -HUGE_VALL : HUGE_VALL;
  if (e < -16000) return 0;
  mpf_class m(0, 128);
  if (e >= 0)
    mpf_div_2exp(m.get_mpf_t(), f.get_mpf_t(), static_cast<mp_bitcnt_t>(e));
  else
    mpf_mul_2exp(m.get_mpf_t(), f.get_mpf_t(), static_cast<mp_bitcnt_t>(-e));
  mpf_class r(m - hi, 128);
  long double v = static_cast<long double>(hi) + static_cast<long double>(r.get_d());
  return std::ldexp(v, static_cast<int>(e));
}

using Env = std::map<std::string, C>;

bool finite(const C& c) {
  return std::isfinite(c.real()) && std::isfinite(c.imag());
}

C user_function(const std::string& name, const std::vector<C>& args) {
  // A fixed, non-linear stand-in for an undefined f(x): f(x) = f(x), f(x) != f(y).
  long double h = 0;
  for (char c : name) h = h * 1.37L + static_cast<unsigned char>(c) * 0.113L;
  C v = h;
  for (size_t i = 0; i < args.size(); ++i) v += args[i] * (0.71L + 0.19L * i);
  return std::exp(std::sin(v)) + v * v * 0.1L;
}

bool numeric(const NodeP& n, const Env& env, C& out, int depth = 0) {
  if (depth > kMaxDepth) return false;
  switch (n->k) {
    case Kind::Num:
      out = to_ld(n->q);
      return true;
    case Kind::Sym: {
      auto it = env.find(n->name);
      if (it == env.end()) return false;
      out = it->second;
      return true;
    }
    case Kind::Const:
      if (n->name == "pi")
        out = 3.141592653589793238462643383279502884L;
      else if (n->name == "E")
        out = 2.718281828459045235360287471352662498L;
      else if (n->name == "I")
        out = C(0, 1);
      else
        return false;
      return true;
    case Kind::Add: {
      C s = 0, t;
      for (const NodeP& c : n->a) {
        if (!numeric(c, env, t, depth + 1)) return false;
        s += t;
      }
      out = s;
      return finite(out);
    }
    case Kind::Mul: {
      C s = 1, t;
      for (const NodeP& c : n->a) {
        if (!numeric(c, env, t, depth + 1)) return false;
        s *= t;
      }
      out = s;
      return finite(out);
    }
    case Kind::Pow: {
      C b, e;
      mpq_class eq;
      if (!numeric(n->a[0], env, b, depth + 1)) return false;
      if (exact(n->a[1], eq) && eq.get_den() == 1 && abs(eq.get_num()) < 100000) {
        long k = eq.get_num().get_si();
        C r = 1, x = b;
        unsigned long m = std::labs(k);
        while (m) {
          if (m & 1) r *= x;
          x *= x;
          m >>= 1;
        }
        out = k < 0 ? C(1) / r : r;
        return finite(out);
      }
      if (!numeric(n->a[1], env, e, depth + 1)) return false;
      // Real odd roots of negative reals stay real (SymPy's real_root reading of
      // "\sqrt[3]{-8}" is what answers mean).
      if (b.imag() == 0 && e.imag() == 0 && b.real() < 0 && exact(n->a[1], eq) &&
          eq.get_den() % 2 == 1) {
        long double r = std::pow(-b.real(), e.real());
        out = (eq.get_num() % 2 == 0) ? r : -r;
        return finite(out);
      }
      out = std::pow(b, e);
      return finite(out);
    }
    case Kind::Func: {
      std::vector<C> v(n->a.size());
      for (size_t i = 0; i < n->a.size(); ++i)
        if (!numeric(n->a[i], env, v[i], depth + 1)) return false;
      if (n->undefined) {
        out = user_function(n->name, v);
        return true;
      }
      mpq_class q;
      if (exact(n, q)) {
        out = to_ld(q);
        return finite(out);
      }
      if (v.size() != 1) {
        if (n->name == "binom" && v.size() == 2) {
          out = std::exp(std::lgamma(v[0].real() + 1) - std::lgamma(v[1].real() + 1) -
                         std::lgamma(v[0].real() - v[1].real() + 1));
          return finite(out);
        }
        return false;
      }
      const C x = v[0];
      const std::string& f = n->name;
      if (f == "sin")
        out = std::sin(x);
      else if (f == "cos")
        out = std::cos(x);
      else if (f == "tan")
        out = std::tan(x);
      else if (f == "cot")
        out = C(1) / std::tan(x);
      else if (f == "sec")
        out = C(1) / std::cos(x);
      else if (f == "csc")
        out = C(1) / std::sin(x);
      else if (f == "asin")
        out = std::asin(x);
      else if (f == "acos")
        out = std::acos(x);
      else if (f == "atan")
        out = std::atan(x);
      else if (f == "acot")
        out = std::atan(C(1) / x);
      else if (f == "asec")
        out = std::acos(C(1) / x);
      else if (f == "acsc")
        out = std::asin(C(1) / x);
      else if (f == "sinh")
        out = std::sinh(x);
      else if (f == "cosh")
        out = std::cosh(x);
      else if (f == "tanh")
        out = std::tanh(x);
      else if (f == "log")
        out = std::log(x);
      else if (f == "log10")
        out = std::log10(x);
      else if (f == "exp")
        out = std::exp(x);
      else if (f == "abs")
        out = std::abs(x);
      else if (f == "factorial")
        out = std::tgamma(x.real() + 1);
      else if (f == "floor")
        out = std::floor(x.real());
      else if (f == "ceiling")
        out = std::ceil(x.real());
      else
        return false;
      return finite(out);
    }
    default:
      return false;
  }
}

void free_symbols(const NodeP& n, std::set<std::string>& out, int depth = 0) {
  if (depth > kMaxDepth) return;
  if (n->k == Kind::Sym) out.insert(n->name);
  for (const NodeP& c : n->a) free_symbols(c, out, depth + 1);
}

bool has_float(const NodeP& n, int depth = 0) {
  if (depth > kMaxDepth) return false;
  if (n->k == Kind::Num) return n->is_float;
  for (const NodeP& c : n->a)
    if (has_float(c, depth + 1)) return true;
  return false;
}

bool has_kind(const NodeP& n, Kind k, int depth = 0) {
  if (depth > kMaxDepth) return false;
  if (n->k == k) return true;
  for (const NodeP& c : n->a)
    if (has_kind(c, k, depth + 1)) return true;
  return false;
}

// Deterministic evaluation points: the same for every call, so verdicts are reproducible.
std::vector<Env> sample_points(const std::set<std::string>& syms) {
  std::vector<Env> pts;
  uint64_t s = 0x9e3779b97f4a7c15ULL;
  for (int t = 0; t < kTrials; ++t) {
    Env e;
    for (const std::string& name : syms) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      long double u = static_cast<long double>(s >> 11) / static_cast<long double>(1ULL << 53);
      e[name] = 0.5L + 2.0L * u;  // (0.5, 2.5): away from 0, 1 and the usual poles
    }
    pts.push_back(std::move(e));
  }
  return pts;
}

bool close(const C& a, const C& b, long double tol) {
  long double d = std::abs(a - b);
  long double m = std::max(std::abs(a), std::abs(b));
  return d <= tol * m || d < 1e-15L;
}

// Numeric equality at sample points (or once, with no free symbols).
// ratio: compare a/b to a constant instead (for equations up to scaling); positive: the
// constant must be > 0.
bool sample_eq(const NodeP& a, const NodeP& b, long double tol) {
  std::set<std::string> syms;
  free_symbols(a, syms);
  free_symbols(b, syms);
  int valid = 0;
  for (const Env& e : sample_points(syms)) {
    C x, y;
    if (!numeric(a, e, x) || !numeric(b, e, y)) continue;
    if (!close(x, y, tol)) return false;
    ++valid;
    if (syms.empty()) break;
  }
  return valid > 0;
}

bool proportional(const NodeP& a, const NodeP& b, bool positive) {
  std::set<std::string> syms;
  free_symbols(a, syms);
  free_symbols(b, syms);
  bool have = false;
  C k;
  for (const Env& e : sample_points(syms)) {
    C x, y;
    if (!numeric(a, e, x) || !numeric(b, e, y)) continue;
    if (std::abs(y) < 1e-300L || std::abs(x) < 1e-300L) {
      if (std::abs(x) < 1e-15L && std::abs(y) < 1e-15L) continue;
      return false;
    }
    C r = x / y;
    if (!have) {
      k = r;
      have = true;
    } else if (!close(k, r, kSymbolicTol)) {
      return false;
    }
  }
  if (!have) return false;
  if (std::abs(k.imag()) > 1e-12L * std::abs(k)) return false;
  return !positive || k.real() > 0;
}

bool is_setlike(const NodeP& n) {
  return n->k == Kind::Set || n->k == Kind::Tuple || n->k == Kind::Interval ||
         n->k == Kind::Union || n->k == Kind::Empty;
}

bool only_symbols(const NodeP& n, int depth = 0) {
  if (depth > kMaxDepth) return false;
  switch (n->k) {
    case Kind::Sym:
      return true;
    case Kind::Add:
    case Kind::Mul:
    case Kind::Tuple:
    case Kind::Interval:
    case Kind::Set:
      for (const NodeP& c : n->a)
        if (!only_symbols(c, depth + 1)) return false;
      return true;
    case Kind::Pow:
      // division by a symbol only ("A:B", "NO/BO"); x^2 is not an assignment target
      return only_symbols(n->a[0], depth + 1) && n->a[1]->k == Kind::Num && n->a[1]->q == -1;
    case Kind::Func:
      if (!n->undefined) return false;
      for (const NodeP& c : n->a)
        if (!only_symbols(c, depth + 1)) return false;
      return true;
    default:
      return false;
  }
}

bool is_relation(const NodeP& n) {
  return n->k == Kind::Rel;
}
bool is_equation(const NodeP& n) {
  return n->k == Kind::Rel &&
         std::all_of(n->ops.begin(), n->ops.end(), [](int o) { return o == kEq; });
}
bool is_assignment(const NodeP& n) {
  return is_equation(n) && only_symbols(n->a[0]);
}

NodeP rel1(const NodeP& l, int op, const NodeP& r) {
  auto n = std::make_shared<Node>();
  n->k = Kind::Rel;
  n->a = {l, r};
  n->ops = {op};
  return n;
}

NodeP interval(const NodeP& lo, const NodeP& hi, bool lopen, bool ropen) {
  auto n = std::make_shared<Node>();
  n->k = Kind::Interval;
  n->a = {lo, hi};
  n->lopen = lopen;
  n->ropen = ropen;
  return n;
}

NodeP oo(bool negative) {
  auto n = std::make_shared<Node>();
  n->k = Kind::Const;
  n->name = "oo";
  if (!negative) return n;
  auto m = std::make_shared<Node>();
  m->k = Kind::Mul;
  m->a = {make_num(-1), n};
  return m;
}

// "x < 3", "-2 <= x <= 7", "x != 1" as the set of x they describe (SymPy's as_set), else null.
NodeP relation_as_set(const NodeP& r) {
  auto no_syms = [](const NodeP& n) {
    std::set<std::string> s;
    free_symbols(n, s);
    return s.empty();
  };
  if (r->ops.size() == 1) {
    NodeP l = r->a[0], h = r->a[1];
    int op = r->ops[0];
    if (h->k == Kind::Sym && no_syms(l)) {  // 5 > x  ->  x < 5
      std::swap(l, h);
      static const int flip[] = {kEq, kGt, kGe, kLt, kLe, kNe};
      op = flip[op];
    }
    if (l->k != Kind::Sym || !no_syms(h)) return nullptr;
    switch (op) {
      case kLt:
        return interval(oo(true), h, true, true);
      case kLe:
        return interval(oo(true), h, true, false);
      case kGt:
        return interval(h, oo(false), true, true);
      case kGe:
        return interval(h, oo(false), false, true);
      case kEq:
        return mk(Kind::Set, {h});
      case kNe:
        return mk(Kind::Union,
                  {interval(oo(true), h, true, true), interval(h, oo(false), true, true)});
    }
    return nullptr;
  }
  auto is_abs_sym = [](const NodeP& n) {
    return n->k == Kind::Func && n->name == "abs" && n->a.size() == 1 && n->a[0]->k == Kind::Sym;
  };
  auto negated = [](const NodeP& n) { return mk(Kind::Mul, {make_num(-1), n}); };
  // a <= |x| <= b (a >= 0): [-b, -a] U [a, b]
  if (r->ops.size() == 2 && is_abs_sym(r->a[1]) && no_syms(r->a[0]) && no_syms(r->a[2])) {
    int o1 = r->ops[0], o2 = r->ops[1];
    mpq_class lo;
    if ((o1 == kLt || o1 == kLe) && (o2 == kLt || o2 == kLe) && exact(r->a[0], lo) && lo > 0) {
      bool lopen = o1 == kLt, hopen = o2 == kLt;
      return mk(Kind::Union, {interval(negated(r->a[2]), negated(r->a[0]), hopen, lopen),
                              interval(r->a[0], r->a[2], lopen, hopen)});
    }
  }
  if (r->ops.size() == 2 && r->a[1]->k == Kind::Sym && no_syms(r->a[0]) && no_syms(r->a[2])) {
    int o1 = r->ops[0], o2 = r->ops[1];
    bool up = (o1 == kLt || o1 == kLe) && (o2 == kLt || o2 == kLe);
    bool down = (o1 == kGt || o1 == kGe) && (o2 == kGt || o2 == kGe);
    if (up) return interval(r->a[0], r->a[2], o1 == kLt, o2 == kLt);
    if (down) return interval(r->a[2], r->a[0], o2 == kGt, o1 == kGt);
  }
  return nullptr;
}

NodeP rename(const NodeP& n, const std::map<std::string, std::string>& m, int depth = 0) {
  if (depth > kMaxDepth) return n;
  if (n->k == Kind::Sym) {
    auto it = m.find(n->name);
    if (it == m.end()) return n;
    auto c = std::make_shared<Node>(*n);
    c->name = it->second;
    return c;
  }
  if (n->a.empty()) return n;
  auto c = std::make_shared<Node>(*n);
  for (NodeP& x : c->a) x = rename(x, m, depth + 1);
  return c;
}

// Matrix sums and products written out ("A + B", "I I") become the matrix they denote.
NodeP fold_matrices(const NodeP& n, int depth = 0) {
  if (depth > kMaxDepth || !has_kind(n, Kind::Matrix)) return n;
  auto c = std::make_shared<Node>(*n);
  for (NodeP& x : c->a) x = fold_matrices(x, depth + 1);
  if (c->k == Kind::Add &&
      std::all_of(c->a.begin(), c->a.end(), [](const NodeP& x) { return x->k == Kind::Matrix; })) {
    auto m = std::make_shared<Node>(*c->a[0]);
    for (size_t i = 1; i < c->a.size(); ++i) {
      const NodeP& o = c->a[i];
      if (o->rows != m->rows || o->cols != m->cols) return c;
      for (size_t j = 0; j < m->a.size(); ++j) m->a[j] = mk(Kind::Add, {m->a[j], o->a[j]});
    }
    return m;
  }
  if (c->k == Kind::Mul) {
    NodeP acc;
    std::vector<NodeP> scalars;
    for (const NodeP& x : c->a) {
      if (x->k != Kind::Matrix) {
        scalars.push_back(x);
        continue;
      }
      if (!acc) {
        acc = x;
        continue;
      }
      if (acc->cols != x->rows) return c;
      auto m = std::make_shared<Node>();
      m->k = Kind::Matrix;
      m->rows = acc->rows;
      m->cols = x->cols;
      for (int i = 0; i < m->rows; ++i)
        for (int j = 0; j < m->cols; ++j) {
          std::vector<NodeP> terms;
          for (int k = 0; k < acc->cols; ++k)
            terms.push_back(mk(Kind::Mul, {acc->a[i * acc->cols + k], x->a[k * x->cols + j]}));
          m->a.push_back(mk(Kind::Add, std::move(terms)));
        }
      acc = m;
    }
    if (!acc) return c;
    if (scalars.empty()) return acc;
    auto m = std::make_shared<Node>(*acc);
    for (NodeP& e : m->a) {
      std::vector<NodeP> f = scalars;
      f.push_back(e);
      e = mk(Kind::Mul, std::move(f));
    }
    return m;
  }
  return c;
}

struct Cmp {
  const CompareOpts& o;
  int budget = 20000;  // comparisons per top-level call: bounds set matching on big sets
  int depth = 0;

  bool eq(NodeP g, NodeP p);
  bool relational(const NodeP& g, const NodeP& p);
  bool sets(const NodeP& g, const NodeP& p);
  bool numeric_eq(const NodeP& g, const NodeP& p);
  bool seq_eq(const std::vector<NodeP>& g, const std::vector<NodeP>& p, bool ordered);
};

bool symbols_eq(const NodeP& g, const NodeP& p) {
  auto is_e = [](const NodeP& n) { return n->k == Kind::Const && n->name == "E"; };
  auto lower = [](std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  if ((g->k == Kind::Sym && lower(g->name) == "e" && is_e(p)) ||
      (p->k == Kind::Sym && lower(p->name) == "e" && is_e(g)))
    return true;
  auto concat = [&](const NodeP& m, std::string& out) {
    if (m->k != Kind::Mul) return false;
    for (const NodeP& x : m->a) {
      if (is_e(x))
        out += "e";
      else if (x->k == Kind::Sym)
        out += x->name;
      else
        return false;
    }
    return true;
  };
  std::string s;
  if (g->k == Kind::Sym && concat(p, s)) return lower(g->name) == lower(s);
  if (p->k == Kind::Sym && concat(g, s)) return lower(p->name) == lower(s);
  if (g->k == Kind::Sym && p->k == Kind::Sym) {
    std::string a = g->name.size() > 1 ? lower(g->name) : g->name;
    std::string b = p->name.size() > 1 ? lower(p->name) : p->name;
    return a == b;
  }
  return false;
}

bool Cmp::seq_eq(const std::vector<NodeP>& g, const std::vector<NodeP>& p, bool ordered) {
  if (g.size() != p.size()) return false;
  if (ordered) {
    for (size_t i = 0; i < g.size(); ++i)
      if (!eq(g[i], p[i])) return false;
    return true;
  }
  // Order-insensitive: a matching found greedily (math_verify sorts both sides and
  // zips; a matching accepts the same pairs without depending on SymPy's sort order).
  std::vector<bool> used(p.size(), false);
  for (const NodeP& x : g) {
    bool found = false;
    for (size_t j = 0; j < p.size() && !found; ++j) {
      if (used[j]) continue;
      if (eq(x, p[j])) used[j] = found = true;
    }
    if (!found) return false;
  }
  return true;
}

bool Cmp::sets(const NodeP& g0, const NodeP& p0) {
  NodeP g = is_setlike(g0) ? g0 : mk(Kind::Set, {g0});
  NodeP p = is_setlike(p0) ? p0 : mk(Kind::Set, {p0});
  if (g->k == Kind::Interval && p->k == Kind::Interval)
    return g->lopen == p->lopen && g->ropen == p->ropen && eq(g->a[0], p->a[0]) &&
           eq(g->a[1], p->a[1]);
  if (to_string(g) == to_string(p)) return true;
  if (g->k == Kind::Empty || p->k == Kind::Empty) return g->k == p->k;
  if (g->k == Kind::Union && p->k == Kind::Union) return seq_eq(g->a, p->a, false);
  bool gs = g->k == Kind::Set || g->k == Kind::Tuple;
  bool ps = p->k == Kind::Set || p->k == Kind::Tuple;
  if (gs && ps) {
    // A gold set compares as a set; a gold tuple in order, reading a predicted set in its
    // written order (math_verify's sympy_deep_compare_set_and_tuple).
    return seq_eq(g->a, p->a,
                  g->k == Kind::Tuple && p->k != Kind::Set ? true : g->k == Kind::Tuple);
  }
  // "(1,2)" parses as an open interval; it may mean the pair.
  if (g->k == Kind::Interval && ps && g->lopen && g->ropen && p->a.size() == 2)
    return seq_eq(g->a, p->a, p->k != Kind::Set);
  if (p->k == Kind::Interval && gs && p->lopen && p->ropen && g->a.size() == 2)
    return seq_eq(g->a, p->a, g->k != Kind::Set);
  return false;
}

bool Cmp::relational(const NodeP& g, const NodeP& p) {
  if (g->ops.size() != p->ops.size()) return false;
  if (g->ops.size() > 1) {
    for (size_t i = 0; i < g->ops.size(); ++i)
      if (!relational(rel1(g->a[i], g->ops[i], g->a[i + 1]), rel1(p->a[i], p->ops[i], p->a[i + 1])))
        return false;
    return true;
  }
  int og = g->ops[0], op = p->ops[0];
  const NodeP &gl = g->a[0], &gr = g->a[1], &pl = p->a[0], &pr = p->a[1];
  bool scalar = !is_setlike(gl) && !is_setlike(gr) && !is_setlike(pl) && !is_setlike(pr) &&
                gl->k != Kind::Matrix && gr->k != Kind::Matrix && pl->k != Kind::Matrix &&
                pr->k != Kind::Matrix && !is_relation(gl) && !is_relation(pl);
  static const int flip[] = {kEq, kGt, kGe, kLt, kLe, kNe};
  if (!scalar) {
    if (og == op && eq(gl, pl) && eq(gr, pr)) return true;
    if (flip[og] == op && eq(gl, pr) && eq(gr, pl)) return true;
    return false;
  }
  auto diff = [](const NodeP& l, const NodeP& r) {
    return mk(Kind::Add, {l, mk(Kind::Mul, {make_num(-1), r})});
  };
  NodeP dg = diff(gl, gr);
  bool sym_op = og == kEq || og == kNe;
  if (og == op) {
    if (eq(dg, diff(pl, pr))) return true;
    // Equations are equal up to a non-zero factor (x/4 + y/3 = 1 and x/16 + y/12 = 1/4);
    // inequalities up to a positive one.
    if (proportional(dg, diff(pl, pr), !sym_op)) return true;
  }
  if (flip[og] == op) {
    if (eq(dg, diff(pr, pl))) return true;
    if (proportional(dg, diff(pr, pl), !sym_op)) return true;
  }
  return false;
}

bool Cmp::numeric_eq(const NodeP& g, const NodeP& p) {
  if (g->k == Kind::Matrix || p->k == Kind::Matrix) {
    if (g->k != p->k || g->rows != p->rows || g->cols != p->cols) return false;
    return seq_eq(g->a, p->a, true);
  }
  if (is_relation(g) || is_relation(p) || is_setlike(g) || is_setlike(p)) return false;
  if (g->k == Kind::Pm || p->k == Kind::Pm) return false;
  mpq_class a, b;
  bool ea = exact(g, a), eb = exact(p, b);
  if (has_float(g) || has_float(p)) {
    // math_verify rounds both sides to float_rounding decimal places when a float is involved.
    int prec = std::clamp(o.precision, 0, 30);
    if (ea && eb) {
      mpz_class scale;
      mpz_ui_pow_ui(scale.get_mpz_t(), 10, prec);
      auto rnd = [&](const mpq_class& x) {
        mpq_class y = x * scale + mpq_class(1, 2);
        mpz_class z;
        mpz_fdiv_q(z.get_mpz_t(), y.get_num_mpz_t(), y.get_den_mpz_t());
        return z;
      };
      return rnd(a) == rnd(b);
    }
    std::set<std::string> syms;
    free_symbols(g, syms);
    free_symbols(p, syms);
    if (syms.empty()) {
      C x, y;
      if (!numeric(g, {}, x) || !numeric(p, {}, y)) return false;
      if (std::abs(x.imag()) > 1e-12L || std::abs(y.imag()) > 1e-12L)
        return close(x, y, std::pow(10.0L, -prec));
      long double s = std::pow(10.0L, prec);
      long double rx = std::floor(x.real() * s + 0.5L), ry = std::floor(y.real() * s + 0.5L);
      if (std::fabs(x.real() * s) < 1e17L) return rx == ry;
      return close(x, y, 1e-15L);
    }
    return sample_eq(g, p, std::pow(10.0L, -prec));
  }
  if (ea && eb) return a == b;
  return sample_eq(g, p, kSymbolicTol);
}

bool Cmp::eq(NodeP g, NodeP p) {
  if (--budget < 0 || depth > 64) return false;
  struct D {
    int& d;
    ~D() { --d; }
  } dguard{++depth};
  g = fold_matrices(g);
  p = fold_matrices(p);
  if (!o.strict) {
    // f(x) equals f(y): pred's variables are renamed to gold's when there are as many.
    std::set<std::string> gs, ps;
    free_symbols(g, gs);
    free_symbols(p, ps);
    if (gs.size() == ps.size() && gs != ps) {
      std::map<std::string, std::string> m;
      auto gi = gs.begin();
      for (const std::string& s : ps) m[s] = *gi++;
      p = rename(p, m);
    }
  }
  bool ga = is_assignment(g), pa = is_assignment(p);
  if (ga && !pa) g = g->a.back();
  if (pa && !ga) p = p->a.back();
  if (ga && pa) {
    g = rel1(g->a.front(), kEq, g->a.back());
    p = rel1(p->a.front(), kEq, p->a.back());
  } else if (is_equation(p) && !is_equation(g)) {
    p = p->a.back();
  }
  if (is_relation(g) && is_setlike(p)) {
    if (NodeP s = relation_as_set(g)) g = s;
  }
  if (o.allow_set_relation_comp && is_relation(p) && is_setlike(g)) {
    if (NodeP s = relation_as_set(p)) p = s;
  }
  if (to_string(g) == to_string(p)) return true;
  if (is_relation(g) && is_relation(p)) return relational(g, p);
  if (is_setlike(g) || is_setlike(p)) return sets(g, p);
  if (g->k == Kind::Sym || p->k == Kind::Sym) return symbols_eq(g, p);
  return numeric_eq(g, p);
}

void print(const NodeP& n, std::string& s, int depth);

void print_list(const std::vector<NodeP>& v, std::string& s, int depth) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ", ";
    print(v[i], s, depth + 1);
  }
}

std::string num_str(const Node& n) {
  if (!n.is_float) return n.q.get_str();
  // decimals print as decimals (exact value, trailing zeros trimmed)
  mpz_class den = n.q.get_den();
  int k = 0;
  mpz_class t = den;
  while (t % 10 == 0 || t % 2 == 0 || t % 5 == 0) {
    if (t % 10 == 0)
      t /= 10;
    else if (t % 2 == 0)
      t /= 2;
    else
      t /= 5;
    ++k;
    if (k > 4000) break;
  }
  if (t != 1) return n.q.get_str();
  mpz_class scale;
  mpz_ui_pow_ui(scale.get_mpz_t(), 10, k);
  mpz_class v = n.q.get_num() * (scale / den);
  std::string digits = mpz_class(abs(v)).get_str();
  while (static_cast<int>(digits.size()) <= k) digits = "0" + digits;
  std::string r = digits.substr(0, digits.size() - k) + "." + digits.substr(digits.size() - k);
  while (!r.empty() && r.back() == '0') r.pop_back();
  if (!r.empty() && r.back() == '.') r += "0";
  return (v < 0 ? "-" : "") + r;
}

void print(const NodeP& n, std::string& s, int depth) {
  if (depth > kMaxDepth) {
    s += "...";
    return;
  }
  static const char* relname[] = {"=", "<", "<=", ">", ">=", "!="};
  switch (n->k) {
    case Kind::Num:
      s += num_str(*n);
      break;
    case Kind::Sym:
      s += n->name;
      break;
    case Kind::Const:
      s += n->name;
      break;
    case Kind::Add:
      for (size_t i = 0; i < n->a.size(); ++i) {
        if (i) s += " + ";
        print(n->a[i], s, depth + 1);
      }
      break;
    case Kind::Mul:
      for (size_t i = 0; i < n->a.size(); ++i) {
        if (i) s += "*";
        bool par = n->a[i]->k == Kind::Add || n->a[i]->k == Kind::Pm;
        if (par) s += "(";
        print(n->a[i], s, depth + 1);
        if (par) s += ")";
      }
      break;
    case Kind::Pow: {
      bool par = n->a[0]->k != Kind::Num && n->a[0]->k != Kind::Sym && n->a[0]->k != Kind::Const &&
                 n->a[0]->k != Kind::Func;
      if (n->a[0]->k == Kind::Num && n->a[0]->q < 0) par = true;
      if (par) s += "(";
      print(n->a[0], s, depth + 1);
      if (par) s += ")";
      s += "**";
      bool pe = n->a[1]->k != Kind::Num && n->a[1]->k != Kind::Sym && n->a[1]->k != Kind::Const;
      if (n->a[1]->k == Kind::Num && (n->a[1]->q < 0 || n->a[1]->q.get_den() != 1)) pe = true;
      if (pe) s += "(";
      print(n->a[1], s, depth + 1);
      if (pe) s += ")";
      break;
    }
    case Kind::Func:
      s += n->name + "(";
      print_list(n->a, s, depth);
      s += ")";
      break;
    case Kind::Rel:
      for (size_t i = 0; i < n->a.size(); ++i) {
        if (i) s += std::string(" ") + relname[n->ops[i - 1]] + " ";
        print(n->a[i], s, depth + 1);
      }
      break;
    case Kind::Set:
      s += "{";
      print_list(n->a, s, depth);
      s += "}";
      break;
    case Kind::Tuple:
      s += "(";
      print_list(n->a, s, depth);
      s += ")";
      break;
    case Kind::Interval:
      s += n->lopen ? "(" : "[";
      print_list(n->a, s, depth);
      s += n->ropen ? ")" : "]";
      break;
    case Kind::Union:
      for (size_t i = 0; i < n->a.size(); ++i) {
        if (i) s += " U ";
        print(n->a[i], s, depth + 1);
      }
      break;
    case Kind::Matrix:
      s += "Matrix([";
      for (int r = 0; r < n->rows; ++r) {
        if (r) s += ", ";
        s += "[";
        for (int c = 0; c < n->cols; ++c) {
          if (c) s += ", ";
          print(n->a[r * n->cols + c], s, depth + 1);
        }
        s += "]";
      }
      s += "])";
      break;
    case Kind::Pm:
      if (n->a.size() == 1) {
        s += "±";
        print(n->a[0], s, depth + 1);
      } else {
        print(n->a[0], s, depth + 1);
        s += " ± ";
        print(n->a[1], s, depth + 1);
      }
      break;
    case Kind::Empty:
      s += "EmptySet";
      break;
  }
}

}  // namespace

std::string to_string(const NodeP& n) {
  std::string s;
  print(n, s, 0);
  return s;
}

bool expr_eq(const NodeP& gold, const NodeP& pred, const CompareOpts& o) {
  Cmp c{o};
  try {
    return c.eq(gold, pred);
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace rv::eval::math::detail
