#include "eval/tasks/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grp.h>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "common/file.h"

namespace rv::eval {

namespace fs = std::filesystem;

const char* exec_status_name(ExecStatus s) {
  switch (s) {
    case ExecStatus::kPassed:
      return "passed";
    case ExecStatus::kTimeout:
      return "timeout";
    default:
      return "failed";
  }
}

namespace {

constexpr uid_t kNobody = 65534;
// Exit codes the sandbox's own setup uses (before python runs).
constexpr int kExitNoNamespace = 120;
constexpr int kExitNoMount = 121;
constexpr int kExitNoExec = 127;

// Mount points of this process, read before fork so the child allocates nothing.
std::vector<std::string> mount_points() {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mountpoint ...
    size_t p = 0;
    for (int f = 0; f < 4 && p != std::string::npos; ++f) p = line.find(' ', p + 1);
    if (p == std::string::npos) continue;
    size_t e = line.find(' ', p + 1);
    std::string raw = line.substr(p + 1, e - p - 1), mp;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\\' && i + 3 < raw.size()) {
        mp += static_cast<char>((raw[i + 1] - '0') * 64 + (raw[i + 2] - '0') * 8 +
                                (raw[i + 3] - '0'));
        i += 3;
      } else {
        mp += raw[i];
      }
    }
    out.push_back(mp);
  }
  return out;
}

// Whether uid 65534 could execute `path`: every directory on the way must be
// searchable by "others" and the file executable by them.
bool others_can_exec(const std::string& path) {
  std::error_code ec;
  fs::path real = fs::canonical(path, ec);
  if (ec) return false;
  struct stat st;
  if (::stat(real.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || !(st.st_mode & S_IXOTH))
    return false;
  for (fs::path d = real.parent_path(); !d.empty(); d = d.parent_path()) {
    if (::stat(d.c_str(), &st) != 0 || !(st.st_mode & S_IXOTH)) return false;
    if (d == d.root_path()) break;
  }
  return true;
}

// Interpreter wrappers (pyenv shims, virtualenv launchers written as shell
// scripts) need environment variables the sandbox does not pass.
bool is_script(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char head[2] = {0, 0};
  in.read(head, 2);
  return head[0] == '#' && head[1] == '!';
}

std::string find_python(const std::string& name, bool as_nobody) {
  auto usable = [&](const std::string& cand) {
    if (::access(cand.c_str(), X_OK) != 0 || is_script(cand)) return false;
    return !as_nobody || others_can_exec(cand);
  };
  if (name.find('/') != std::string::npos) {
    if (usable(name)) return name;
    throw Error(name, as_nobody ? "not an executable binary that uid 65534 can run"
                                : "not an executable binary");
  }
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "";
  p += ":/usr/local/bin:/usr/bin:/bin";
  size_t b = 0;
  while (b <= p.size()) {
    size_t e = p.find(':', b);
    if (e == std::string::npos) e = p.size();
    std::string dir = p.substr(b, e - b);
    if (!dir.empty()) {
      std::string cand = dir + "/" + name;
      if (usable(cand)) return cand;
    }
    b = e + 1;
  }
  throw Error("sandbox", "no usable '" + name +
                             "' binary on PATH (HumanEval needs python3; scripts and binaries "
                             "uid 65534 cannot reach are skipped)");
}

bool write_all_fd(const char* path, const char* text) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  size_t n = std::strlen(text);
  bool ok = ::write(fd, text, n) == static_cast<ssize_t>(n);
  ::close(fd);
  return ok;
}

void child_fail(int out_fd, const char* msg, int code) {
  if (out_fd >= 0) {
    (void)!::write(out_fd, msg, std::strlen(msg));
    (void)!::write(out_fd, "\n", 1);
  }
  ::_exit(code);
}

struct ChildPlan {
  bool isolate;
  bool drop_to_nobody;
  const char* workdir;
  const char* python;
  const std::vector<std::string>* mounts;
  rlim_t as, cpu, nproc, fsize;
  int out_fd;
  char uid_map[64];
  char gid_map[64];
};

