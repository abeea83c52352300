// Unit tests of the Jinja interpreter. The table in jinja_cases.json holds
// hand-written templates with expected output worked out by hand (and
// cross-checked against Python Jinja2 3.1.6 in transformers' environment);
// the tests below cover what a table cannot (clocks, threads, limits).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "tokenizer/jinja.h"

namespace {

using nlohmann::ordered_json;
using rv::jinja::Template;

ordered_json load_cases() {
  std::ifstream f(std::string(RV_SOURCE_DIR) + "/tests/tokenizer/jinja_cases.json");
  if (!f) throw std::runtime_error("cannot open tests/tokenizer/jinja_cases.json");
  return ordered_json::parse(f)["cases"];
}

std::string render(const std::string& tmpl, const ordered_json& ctx = ordered_json::object()) {
  return Template(tmpl).render(ctx);
}

std::string error_of(const std::string& tmpl, const ordered_json& ctx = ordered_json::object()) {
  try {
    Template(tmpl).render(ctx);
  } catch (const rv::Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Jinja, CaseTable) {
  ordered_json cases = load_cases();
  ASSERT_GT(cases.size(), 100u);
  for (const auto& c : cases) {
    std::string name = c["name"];
    SCOPED_TRACE(name);
    std::string tmpl = c["template"];
    ordered_json ctx = c.value("context", ordered_json::object());
    if (c.contains("error")) {
      std::string msg = error_of(tmpl, ctx);
      EXPECT_NE(msg.find(c["error"].get<std::string>()), std::string::npos) << "got: " << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << "error message must be one line: " << msg;
    } else {
      std::string out;
      try {
        out = render(tmpl, ctx);
      } catch (const rv::Error& e) {
        ADD_FAILURE() << "unexpected error: " << e.what();
        continue;
      }
      EXPECT_EQ(out, c["expected"].get<std::string>());
    }
  }
}

TEST(Jinja, ErrorsNameTheTemplate) {
  try {
    Template("x\n{% include 'a' %}", "/models/m/chat_template.jinja");
    FAIL() << "expected an error";
  } catch (const rv::Error& e) {
    EXPECT_STREQ(e.what(), "/models/m/chat_template.jinja line 2: unsupported Jinja tag 'include'");
  }
}

TEST(Jinja, StrftimeNowUsesInjectedClock) {
  // 2024-07-26 12:34:56 UTC.
  const char* old_tz = getenv("TZ");
  std::string saved = old_tz ? old_tz : "";
  setenv("TZ", "UTC", 1);
  tzset();
  rv::jinja::RenderOptions ro;
  ro.now = [] { return static_cast<std::time_t>(1721997296); };
  std::string out = Template("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M') }}")
                        .render(ordered_json::object(), ro);
  if (old_tz)
    setenv("TZ", saved.c_str(), 1);
  else
    unsetenv("TZ");
  tzset();
  EXPECT_EQ(out, "26 Jul 2024|2024-07-26 12:34");
}

TEST(Jinja, ContextKeepsValueTypes) {
  ordered_json ctx = {{"i", 3}, {"f", 2.0}, {"b", false}, {"n", nullptr}, {"s", "x"}};
  EXPECT_EQ(
      render("{{ i }} {{ f }} {{ b }} {{ n }} {{ s }} {{ i is integer }} {{ f is float }}", ctx),
      "3 2.0 False None x True True");
}

TEST(Jinja, TemplateIsReusableAndThreadSafe) {
  Template t(
      "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + m|length %}{% "
      "endfor %}{{ ns.n }}");
  ordered_json ctx = {{"messages", {"ab", "cde", "f"}}};
  std::vector<std::thread> threads;
  std::vector<std::string> outs(4);
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int r = 0; r < 200; ++r) outs[static_cast<size_t>(k)] = t.render(ctx);
    });
  for (auto& th : threads) th.join();
  for (const auto& o : outs) EXPECT_EQ(o, "6");
}

TEST(Jinja, MacroRecursionIsBounded) {
  std::string msg = error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}");
  EXPECT_NE(msg.find("maximum macro recursion depth exceeded"), std::string::npos) << msg;
}

