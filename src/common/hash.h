// Content hashes for provenance records and cache keys.
#pragma once

#include <string>
#include <string_view>

namespace rv {

// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

// Incremental SHA-256 (files, many pieces). Not thread-safe.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  std::string hex();  // finishes the hash; call once

 private:
  void* ctx_;
};

}  // namespace rv
