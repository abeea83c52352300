// Fuzzes the math answer checker: any bytes, split at the first newline into
// a gold and a predicted answer, must parse and verify without throwing,
// crashing or taking unbounded time (libFuzzer's -timeout catches a hang).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "eval/math/math_verify.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nl = in.find('\n');
  std::string_view gold = in.substr(0, nl);
  std::string_view pred = nl == std::string_view::npos ? in : in.substr(nl + 1);
  namespace m = rv::eval::math;
  try {
    m::ExtractConfig e;
    e.boxed_match_priority = size % 2 ? 0 : 50;
    e.expr = size % 3 != 0;
    m::VerifyConfig v;
    v.strict = size % 5 != 0;
    m::Answer g = m::parse(gold, e), p = m::parse(pred, e);
    (void)m::verify(g, p, v);
    (void)m::verify(p, g, v);
    (void)g.canonical();
    (void)p.text();
    bool unterminated = false;
    (void)m::strip_think(in, &unterminated);
  } catch (...) {
    abort();  // the API promises never to throw
  }
  return 0;
}
