#include "common/error.h"

#include <cstring>

namespace rv {

std::string errno_text(int err) {
  char buf[256];
  // GNU strerror_r may return a static string rather than fill buf.
  const char* s = strerror_r(err, buf, sizeof buf);
  return s ? std::string(s) : std::string("errno ") + std::to_string(err);
}

}  // namespace rv
