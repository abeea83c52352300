// A small Jinja interpreter for Hugging Face chat templates.
//
// Implements the subset of Jinja2 that model chat templates use, with the
// semantics of the environment transformers.apply_chat_template renders them
// in: Python Jinja2 (ImmutableSandboxedEnvironment, trim_blocks=True,
// lstrip_blocks=True, loopcontrols) plus transformers' globals
// raise_exception() and strftime_now() and its json.dumps-based tojson filter
// (ensure_ascii=False). Values print as Python prints them (True, None,
// ['a', 1]); string methods follow Python's str (strip('\n') strips only
// newlines). Undefined is lenient where Jinja2's is strict in one place: an
// attribute or item of an undefined value is undefined, not an error.
//
// Supported: text, {{ }}, {% %}, {# #}, whitespace control (-, +), raw;
// statements if/elif/else, for (else, `if` filter, tuple targets, loop.*),
// set (plain, tuple, namespace attribute, block), macro, break/continue,
// generation/endgeneration (no-op, as transformers renders it); expressions
// with Jinja2's precedence, literals (str, int, float, list, tuple, dict),
// slices, attribute/item access, calls with keyword arguments, filters and
// tests (see jinja.cpp for the list). Anything else is rejected while
// parsing with an rv::Error naming the construct and its line.
//
// Errors: rv::Error("<name> line N: what"), where <name> is the name given
// to the Template (e.g. "chat template" or a file path).
//
// Thread-safety: a Template is immutable once built; render() may be called
// from many threads at once.
#pragma once

#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace rv::jinja {

struct Options {
  bool trim_blocks = true;             // drop the first newline after a block tag
  bool lstrip_blocks = true;           // drop spaces/tabs before a block tag on its own line
  bool keep_trailing_newline = false;  // Jinja2 default: one trailing newline is dropped
};

struct RenderOptions {
  // Clock for strftime_now(); unset means the system clock. Local time zone.
  std::function<std::time_t()> now;
};

namespace detail {
struct Program;
}

class Template {
 public:
  // Parses `source`. Throws rv::Error("<name> line N: ...") on syntax errors
  // and on constructs, filters or tests this interpreter does not support.
  explicit Template(std::string_view source, std::string name = "template",
                    const Options& opts = {});
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // Renders with the top-level variables of `context` (a JSON object; key
  // order is kept, as Python dicts keep it). Throws rv::Error on runtime
  // errors (type errors, raise_exception(), undefined callables, ...).
  std::string render(const nlohmann::ordered_json& context, const RenderOptions& ropts = {}) const;

  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::shared_ptr<const detail::Program> prog_;
};

// json.dumps(value, ensure_ascii=False) as Python writes it (", " and ": "
// separators; floats as Python's repr). Exposed for tests and callers that
// need Python-identical JSON text.
std::string python_json_dumps(const nlohmann::ordered_json& value, int indent = -1,
                              bool ensure_ascii = false, bool sort_keys = false);

}  // namespace rv::jinja
