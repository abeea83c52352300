// Control of an inference server process the experiment starts per model
// variant: start, health check, stop, log tail.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

namespace rv::experiment {

// A server process started with /bin/sh -c COMMAND in its own process group,
// stdout+stderr to `log`. stop() sends SIGTERM to the group, then SIGKILL
// after `grace_s`; the destructor stops it too.
//
// Thread-safety: one thread at a time.
class ServerProcess {
 public:
  // Throws rv::Error if the log cannot be opened or fork fails.
  ServerProcess(const std::string& command, const std::filesystem::path& log);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  // Polls GET {base_url}/models until 200; returns the first model id.
  // Throws rv::Error with the log tail on timeout or if the process exits.
  std::string wait_ready(const std::string& base_url, double timeout_s);
  bool alive();
  void stop(double grace_s = 15);
  // The last `lines` lines of the log, formatted for an error message.
  std::string log_tail(size_t lines = 20) const;
  int pid() const { return pid_; }

 private:
  int pid_ = -1;
  std::filesystem::path log_;
};

// A TCP port that was free a moment ago on 127.0.0.1.
int free_local_port();

}  // namespace rv::experiment