TEST(Jinja, RangeIsBounded) {
  std::string msg = error_of("{% for i in range(1000000) %}{% endfor %}");
  EXPECT_NE(msg.find("range too big"), std::string::npos) << msg;
}

TEST(Jinja, PythonJsonDumps) {
  ordered_json v =
      ordered_json::parse(R"({"z": [1, 2.5, "é\n"], "a": {"k": null, "t": true}, "e": []})");
  EXPECT_EQ(rv::jinja::python_json_dumps(v),
            R"({"z": [1, 2.5, "é\n"], "a": {"k": null, "t": true}, "e": []})");
  EXPECT_EQ(rv::jinja::python_json_dumps(v, -1, true, true),
            R"({"a": {"k": null, "t": true}, "e": [], "z": [1, 2.5, "\u00e9\n"]})");
  EXPECT_EQ(rv::jinja::python_json_dumps(ordered_json::parse("[1, {}]"), 1), "[\n 1,\n {}\n]");
}

TEST(Jinja, KeepTrailingNewlineOption) {
  rv::jinja::Options o;
  o.keep_trailing_newline = true;
  EXPECT_EQ(Template("a\n", "t", o).render(ordered_json::object()), "a\n");
  o.trim_blocks = false;
  o.lstrip_blocks = false;
  EXPECT_EQ(Template("  {% if true %}\nx{% endif %}", "t", o).render(ordered_json::object()),
            "  \nx");
}

TEST(Jinja, NonObjectContextIsAnError) {
  std::string msg = error_of("x", ordered_json::array());
  EXPECT_NE(msg.find("template context must be a JSON object"), std::string::npos) << msg;
}

}  // namespace

// str methods and filters use common/text.h, so non-ASCII case mapping and
// whitespace follow Python 3 (Jinja2 calls Python's str methods).
TEST(Jinja, StrMethodsFollowPythonUnicode) {
  ordered_json ctx = {{"s",
                       "\xC5\x81\xC3\x93"
                       "D\xC5\xBA stra\xC3\x9F"
                       "e \xCE\x9F\xCE\xA3"}};
  // 'ŁÓDź straße ΟΣ'.lower() / .upper() / .title()
  EXPECT_EQ(render("{{ s.lower() }}", ctx),
            "\xC5\x82\xC3\xB3"
            "d\xC5\xBA stra\xC3\x9F"
            "e \xCE\xBF\xCF\x82");
  EXPECT_EQ(render("{{ s | lower }}", ctx),
            "\xC5\x82\xC3\xB3"
            "d\xC5\xBA stra\xC3\x9F"
            "e \xCE\xBF\xCF\x82");
  EXPECT_EQ(render("{{ s.upper() }}", ctx),
            "\xC5\x81\xC3\x93"
            "D\xC5\xB9 STRASSE \xCE\x9F\xCE\xA3");
  EXPECT_EQ(render("{{ s.title() }}", ctx),
            "\xC5\x81\xC3\xB3"
            "d\xC5\xBA Stra\xC3\x9F"
            "e \xCE\x9F\xCF\x82");
  // Jinja2's filter lowers word[1:] on its own: 'ΟΣ' -> 'Οσ'.
  EXPECT_EQ(render("{{ s | title }}", ctx),
            "\xC5\x81\xC3\xB3"
            "d\xC5\xBA Stra\xC3\x9F"
            "e \xCE\x9F\xCF\x83");
  EXPECT_EQ(render("{{ s.capitalize() }}", ctx),
            "\xC5\x81\xC3\xB3"
            "d\xC5\xBA stra\xC3\x9F"
            "e \xCE\xBF\xCF\x82");
  // U+3000 and U+2003 are str.isspace() characters.
  ordered_json ws = {{"s",
                      "\xE3\x80\x80"
                      "a\xE2\x80\x83"
                      "b\xE3\x80\x80"}};
  EXPECT_EQ(render("{{ s.strip() }}|{{ s.split() | join(',') }}|{{ s.isspace() }}", ws),
            "a\xE2\x80\x83"
            "b|a,b|False");
  EXPECT_EQ(render("{{ '\\u3000\\u2003'.isspace() }}"), "True");
}