// Runs in the forked child: only system calls, no allocation.
[[noreturn]] void child_main(const ChildPlan& p) {
  ::setpgid(0, 0);
  if (p.drop_to_nobody) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
        ::setresuid(kNobody, kNobody, kNobody) != 0)
      child_fail(p.out_fd, "sandbox: cannot switch to uid 65534", kExitNoNamespace);
    // Changing uid clears "dumpable", which makes /proc/self/* root-owned and
    // the id maps below unwritable.
    ::prctl(PR_SET_DUMPABLE, 1);
  }
  if (p.isolate) {
    if (::unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID) != 0)
      child_fail(p.out_fd, "sandbox: unshare failed", kExitNoNamespace);
    if (!write_all_fd("/proc/self/setgroups", "deny") ||
        !write_all_fd("/proc/self/uid_map", p.uid_map) ||
        !write_all_fd("/proc/self/gid_map", p.gid_map))
      child_fail(p.out_fd, "sandbox: cannot write id maps", kExitNoNamespace);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount(p.workdir, p.workdir, nullptr, MS_BIND | MS_REC, nullptr) != 0)
      child_fail(p.out_fd, "sandbox: cannot set up mounts", kExitNoMount);
    for (const auto& mp : *p.mounts) {
      struct statvfs sv;
      if (::statvfs(mp.c_str(), &sv) != 0) continue;
      unsigned long keep = 0;
      if (sv.f_flag & ST_NOSUID) keep |= MS_NOSUID;
      if (sv.f_flag & ST_NODEV) keep |= MS_NODEV;
      if (sv.f_flag & ST_NOEXEC) keep |= MS_NOEXEC;
      if (sv.f_flag & ST_NOATIME) keep |= MS_NOATIME;
      if (sv.f_flag & ST_NODIRATIME) keep |= MS_NODIRATIME;
      if (sv.f_flag & ST_RELATIME) keep |= MS_RELATIME;
      int rc =
          ::mount(nullptr, mp.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, nullptr);
      if (rc != 0 && mp == "/")
        child_fail(p.out_fd, "sandbox: cannot make / read-only", kExitNoMount);
    }
  }
  struct rlimit rl;
  rl.rlim_cur = rl.rlim_max = p.as;
  ::setrlimit(RLIMIT_AS, &rl);
  rl.rlim_cur = p.cpu;
  rl.rlim_max = p.cpu + 1;
  ::setrlimit(RLIMIT_CPU, &rl);
  rl.rlim_cur = rl.rlim_max = p.nproc;
  ::setrlimit(RLIMIT_NPROC, &rl);
  rl.rlim_cur = rl.rlim_max = p.fsize;
  ::setrlimit(RLIMIT_FSIZE, &rl);
  rl.rlim_cur = rl.rlim_max = 0;
  ::setrlimit(RLIMIT_CORE, &rl);

  if (p.isolate) {
    // The next child is PID 1 of the new namespace: when it exits (or we are
    // killed and it receives PDEATHSIG), the kernel kills every process left.
    pid_t init = ::fork();
    if (init < 0) child_fail(p.out_fd, "sandbox: fork failed", kExitNoNamespace);
    if (init > 0) {
      ::close(p.out_fd);
      int st = 0;
      while (::waitpid(init, &st, 0) < 0 && errno == EINTR) {
      }
      if (WIFEXITED(st)) ::_exit(WEXITSTATUS(st));
      int sig = WIFSIGNALED(st) ? WTERMSIG(st) : SIGKILL;
      ::signal(sig, SIG_DFL);
      ::kill(::getpid(), sig);
      ::_exit(128 + sig);
    }
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  }
  if (::chdir(p.workdir) != 0) child_fail(p.out_fd, "sandbox: chdir failed", kExitNoExec);
  int devnull = ::open("/dev/null", O_RDONLY);
  if (devnull >= 0) ::dup2(devnull, 0);
  ::dup2(p.out_fd, 1);
  ::dup2(p.out_fd, 2);
  ::close_range(3, ~0U, 0);
  const char* argv[] = {p.python, "prog.py", nullptr};
  const char* envp[] = {nullptr};
  ::execve(p.python, const_cast<char* const*>(argv), const_cast<char* const*>(envp));
  child_fail(2, "sandbox: cannot execute python3", kExitNoExec);
  ::_exit(kExitNoExec);
}

