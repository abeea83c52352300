// Helpers for the server tests: run `reasonvec serve` as a child process,
// parse server-sent events, and send raw HTTP.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include "support/llamacpp_oracle.h"

namespace rv::server::test {

using json = nlohmann::json;

using rv_test::sanitizer_run;

// `reasonvec <args...>` in a child process; the constructor returns once the
// server printed its address (or throws with what it printed instead).
class ServeProcess {
 public:
  explicit ServeProcess(const std::vector<std::string>& args, int timeout_s = 60) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      dup2(fds[1], 2);
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(RV_CLI_PATH));
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(RV_CLI_PATH, argv.data());
      _exit(127);
    }
    close(fds[1]);
    fd_ = fds[0];
    static const std::regex kAddr("listening on http://([^: ]+):([0-9]+)");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (port_ == 0) {
      int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(
                         deadline - std::chrono::steady_clock::now())
                         .count());
      if (left <= 0) throw std::runtime_error("server did not start: " + err_);
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, left) <= 0) continue;
      char buf[4096];
      ssize_t n = read(fd_, buf, sizeof buf);
      if (n <= 0) throw std::runtime_error("server exited before listening: " + err_);
      err_.append(buf, size_t(n));
      std::smatch m;
      if (std::regex_search(err_, m, kAddr)) port_ = std::stoi(m[2]);
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    drain_ = std::thread([this] {
      char buf[4096];
      for (;;) {
        ssize_t n = read(fd_, buf, sizeof buf);
        if (n <= 0) return;
        std::lock_guard<std::mutex> lk(mu_);
        err_.append(buf, size_t(n));
      }
    });
  }
  ~ServeProcess() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (drain_.joinable()) drain_.join();
    if (fd_ >= 0) close(fd_);
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }

  // Sends `sig` and waits (up to timeout_s) for the exit; returns the exit
  // code, or 128 + signal when it died of a signal, or -1 on timeout.
  int stop(int sig = SIGTERM, int timeout_s = 30) {
    kill(pid_, sig);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  std::string stderr_text() {
    std::lock_guard<std::mutex> lk(mu_);
    return err_;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  int port_ = 0;
  bool reaped_ = false;
  std::string err_;
  std::mutex mu_;
  std::thread drain_;
};

inline httplib::Client make_client(int port, int timeout_s = 120) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(timeout_s, 0);
  c.set_write_timeout(timeout_s, 0);
  c.set_connection_timeout(10, 0);
  return c;
}

// The `data:` payloads of an SSE body, in order ("[DONE]" included).
inline std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos)
      throw std::runtime_error("SSE event not terminated: " + body.substr(pos));
    std::string ev = body.substr(pos, end - pos);
    if (ev.rfind("data: ", 0) != 0) throw std::runtime_error("SSE event without 'data: ': " + ev);
    out.push_back(ev.substr(6));
    pos = end + 2;
  }
  return out;
}

// The text of a streamed completion (chat deltas or completion text) with
// the finish reason of its last choice chunk and, when asked, its usage chunk;
// checks the event framing and chunk objects on the way.
inline std::string concat_stream(const std::string& body, bool chat, std::string* finish,
                                 nlohmann::json* usage = nullptr) {
  auto events = sse_events(body);
  EXPECT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    nlohmann::json e = nlohmann::json::parse(events[i]);
    EXPECT_EQ(e["object"], chat ? "chat.completion.chunk" : "text_completion");
    if (e.contains("usage") && !e["usage"].is_null() && usage) *usage = e["usage"];
    for (const auto& c : e["choices"]) {
      if (chat) {
        if (c["delta"].contains("content")) text += c["delta"]["content"].get<std::string>();
      } else {
        text += c["text"].get<std::string>();
      }
      if (!c["finish_reason"].is_null()) *finish = c["finish_reason"];
    }
  }
  return text;
}

// Sends raw bytes to 127.0.0.1:port and returns everything read until the
// server closes the connection (or timeout).
inline std::string raw_http(int port, const std::string& request, int timeout_ms = 10000) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(s);
    throw std::runtime_error("connect failed");
  }
  size_t off = 0;
  while (off < request.size()) {
    ssize_t n = send(s, request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early (413): read what it said
    off += size_t(n);
  }
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(
                       deadline - std::chrono::steady_clock::now())
                       .count());
    if (left <= 0) break;
    pollfd p{s, POLLIN, 0};
    if (poll(&p, 1, left) <= 0) break;
    char buf[4096];
    ssize_t n = recv(s, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, size_t(n));
    // A response with Content-Length is complete once its body arrived.
    size_t hdr_end = out.find("\r\n\r\n");
    if (hdr_end != std::string::npos) {
      std::smatch m;
      std::string head = out.substr(0, hdr_end);
      static const std::regex kLen("[Cc]ontent-[Ll]ength: *([0-9]+)");
      if (std::regex_search(head, m, kLen) && out.size() >= hdr_end + 4 + std::stoul(m[1])) break;
    }
  }
  close(s);
  return out;
}

// Checks the OpenAI error object shape; returns the error member.
inline json error_of(const std::string& body) {
  json j = json::parse(body);
  if (!j.contains("error") || !j["error"].is_object())
    throw std::runtime_error("no error object: " + body);
  const json& e = j["error"];
  for (const char* k : {"message", "type", "param", "code"})
    if (!e.contains(k))
      throw std::runtime_error(std::string("error object lacks '") + k + "': " + body);
  if (!e["message"].is_string() || e["message"].get<std::string>().empty())
    throw std::runtime_error("error message empty: " + body);
  return e;
}

}  // namespace rv::server::test
