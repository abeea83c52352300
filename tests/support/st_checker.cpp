#include "support/st_checker.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace rvtest {

using nlohmann::json;

static std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + p);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

static size_t elem_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "U8" || d == "I8" || d == "BOOL") return 1;
  throw std::runtime_error("unknown dtype " + d);
}

static float half_to_float(uint16_t h) {  // straightforward, by the IEEE definition
  int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 0)
    v = std::ldexp(double(m), -24);
  else if (e == 31)
    v = m ? NAN : INFINITY;
  else
    v = std::ldexp(1.0 + m / 1024.0, e - 15);
  return float(s ? -v : v);
}

std::vector<float> CheckedTensor::as_f32() const {
  size_t es = elem_size(dtype);
  size_t n = bytes.size() / es;
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(bytes.data()) + i * es;
    if (dtype == "F32") {
      uint32_t u = p[0] | p[1] << 8 | p[2] << 16 | uint32_t(p[3]) << 24;
      std::memcpy(&out[i], &u, 4);
    } else if (dtype == "BF16") {
      uint32_t u = (uint32_t(p[0]) | uint32_t(p[1]) << 8) << 16;
      std::memcpy(&out[i], &u, 4);
    } else if (dtype == "F16") {
      out[i] = half_to_float(uint16_t(p[0] | p[1] << 8));
    } else {
      throw std::runtime_error("as_f32 on " + dtype);
    }
  }
  return out;
}

CheckedFile read_safetensors_checked(const std::string& path) {
  std::string b = slurp(path);
  if (b.size() < 8) throw std::runtime_error(path + ": shorter than 8 bytes");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(b[i])) << (8 * i);
  if (8 + n > b.size()) throw std::runtime_error(path + ": header past EOF");
  if ((8 + n) % 8 != 0) throw std::runtime_error(path + ": data section not 8-byte aligned");
  std::string h = b.substr(8, n);
  size_t last = h.find_last_not_of(' ');
  if (last == std::string::npos || h[last] != '}')
    throw std::runtime_error(path + ": header not padded with spaces");
  json j = json::parse(h.substr(0, last + 1));
  CheckedFile f;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (auto& [k, v] : j.items()) {
    if (k == "__metadata__") {
      for (auto& [mk, mv] : v.items()) f.metadata[mk] = mv.get<std::string>();
      continue;
    }
    CheckedTensor t;
    t.dtype = v.at("dtype").get<std::string>();
    t.shape = v.at("shape").get<std::vector<int64_t>>();
    uint64_t s = v.at("data_offsets")[0].get<uint64_t>(),
             e = v.at("data_offsets")[1].get<uint64_t>();
    uint64_t want = elem_size(t.dtype);
    for (auto d : t.shape) want *= uint64_t(d);
    if (e - s != want) throw std::runtime_error(path + ": " + k + " span != shape x dtype");
    if (8 + n + e > b.size()) throw std::runtime_error(path + ": " + k + " past EOF");
    t.bytes = b.substr(8 + n + s, e - s);
    spans.emplace_back(s, e);
    f.tensors[k] = std::move(t);
  }
  std::sort(spans.begin(), spans.end());
  uint64_t pos = 0;
  for (auto [s, e] : spans) {
    if (s != pos) throw std::runtime_error(path + ": offsets not contiguous");
    pos = e;
  }
  if (8 + n + pos != b.size()) throw std::runtime_error(path + ": trailing bytes after data");
  return f;
}

CheckedFile read_model_checked(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(path)) return read_safetensors_checked(path);
  if (fs::exists(fs::path(path) / "model.safetensors"))
    return read_safetensors_checked((fs::path(path) / "model.safetensors").string());
  json idx = json::parse(slurp((fs::path(path) / "model.safetensors.index.json").string()));
  CheckedFile all;
  std::map<std::string, CheckedFile> shards;
  uint64_t total = 0;
  for (auto& [name, file] : idx.at("weight_map").items()) {
    std::string fn = file.get<std::string>();
    if (!shards.count(fn)) shards[fn] = read_safetensors_checked((fs::path(path) / fn).string());
    auto it = shards[fn].tensors.find(name);
    if (it == shards[fn].tensors.end()) throw std::runtime_error(fn + " lacks " + name);
    total += it->second.bytes.size();
    all.tensors[name] = it->second;
  }
  size_t count = 0;
  for (auto& [fn, f] : shards) count += f.tensors.size();
  if (count != all.tensors.size())
    throw std::runtime_error("shards hold tensors the index does not name");
  if (idx.at("metadata").at("total_size").get<uint64_t>() != total)
    throw std::runtime_error("index total_size != sum of tensor sizes");
  if (!shards.empty()) all.metadata = shards.begin()->second.metadata;
  return all;
}

RunResult run_cmd(const std::vector<std::string>& argv, long limit_fsize) {
  int out[2], err[2];
  if (pipe(out) || pipe(err)) throw std::runtime_error("pipe");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    close(out[0]);
    close(err[0]);
    if (limit_fsize > 0) {
      struct rlimit rl = {rlim_t(limit_fsize), rlim_t(limit_fsize)};
      setrlimit(RLIMIT_FSIZE, &rl);
    }
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execv(a[0], a.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  RunResult r;
  // Drain both pipes without deadlocking on a full one.
  fd_set fds;
  bool o_open = true, e_open = true;
  char buf[65536];
  while (o_open || e_open) {
    FD_ZERO(&fds);
    if (o_open) FD_SET(out[0], &fds);
    if (e_open) FD_SET(err[0], &fds);
    if (select(std::max(out[0], err[0]) + 1, &fds, nullptr, nullptr, nullptr) < 0) break;
    if (o_open && FD_ISSET(out[0], &fds)) {
      ssize_t n = read(out[0], buf, sizeof buf);
      if (n <= 0)
        o_open = false;
      else
        r.out.append(buf, size_t(n));
    }
    if (e_open && FD_ISSET(err[0], &fds)) {
      ssize_t n = read(err[0], buf, sizeof buf);
      if (n <= 0)
        e_open = false;
      else
        r.err.append(buf, size_t(n));
    }
  }
  close(out[0]);
  close(err[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

RunResult run_cli(const std::vector<std::string>& args) {
  std::vector<std::string> a = {RV_CLI_PATH};
  a.insert(a.end(), args.begin(), args.end());
  return run_cmd(a);
}

pid_t spawn_cli(const std::vector<std::string>& args, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) _exit(126);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv;
    std::string exe = RV_CLI_PATH;
    argv.push_back(exe.data());
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

namespace {
struct Cleanup {
  std::vector<std::string> dirs;
  ~Cleanup() {
    for (auto& d : dirs) {
      std::error_code ec;
      std::filesystem::remove_all(d, ec);
    }
  }
} g_cleanup;
}  // namespace

std::string temp_dir(const std::string& tag) {
  std::string t = "/tmp/rvtest-" + tag + "-XXXXXX";
  if (!mkdtemp(t.data())) throw std::runtime_error("mkdtemp");
  g_cleanup.dirs.push_back(t);
  return t;
}

}  // namespace rvtest