struct TempDir {
  fs::path path;
  TempDir() {
    const char* t = std::getenv("TMPDIR");
    std::string tmpl = std::string(t && *t ? t : "/tmp") + "/rv-sandbox-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) throw Error(tmpl, "mkdtemp failed: " + errno_text(errno));
    path = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

ExecResult run_impl(const std::string& program, const SandboxOptions& opts, bool isolate) {
  static const std::vector<std::string> mounts = mount_points();
  bool root = ::geteuid() == 0;
  std::string python = find_python(opts.python, root);
  TempDir dir;
  uid_t uid = root ? kNobody : ::geteuid();
  gid_t gid = root ? kNobody : ::getegid();
  write_file(dir.path / "prog.py", program);
  if (root) {
    if (::chown(dir.path.c_str(), kNobody, kNobody) != 0 ||
        ::chown((dir.path / "prog.py").c_str(), kNobody, kNobody) != 0)
      throw Error(dir.path.string(), "chown to 65534 failed: " + errno_text(errno));
  }
  ::chmod(dir.path.c_str(), 0700);

  ChildPlan plan{};
  plan.isolate = isolate;
  plan.drop_to_nobody = root;
  std::string workdir = dir.path.string();
  plan.workdir = workdir.c_str();
  plan.python = python.c_str();
  plan.mounts = &mounts;
  plan.as = opts.memory_bytes;
  plan.cpu =
      opts.cpu_seconds > 0 ? opts.cpu_seconds : static_cast<rlim_t>(std::ceil(opts.timeout_s)) + 1;
  plan.nproc = opts.max_processes;
  plan.fsize = opts.max_file_bytes;
  std::snprintf(plan.uid_map, sizeof plan.uid_map, "0 %u 1", static_cast<unsigned>(uid));
  std::snprintf(plan.gid_map, sizeof plan.gid_map, "0 %u 1", static_cast<unsigned>(gid));

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw Error("sandbox", "pipe failed: " + errno_text(errno));
  plan.out_fd = fds[1];
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw Error("sandbox", "fork failed: " + errno_text(errno));
  }
  if (pid == 0) child_main(plan);
  ::close(fds[1]);
  ::setpgid(pid, pid);  // also done in the child; whichever runs first wins

  ExecResult res;
  res.isolated = isolate;
  std::string tail;
  bool timed_out = false, reaped = false;
  int status = 0;
  auto deadline = t0 + std::chrono::duration<double>(opts.timeout_s);
  char buf[4096];
  bool eof = false;
  while (!reaped || !eof) {
    if (!reaped) {
      pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) reaped = true;
    }
    if (!reaped && !timed_out && std::chrono::steady_clock::now() >= deadline) {
      timed_out = true;
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
    }
    if (eof) {
      if (!reaped) ::usleep(2000);
      continue;
    }
    struct pollfd pfd {
      fds[0], POLLIN, 0
    };
    int wait_ms = reaped ? 50 : 10;
    int pr = ::poll(&pfd, 1, wait_ms);
    if (pr > 0) {
      ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n > 0) {
        tail.append(buf, static_cast<size_t>(n));
        if (tail.size() > 4 * opts.stderr_tail_bytes)
          tail.erase(0, tail.size() - opts.stderr_tail_bytes);
      } else if (n == 0) {
        eof = true;
      }
    } else if (pr == 0 && reaped) {
      // Writers still alive after the program exited (only possible without
      // a PID namespace): kill the group and stop reading.
      ::kill(-pid, SIGKILL);
      eof = true;
    }
  }
  ::close(fds[0]);
  res.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (tail.size() > opts.stderr_tail_bytes) tail.erase(0, tail.size() - opts.stderr_tail_bytes);
  res.output_tail = std::move(tail);
  if (WIFEXITED(status)) res.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) res.signal = WTERMSIG(status);
  if (timed_out)
    res.status = ExecStatus::kTimeout;
  else if (WIFEXITED(status) && res.exit_code == 0)
    res.status = ExecStatus::kPassed;
  else
    res.status = ExecStatus::kFailed;
  if (isolate && WIFEXITED(status) &&
      (res.exit_code == kExitNoNamespace || res.exit_code == kExitNoMount) &&
      res.output_tail.rfind("sandbox: ", 0) == 0)
    throw Error("sandbox", "isolation failed: " + res.output_tail);
  return res;
}

}  // namespace

bool sandbox_isolation_available() {
  static const bool ok = [] {
    try {
      SandboxOptions o;
      o.timeout_s = 10;
      ExecResult r = run_impl("import socket\n", o, true);
      return r.status == ExecStatus::kPassed;
    } catch (const Error&) {
      return false;
    }
  }();
  return ok;
}

ExecResult run_python(const std::string& program, const SandboxOptions& opts) {
  bool iso = sandbox_isolation_available();
  if (!iso && !opts.allow_unisolated)
    throw Error("sandbox",
                "cannot create user/network namespaces here, refusing to run generated code "
                "with network access (pass --allow-network-exec to run it anyway)");
  return run_impl(program, opts, iso);
}

std::vector<ExecResult> run_many(const std::vector<std::string>& programs,
                                 const SandboxOptions& opts) {
  std::vector<ExecResult> out(programs.size());
  int workers = opts.workers > 0
                    ? opts.workers
                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers = std::min<int>(workers, static_cast<int>(programs.size()));
  std::atomic<size_t> next{0};
  std::mutex err_mu;
  std::string first_error;
  auto work = [&] {
    for (;;) {
      size_t i = next.fetch_add(1);
      if (i >= programs.size()) return;
      try {
        out[i] = run_python(programs[i], opts);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(err_mu);
        if (first_error.empty()) first_error = e.what();
        next = programs.size();
        return;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int w = 1; w < workers; ++w) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  if (!first_error.empty()) throw Error(first_error);
  return out;
}

}  // namespace rv::eval
