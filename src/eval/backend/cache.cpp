#include "eval/backend/cache.h"

#include <sqlite3.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/hash.h"

namespace rv::eval {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string db_error(sqlite3* db) {
  return db ? sqlite3_errmsg(db) : "out of memory";
}

}  // namespace

ResultCache::ResultCache(const fs::path& path) : path_(path) {
  std::error_code ec;
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  if (sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db_error(db_);
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(path.string(), "cannot open result cache: " + msg);
  }
  sqlite3_busy_timeout(db_, 30000);
  try {
    // WAL: readers never block the writer and a killed writer leaves every
    // committed put intact. NORMAL sync is durable against process death.
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    exec(
        "CREATE TABLE IF NOT EXISTS responses ("
        " backend TEXT NOT NULL, task TEXT NOT NULL, request TEXT NOT NULL,"
        " value TEXT NOT NULL, created REAL NOT NULL DEFAULT (julianday('now')),"
        " PRIMARY KEY (backend, task, request)) WITHOUT ROWID");
    auto prep = [&](const char* sql, sqlite3_stmt** st) {
      if (sqlite3_prepare_v2(db_, sql, -1, st, nullptr) != SQLITE_OK)
        throw Error(path_.string(), "result cache: " + db_error(db_));
    };
    prep("SELECT value FROM responses WHERE backend=?1 AND task=?2 AND request=?3", &get_);
    prep("INSERT OR REPLACE INTO responses(backend, task, request, value) VALUES (?1, ?2, ?3, ?4)",
         &put_);
    prep("SELECT COUNT(*) FROM responses WHERE backend=?1 AND task=?2", &count_);
  } catch (...) {
    sqlite3_finalize(get_);
    sqlite3_finalize(put_);
    sqlite3_finalize(count_);
    sqlite3_close(db_);
    throw;
  }
}

ResultCache::~ResultCache() {
  sqlite3_finalize(get_);
  sqlite3_finalize(put_);
  sqlite3_finalize(count_);
  sqlite3_close(db_);
}

void ResultCache::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : db_error(db_);
    sqlite3_free(err);
    throw Error(path_.string(), "result cache: " + msg + " (is this an SQLite file?)");
  }
}

static void bind_text(sqlite3_stmt* st, int i, const std::string& s) {
  sqlite3_bind_text(st, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
}

std::optional<std::string> ResultCache::get(const std::string& backend_fp,
                                            const std::string& task_hash,
                                            const std::string& request_hash) {
  std::lock_guard<std::mutex> lock(mu_);
  sqlite3_reset(get_);
  bind_text(get_, 1, backend_fp);
  bind_text(get_, 2, task_hash);
  bind_text(get_, 3, request_hash);
  int rc = sqlite3_step(get_);
  if (rc == SQLITE_ROW) {
    const char* p = reinterpret_cast<const char*>(sqlite3_column_text(get_, 0));
    std::string v(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(get_, 0)));
    sqlite3_reset(get_);
    ++hits_;
    return v;
  }
  sqlite3_reset(get_);
  if (rc != SQLITE_DONE) throw Error(path_.string(), "result cache read: " + db_error(db_));
  ++misses_;
  return std::nullopt;
}

void ResultCache::put(const std::string& backend_fp, const std::string& task_hash,
                      const std::string& request_hash, const std::string& value) {
  std::lock_guard<std::mutex> lock(mu_);
  sqlite3_reset(put_);
  bind_text(put_, 1, backend_fp);
  bind_text(put_, 2, task_hash);
  bind_text(put_, 3, request_hash);
  bind_text(put_, 4, value);
  int rc = sqlite3_step(put_);
  sqlite3_reset(put_);
  if (rc != SQLITE_DONE) throw Error(path_.string(), "result cache write: " + db_error(db_));
}

int64_t ResultCache::count(const std::string& backend_fp, const std::string& task_hash) {
  std::lock_guard<std::mutex> lock(mu_);
  sqlite3_reset(count_);
  bind_text(count_, 1, backend_fp);
  bind_text(count_, 2, task_hash);
  int64_t n = 0;
  if (sqlite3_step(count_) == SQLITE_ROW) n = sqlite3_column_int64(count_, 0);
  sqlite3_reset(count_);
  return n;
}

std::string request_hash(const GenRequest& r) {
  json j;
  j["kind"] = "generate";
  if (r.chat) {
    json msgs = json::array();
    for (const auto& m : r.messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
    j["messages"] = msgs;
  } else {
    j["prompt"] = r.prompt;
  }
  // Only when set, so that keys of requests without one stay as they were.
  if (!r.assistant_prefix.empty()) j["assistant_prefix"] = r.assistant_prefix;
  j["stop"] = r.stop;
  j["max_tokens"] = r.max_tokens;
  j["temperature"] = r.temperature;
  j["top_p"] = r.top_p;
  // Only when set, so that keys of requests without them stay as they were.
  if (r.top_k > 0) j["top_k"] = r.top_k;
  if (r.min_p > 0) j["min_p"] = r.min_p;
  if (!r.chat_template_kwargs.empty() && r.chat) j["chat_template_kwargs"] = r.chat_template_kwargs;
  // The seed only matters when sampling; greedy answers are seed-independent.
  j["seed"] = r.temperature > 0 ? r.seed : 0;
  return sha256_hex(j.dump());
}

std::string request_hash(const LoglikRequest& r) {
  json j = {{"kind", "loglikelihood"}, {"context", r.context}, {"continuation", r.continuation}};
  return sha256_hex(j.dump());
}

std::string encode_response(const GenResponse& r) {
  json j{{"text", r.text}, {"finish_reason", r.finish_reason}};
  if (r.completion_tokens >= 0) j["completion_tokens"] = r.completion_tokens;
  return j.dump();
}

std::string encode_response(const LoglikResponse& r) {
  return json{{"logprob", r.logprob}, {"is_greedy", r.is_greedy}}.dump();
}

GenResponse decode_gen_response(const std::string& s) {
  try {
    json j = json::parse(s);
    GenResponse r;
    r.text = j.at("text").get<std::string>();
    r.finish_reason = j.at("finish_reason").get<std::string>();
    // Entries written before the field existed have no token count.
    if (j.contains("completion_tokens")) r.completion_tokens = j["completion_tokens"].get<int>();
    return r;
  } catch (const json::exception& e) {
    throw Error("result cache", std::string("malformed generation entry: ") + e.what());
  }
}

LoglikResponse decode_loglik_response(const std::string& s) {
  try {
    json j = json::parse(s);
    return LoglikResponse{j.at("logprob").get<double>(), j.at("is_greedy").get<bool>()};
  } catch (const json::exception& e) {
    throw Error("result cache", std::string("malformed log-likelihood entry: ") + e.what());
  }
}

fs::path default_cache_path() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return fs::path(x) / "reasonvec" / "eval-cache.sqlite";
  if (const char* h = std::getenv("HOME"); h && *h)
    return fs::path(h) / ".cache" / "reasonvec" / "eval-cache.sqlite";
  throw Error("result cache", "neither XDG_CACHE_HOME nor HOME is set; pass --cache FILE");
}

}  // namespace rv::eval
