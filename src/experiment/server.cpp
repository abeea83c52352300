#include "experiment/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "common/file.h"
#include "eval/backend/http.h"

namespace rv::experiment {

namespace fs = std::filesystem;
using json = nlohmann::json;

int free_local_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) throw Error("socket", errno_text(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    int e = errno;
    ::close(s);
    throw Error("bind 127.0.0.1:0", errno_text(e));
  }
  int port = ntohs(a.sin_port);
  ::close(s);
  return port;
}

ServerProcess::ServerProcess(const std::string& command, const fs::path& log) : log_(log) {
  if (log.has_parent_path()) fs::create_directories(log.parent_path());
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(log.string(), errno_text(errno));
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(fd);
    throw Error("fork", errno_text(e));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  ::setpgid(pid, pid);  // also here: whichever runs first wins the race
  ::close(fd);
  pid_ = pid;
}

ServerProcess::~ServerProcess() {
  try {
    stop(5);
  } catch (...) {
  }
}

bool ServerProcess::alive() {
  if (pid_ <= 0) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    ::kill(-pid_, SIGTERM);  // children it left behind
    pid_ = -1;
    return false;
  }
  return r == 0;
}

void ServerProcess::stop(double grace_s) {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace_s);
  int st = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      ::kill(-pid_, SIGKILL);  // stragglers in the group
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(-pid_, SIGKILL);
  ::waitpid(pid_, &st, 0);
  pid_ = -1;
}

std::string ServerProcess::log_tail(size_t lines) const {
  std::ifstream in(log_);
  std::deque<std::string> q;
  std::string l;
  while (std::getline(in, l)) {
    q.push_back(l);
    if (q.size() > lines) q.pop_front();
  }
  std::string out;
  for (const auto& x : q) out += "\n  | " + x;
  return out.empty() ? " (log " + log_.string() + " is empty)" : " (" + log_.string() + "):" + out;
}

std::string ServerProcess::wait_ready(const std::string& base_url, double timeout_s) {
  auto url = eval::HttpBackend::parse_base_url(base_url);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  std::string last = "no answer yet";
  while (true) {
    check_interrupted();
    if (!alive())
      throw Error("server",
                  "exited before answering " + base_url + "/models; log tail" + log_tail());
    httplib::Client cli(url.scheme_host_port);
    cli.set_connection_timeout(1, 0);
    cli.set_read_timeout(5, 0);
    auto res = cli.Get(url.prefix + "/models");
    if (res && res->status == 200) {
      try {
        json j = json::parse(res->body);
        if (j.contains("data") && j["data"].is_array() && !j["data"].empty() &&
            j["data"][0].contains("id"))
          return j["data"][0]["id"].get<std::string>();
        last = "GET /models returned no model ids";
      } catch (const json::exception&) {
        last = "GET /models returned malformed JSON";
      }
    } else if (res) {
      last = "GET /models answered HTTP " + std::to_string(res->status);
    }
    if (std::chrono::steady_clock::now() > deadline)
      throw Error("server", "not ready after " + std::to_string(static_cast<int>(timeout_s)) +
                                " s (" + last + "); log tail" + log_tail());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace rv::experiment
