#include "common/text.h"

#include <gtest/gtest.h>
#include <unicode/uchar.h>

#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/error.h"

namespace rv::text {
namespace {

std::string u8(uint32_t cp) {
  std::string s;
  append_utf8(s, cp);
  return s;
}

// --- the codec and its invalid-byte policy -----------------------------------

TEST(Text, DecodeWellFormed) {
  size_t len = 0;
  EXPECT_EQ(decode_utf8("A", 0, len), 'A');
  EXPECT_EQ(len, 1u);
  EXPECT_EQ(decode_utf8("\xC3\xA9", 0, len), 0xE9);
  EXPECT_EQ(len, 2u);
  EXPECT_EQ(decode_utf8("\xE2\x82\xAC", 0, len), 0x20AC);
  EXPECT_EQ(len, 3u);
  EXPECT_EQ(decode_utf8("\xF4\x8F\xBF\xBF", 0, len), 0x10FFFF);
  EXPECT_EQ(len, 4u);
}

TEST(Text, EncodeDecodeRoundTripsEveryScalarValue) {
  for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    std::string s = u8(cp);
    size_t len = 0;
    ASSERT_EQ(decode_utf8(s, 0, len), static_cast<int32_t>(cp));
    ASSERT_EQ(len, s.size());
    ASSERT_EQ(length(s), 1u);
  }
}

TEST(Text, InvalidBytesAreMaximalSubparts) {
  struct Case {
    std::string bytes;
    std::vector<size_t> unit_sizes;
  };
  const Case cases[] = {
      {"\x80", {1}},                       // lone continuation byte
      {"\xC0\xAF", {1, 1}},                // overlong lead: never a valid prefix
      {"\xE0\x80\x80", {1, 1, 1}},         // overlong 3-byte form
      {"\xED\xA0\x80", {1, 1, 1}},         // encoded surrogate U+D800
      {"\xF4\x90\x80\x80", {1, 1, 1, 1}},  // above U+10FFFF
      {"\xF5\x80", {1, 1}},                // lead byte that never occurs
      {"\xE2\x82", {2}},                   // truncated: one subpart
      {"\xE2\x82"
       "A",
       {2, 1}},               // truncated before ASCII
      {"\xF0\x9F\x98", {3}},  // truncated 4-byte form
      {"\xF0\x9F\x98"
       "\xC3\xA9",
       {3, 2}},
      {"\xFF\xFE", {1, 1}},
  };
  for (const auto& c : cases) {
    auto u = chars(c.bytes);
    std::vector<size_t> sizes;
    for (auto x : u) sizes.push_back(x.size());
    EXPECT_EQ(sizes, c.unit_sizes) << "input of " << c.bytes.size() << " bytes";
    EXPECT_EQ(length(c.bytes), c.unit_sizes.size());
  }
  // Case mapping copies ill-formed units through and maps what is around them.
  EXPECT_EQ(lower("A\xE2\x82"
                  "B\xFF\xC3\x89"),
            "a\xE2\x82"
            "b\xFF\xC3\xA9");
  EXPECT_EQ(upper("\xED\xA0\x80x"), "\xED\xA0\x80X");
  // An ill-formed unit is not cased: the next letter starts a word in title().
  EXPECT_EQ(title("ab\x80"
                  "cd"),
            "Ab\x80"
            "Cd");
}

TEST(Text, IncompleteTail) {
  EXPECT_EQ(incomplete_utf8_tail(""), 0u);
  EXPECT_EQ(incomplete_utf8_tail("abc"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("a\xE2\x82"), 2u);
  EXPECT_EQ(incomplete_utf8_tail("a\xE2\x82\xAC"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("\xF0\x9F\x98"), 3u);
  EXPECT_EQ(incomplete_utf8_tail("\xF0"), 1u);
  EXPECT_EQ(incomplete_utf8_tail("\xED\xA0"), 0u);
}

// --- str methods: edge cases ---------------------------------------------------

TEST(Text, CaseMappingSpecialCases) {
  EXPECT_EQ(upper("stra\xC3\x9F"
                  "e"),
            "STRASSE");                       // ß -> SS
  EXPECT_EQ(lower("\xC4\xB0"), "i\xCC\x87");  // İ -> i + U+0307
  EXPECT_EQ(lower("\xC5\x81\xC3\x93"
                  "D\xC5\xBB"),
            "\xC5\x82\xC3\xB3"
            "d\xC5\xBC");  // ŁÓDŻ
  EXPECT_EQ(title("\xC3\x9F"
                  "a"),
            "Ssa");
  EXPECT_EQ(title("\xC7\x86"
                  "a"),
            "\xC7\x85"
            "a");  // ǆ -> ǅ (titlecase digraph)
  EXPECT_EQ(capitalize("\xC7\x86"
                       "A"),
            "\xC7\x85"
            "a");
  EXPECT_EQ(title("hello wORLD 2nd-place o'neil"), "Hello World 2Nd-Place O'Neil");
  EXPECT_EQ(capitalize("hELLO World"), "Hello world");
  EXPECT_EQ(capitalize(""), "");
  // Final sigma: after a cased letter, not before one (case-ignorables skipped).
  EXPECT_EQ(lower("\xCE\x9F\xCE\xA3"), "\xCE\xBF\xCF\x82");  // ΟΣ -> ος
  EXPECT_EQ(lower("\xCE\xA3"), "\xCF\x83");                  // Σ alone -> σ
  EXPECT_EQ(lower("\xCE\x9F\xCE\xA3\xCE\x9F"), "\xCE\xBF\xCF\x83\xCE\xBF");
  EXPECT_EQ(lower("\xCE\x9F'\xCE\xA3'"), "\xCE\xBF'\xCF\x82'");
  EXPECT_EQ(lower("\xCE\x9F\xCE\xA3 x"), "\xCE\xBF\xCF\x82 x");
}

TEST(Text, XmlEscape) {
  EXPECT_EQ(xml_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c'");
  EXPECT_EQ(xml_escape(""), "");
  EXPECT_EQ(xml_escape("α=+1"), "α=+1");
}

TEST(Text, StripAndSplit) {
  EXPECT_EQ(strip("  a b \t\n"), "a b");
  EXPECT_EQ(strip("  a b  ", Side::kLeft), "a b  ");
  EXPECT_EQ(strip("  a b  ", Side::kRight), "  a b");
  EXPECT_EQ(strip("\xE3\x80\x80x\xC2\xA0\x1C"), "x");  // U+3000, NBSP, U+001C
  EXPECT_EQ(strip("\xE2\x80\x8Bx"), "\xE2\x80\x8Bx");  // U+200B is not whitespace
  EXPECT_EQ(strip("   "), "");
  EXPECT_EQ(strip(""), "");
  EXPECT_EQ(strip("xyaxy", "xy"), "a");
  EXPECT_EQ(strip("\xC3\xA9"
                  "a\xC3\xA9",
                  "\xC3\xA9"),
            "a");
  EXPECT_EQ(strip("\xC3\xA9"
                  "a",
                  "\xC3"),
            "\xC3\xA9"
            "a");  // units, not bytes
  EXPECT_EQ(strip("xax", ""), "xax");
  EXPECT_EQ(strip("xax", "x", Side::kRight), "xa");

  using V = std::vector<std::string>;
  EXPECT_EQ(split("  a  b\tc \n"), (V{"a", "b", "c"}));
  EXPECT_EQ(split(""), V{});
  EXPECT_EQ(split("   "), V{});
  EXPECT_EQ(split("a\xC2\x85"
                  "b\xE2\x80\xA8"
                  "c"),
            (V{"a", "b", "c"}));
  EXPECT_EQ(split(" a b  c  ", 1), (V{"a", "b  c  "}));
  EXPECT_EQ(split(" a b ", 0), (V{"a b "}));
  EXPECT_EQ(split("a,b,,c", ","), (V{"a", "b", "", "c"}));
  EXPECT_EQ(split("", ","), (V{""}));
  EXPECT_EQ(split("a,b,c", ",", 1), (V{"a", "b,c"}));
  EXPECT_EQ(split("a<>b<>", "<>"), (V{"a", "b", ""}));
  EXPECT_THROW(split("abc", ""), Error);
}

// --- every code point against Python's own str methods --------------------------

// For each code point c (U+0000 maps to itself and is not cased) this prints,
// where any differs from its default, the results of lower/upper/title of c
// alone, isspace, and probes of the properties title() and the sigma rule use:
// (c+'a').title() shows whether c is cased, ('A'+c+'Σ').lower() and
// ('AΣ'+c).lower() together whether c is case-ignorable.
constexpr const char* kPythonDump = R"PY(
import sys, unicodedata
step = int(sys.argv[1])
cps = [cp for cp in range(1, 0x110000)
       if not 0xD800 <= cp <= 0xDFFF and (cp < 0x3000 or cp % step == 0)]
cs = [chr(cp) for cp in cps]
# Joined with NUL (not cased, not case-ignorable, maps to itself), each piece
# is mapped exactly as it would be alone; one call per probe keeps this fast.
def each(fmt, method):
    return getattr('\0'.join(fmt % c for c in cs), method)().split('\0')
lo, up, ti = each('%s', 'lower'), each('%s', 'upper'), each('%s', 'title')
cased = [x[-1] for x in each('%sa', 'title')]
sig1 = [x[-1] for x in each('A%s\u03a3', 'lower')]
sig2 = [x[1] for x in each('A\u03a3%s', 'lower')]
h = lambda s: ' '.join('%X' % ord(x) for x in s)
out = [unicodedata.unidata_version]
for k, c in enumerate(cs):
    row = (lo[k], up[k], ti[k], c.isspace(), cased[k], sig1[k], sig2[k])
    if row != (c, c, c, False, 'A', '\u03c3', '\u03c2'):
        out.append('%X;%s;%s;%s;%d;%s;%s;%s' % (cps[k], h(lo[k]), h(up[k]), h(ti[k]), row[3],
                                               h(cased[k]), h(sig1[k]), h(sig2[k])))
sys.stdout.write('\n'.join(out) + '\n')
)PY";

std::string hex_cps(const std::string& s) {
  std::string out;
  for (auto ch : chars(s)) {
    size_t len = 0;
    char b[16];
    snprintf(b, sizeof b, "%s%X", out.empty() ? "" : " ", decode_utf8(ch, 0, len));
    out += b;
  }
  return out;
}

std::string cpp_row(uint32_t cp) {
  std::string c = u8(cp);
  std::string lo = lower(c), up = upper(c), ti = title(c);
  std::string probe_cased = title(c + "a").substr(ti.size());
  std::string sig1 = lower("A" + c + "\xCE\xA3");
  sig1 = sig1.substr(sig1.size() - 2);
  std::string sig2 = lower("A\xCE\xA3" + c).substr(1, 2);
  const char* sp = is_space(cp) ? "1" : "0";
  if (lo == c && up == c && ti == c && *sp == '0' && probe_cased == "A" && sig1 == "\xCF\x83" &&
      sig2 == "\xCF\x82")
    return "";
  char b[16];
  snprintf(b, sizeof b, "%X", cp);
  return std::string(b) + ";" + hex_cps(lo) + ";" + hex_cps(up) + ";" + hex_cps(ti) + ";" + sp +
         ";" + hex_cps(probe_cased) + ";" + hex_cps(sig1) + ";" + hex_cps(sig2);
}

TEST(TextVsPython, EveryCodePoint) {
  // Under the sanitizers every 17th code point above U+3000 is checked.
  const int step = std::getenv("RV_SANITIZER_RUN") ? 17 : 1;
  auto dir =
      std::filesystem::temp_directory_path() / ("rv_text_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto script = dir / "dump.py", dump = dir / "dump.txt";
  std::ofstream(script) << kPythonDump;
  std::string cmd = "python3 " + script.string() + " " + std::to_string(step) + " > " +
                    dump.string() + " 2>/dev/null";
  int rc = std::system(cmd.c_str());
  std::ifstream in(dump);
  std::string version, line;
  bool ok = rc == 0 && std::getline(in, version);
  if (!ok) {
    std::filesystem::remove_all(dir);
    GTEST_SKIP() << "python3 is not available";
  }
  std::map<uint32_t, std::string> py;
  while (std::getline(in, line)) py[std::stoul(line.substr(0, line.find(';')), nullptr, 16)] = line;
  std::filesystem::remove_all(dir);

  // A Python with another Unicode version differs on the characters assigned
  // after 14.0, which the module treats as unassigned, and on the characters
  // that Unicode 15.0 made Cased; those are left out.
  const bool same_version = version == "14.0.0";
  if (!same_version)
    std::cout << "python3 has Unicode " << version << "; code points assigned after 14.0 skipped\n";
  size_t compared = 0, mismatches = 0;
  for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if ((cp >= 0xD800 && cp <= 0xDFFF) || (cp % step && cp >= 0x3000) || cp == 0) continue;
    if (!same_version) {
      UVersionInfo age;
      u_charAge(static_cast<UChar32>(cp), age);
      if (age[0] > kUnicodeMajor) continue;
      if (cp == 0x10FC || (cp >= 0xA7F2 && cp <= 0xA7F4) || cp == 0xAB69) continue;
    }
    ++compared;
    auto it = py.find(cp);
    std::string want = it == py.end() ? "" : it->second;
    std::string got = cpp_row(cp);
    if (got != want && ++mismatches <= 20)
      ADD_FAILURE() << "U+" << std::hex << cp << "\n  python: " << want << "\n  c++:    " << got;
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_GT(compared, step == 1 ? 1000000u : 60000u);
  EXPECT_GT(py.size(), 3000u);  // the dump really lists the cased characters
}

}  // namespace
}  // namespace rv::text
