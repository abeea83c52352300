// ResultCache: persistence across handles, key separation, WAL mode, hashes
// that change exactly when a request field that matters changes.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <thread>

#include "common/error.h"
#include "common/file.h"
#include "eval/backend/cache.h"

namespace fs = std::filesystem;
using namespace rv::eval;

namespace {
fs::path tmpdir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("rv_cache_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}
}  // namespace

TEST(ResultCache, StoresAndFindsAcrossHandles) {
  fs::path d = tmpdir("persist");
  {
    ResultCache c(d / "sub" / "c.sqlite");
    EXPECT_FALSE(c.get("m", "t", "r1"));
    c.put("m", "t", "r1", "value-1");
    c.put("m", "t2", "r1", "value-2");
    c.put("m2", "t", "r1", "value-3");
    EXPECT_EQ(c.hits(), 0u);
    EXPECT_EQ(c.misses(), 1u);
  }
  ResultCache c(d / "sub" / "c.sqlite");
  EXPECT_EQ(c.get("m", "t", "r1").value(), "value-1");
  EXPECT_EQ(c.get("m", "t2", "r1").value(), "value-2");
  EXPECT_EQ(c.get("m2", "t", "r1").value(), "value-3");
  EXPECT_FALSE(c.get("m", "t", "r2"));
  EXPECT_EQ(c.count("m", "t"), 1);
  EXPECT_EQ(c.hits(), 3u);
  EXPECT_EQ(c.misses(), 1u);
  // WAL mode is on for the file (checked with SQLite directly).
  sqlite3* db;
  ASSERT_EQ(sqlite3_open((d / "sub" / "c.sqlite").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);
  fs::remove_all(d);
}

TEST(ResultCache, ConcurrentPutsAllLand) {
  fs::path d = tmpdir("conc");
  {
    ResultCache c(d / "c.sqlite");
    std::vector<std::thread> th;
    for (int t = 0; t < 4; ++t)
      th.emplace_back([&, t] {
        for (int i = 0; i < 50; ++i)
          c.put("m", "t", std::to_string(t * 1000 + i), std::string(100, 'a' + t));
      });
    for (auto& x : th) x.join();
    EXPECT_EQ(c.count("m", "t"), 200);
  }
  fs::remove_all(d);
}

TEST(ResultCache, RejectsAFileThatIsNotADatabase) {
  fs::path d = tmpdir("bad");
  rv::write_file(d / "c.sqlite", std::string(4096, 'x'));
  try {
    ResultCache c(d / "c.sqlite");
    FAIL();
  } catch (const rv::Error& e) {
    std::string w = e.what();
    EXPECT_EQ(w.rfind((d / "c.sqlite").string() + ": ", 0), 0u) << w;
  }
  fs::remove_all(d);
}

TEST(ResultCache, RequestHashesSeparateWhatMatters) {
  GenRequest a;
  a.prompt = "Q: 1+1\nA:";
  a.stop = {"Q:"};
  GenRequest b = a;
  EXPECT_EQ(request_hash(a), request_hash(b));
  b.seed = 7;  // greedy: the seed cannot change the answer
  EXPECT_EQ(request_hash(a), request_hash(b));
  b.temperature = 0.7f;
  EXPECT_NE(request_hash(a), request_hash(b));
  b = a;
  b.max_tokens = 512;
  EXPECT_NE(request_hash(a), request_hash(b));
  b = a;
  b.stop.push_back("</s>");
  EXPECT_NE(request_hash(a), request_hash(b));
  b = a;
  b.assistant_prefix = "The answer is";
  EXPECT_NE(request_hash(a), request_hash(b));
  b = a;
  b.chat = true;
  b.messages = {{"user", a.prompt}};
  EXPECT_NE(request_hash(a), request_hash(b));
  LoglikRequest l1{"ab", "c"}, l2{"a", "bc"};
  EXPECT_NE(request_hash(l1), request_hash(l2));  // no ambiguity from concatenation
  EXPECT_EQ(request_hash(l1).size(), 64u);
}

TEST(ResultCache, ResponsesRoundTripExactly) {
  GenResponse g{"The answer is 42.\n\xe2\x82\xac", "length"};
  auto g2 = decode_gen_response(encode_response(g));
  EXPECT_EQ(g2.text, g.text);
  EXPECT_EQ(g2.finish_reason, g.finish_reason);
  LoglikResponse l{-12.345678901234567, true};
  auto l2 = decode_loglik_response(encode_response(l));
  EXPECT_EQ(l2.logprob, l.logprob);  // bit-exact
  EXPECT_EQ(l2.is_greedy, true);
  EXPECT_THROW(decode_loglik_response("{\"logprob\": \"x\"}"), rv::Error);
  EXPECT_THROW(decode_gen_response("not json"), rv::Error);
}
