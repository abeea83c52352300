// Error type shared by every layer.
//
// Library code never prints and never exits: it throws rv::Error, whose
// message is already the one line the CLI prints after "reasonvec: ".
// By convention the message starts with the file (or tensor) it concerns,
// "path: what is wrong", so users can act on it without a backtrace.
#pragma once

#include <stdexcept>
#include <string>

namespace rv {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
  // "where: what" — the canonical one-line form.
  Error(const std::string& where, const std::string& what)
      : std::runtime_error(where.empty() ? what : where + ": " + what) {}
};

// errno text for the last failed system call, e.g. "No space left on device".
std::string errno_text(int err);

}  // namespace rv
