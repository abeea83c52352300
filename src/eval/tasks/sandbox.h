// Runs untrusted Python programs (HumanEval completions) in isolation.
//
// Each program runs in its own `python3` process:
//  - a fresh temporary directory (the working directory, deleted afterwards),
//    an empty environment, stdin from /dev/null;
//  - as the unprivileged uid/gid 65534 ("nobody") inside new user, network,
//    mount and PID namespaces: no network interfaces but a down loopback,
//    every mount except the temporary directory remounted read-only, and
//    every process of the program killed when its PID-namespace init exits;
//  - RLIMIT_AS (memory), RLIMIT_CPU, RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_CORE=0;
//  - a wall-clock timeout that SIGKILLs the whole process tree.
// Where namespaces cannot be created (seccomp, sysctl), run_python refuses
// with rv::Error unless allow_unisolated is set, in which case it runs with
// only the rlimits, the process group kill, uid "nobody" when started as root,
// and the temporary directory — with network access.
//
// Thread-safety: run_python may be called from any number of threads.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace rv::eval {

struct SandboxOptions {
  double timeout_s = 3.0;               // wall clock, whole process tree
  size_t memory_bytes = 1ull << 30;     // RLIMIT_AS per process
  int cpu_seconds = 0;                  // RLIMIT_CPU; 0 = ceil(timeout_s) + 1
  int max_processes = 64;               // RLIMIT_NPROC (counts threads too)
  size_t max_file_bytes = 16ull << 20;  // RLIMIT_FSIZE
  bool allow_unisolated = false;        // --allow-network-exec
  std::string python = "python3";       // looked up on PATH unless absolute
  size_t stderr_tail_bytes = 2048;
  int workers = 0;  // run_many parallelism; 0 = CPU count
};

enum class ExecStatus { kPassed, kFailed, kTimeout };
const char* exec_status_name(ExecStatus s);  // "passed" | "failed" | "timeout"

struct ExecResult {
  ExecStatus status = ExecStatus::kFailed;
  int exit_code = -1;       // when the program exited normally
  int signal = 0;           // when it was killed by a signal
  std::string output_tail;  // last stderr_tail_bytes of stdout+stderr
  double wall_s = 0;
  bool isolated = false;  // namespaces were in effect
};

// Whether this process can create the namespaces (probed once, cached).
bool sandbox_isolation_available();

// Runs `program` as `python3 prog.py`. Passed iff exit status 0 within the
// timeout. Throws rv::Error only when the sandbox itself cannot be set up
// (no python3, no isolation and !allow_unisolated, fork failure).
ExecResult run_python(const std::string& program, const SandboxOptions& opts);

// Runs programs on `opts.workers` threads; results in input order.
std::vector<ExecResult> run_many(const std::vector<std::string>& programs,
                                 const SandboxOptions& opts);

}  // namespace rv::eval
