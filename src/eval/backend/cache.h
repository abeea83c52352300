// The evaluation result cache: one SQLite file holding every backend
// response ever received, keyed by (backend fingerprint, task config hash,
// request hash).
//
// Each put() is its own committed transaction in WAL mode, so a process
// killed at any instant (kill -9) keeps every response stored before it;
// the next run finds them and sends only what is missing. A crash of the
// whole OS may lose the last few puts (synchronous=NORMAL), never corrupt
// the file.
//
// Thread-safety: all methods may be called from any thread; calls are
// serialised internally. Several processes may share one file (SQLite
// locking, busy timeout 30 s).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>

#include "eval/backend/backend.h"

struct sqlite3;
struct sqlite3_stmt;

namespace rv::eval {

class ResultCache {
 public:
  // Opens or creates the database (and its parent directory). Throws
  // rv::Error("path: ...") when it cannot be opened or is not a cache file.
  explicit ResultCache(const std::filesystem::path& path);
  ~ResultCache();
  ResultCache(const ResultCache&) = delete;
  ResultCache& operator=(const ResultCache&) = delete;

  // The stored value, or nullopt. Counts a hit or a miss.
  std::optional<std::string> get(const std::string& backend_fp, const std::string& task_hash,
                                 const std::string& request_hash);
  // Stores (or replaces) a value and commits before returning.
  void put(const std::string& backend_fp, const std::string& task_hash,
           const std::string& request_hash, const std::string& value);
  // Number of stored entries for one (backend, task) pair.
  int64_t count(const std::string& backend_fp, const std::string& task_hash);

  uint64_t hits() const { return hits_.load(); }
  uint64_t misses() const { return misses_.load(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  void exec(const char* sql);
  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* get_ = nullptr;
  sqlite3_stmt* put_ = nullptr;
  sqlite3_stmt* count_ = nullptr;
  std::mutex mu_;
  std::atomic<uint64_t> hits_{0}, misses_{0};
};

// Canonical hashes (hex SHA-256 of a canonical JSON form): every field that
// can change the response takes part, so two requests share a key exactly
// when a backend must answer them identically.
std::string request_hash(const GenRequest& r);
std::string request_hash(const LoglikRequest& r);

// Responses <-> the cache's stored text (JSON). Parsing throws rv::Error on
// a malformed entry.
std::string encode_response(const GenResponse& r);
std::string encode_response(const LoglikResponse& r);
GenResponse decode_gen_response(const std::string& s);
LoglikResponse decode_loglik_response(const std::string& s);

// Default location: $XDG_CACHE_HOME/reasonvec/eval-cache.sqlite, else
// ~/.cache/reasonvec/eval-cache.sqlite.
std::filesystem::path default_cache_path();

}  // namespace rv::eval
