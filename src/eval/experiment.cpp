#include "eval/experiment.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <httplib.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/parallel.h"
#include "eval/backend/engine.h"
#include "eval/backend/http.h"
#include "eval/tasks/data.h"
#include "eval/report/report.h"
#include "eval/run/results.h"
#include "eval/run/runner.h"
#include "formats/dtype.h"
#include "formats/model_dir.h"
#include "formats/safetensors.h"
#include "formats/synth.h"
#include "vector/vector.h"

namespace rv::eval {

namespace fs = std::filesystem;
using json = nlohmann::json;

json BackendSpec::to_json() const {
  if (server)
    return {{"kind", "server"},
            {"command", srv.command},
            {"base_url", srv.base_url},
            {"model_name", srv.model_name},
            {"concurrency", srv.concurrency}};
  return {{"kind", "engine"},
          {"max_batch", max_batch},
          {"max_context", max_context},
          {"kv_bf16", kv_bf16}};
}

// ---------------------------------------------------------------- config

namespace {

struct Parser {
  std::string src;  // file name for messages
  fs::path dir;     // relative paths are relative to this

  [[noreturn]] void fail(const YAML::Node& n, const std::string& key,
                         const std::string& what) const {
    std::string where = src;
    if (n.IsDefined() && n.Mark().line >= 0) where += ":" + std::to_string(n.Mark().line + 1);
    throw Error(where, key + ": " + what);
  }
  void only_keys(const YAML::Node& m, const std::string& key,
                 const std::set<std::string>& allowed) const {
    if (!m.IsMap()) fail(m, key, "expected a mapping");
    for (const auto& kv : m) {
      std::string k = kv.first.as<std::string>();
      if (!allowed.count(k)) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        fail(kv.first, key.empty() ? k : key + "." + k,
             "unknown key (expected one of: " + list + ")");
      }
    }
  }
  std::string str(const YAML::Node& n, const std::string& key) const {
    if (!n.IsScalar()) fail(n, key, "expected a string");
    return n.as<std::string>();
  }
  template <typename T>
  T num(const YAML::Node& n, const std::string& key, const char* what) const {
    if (!n.IsScalar()) fail(n, key, std::string("expected ") + what);
    try {
      return n.as<T>();
    } catch (const YAML::Exception&) {
      fail(n, key, std::string("expected ") + what + ", got '" + n.Scalar() + "'");
    }
  }
  bool boolean(const YAML::Node& n, const std::string& key) const {
    if (!n.IsScalar()) fail(n, key, "expected true or false");
    try {
      return n.as<bool>();
    } catch (const YAML::Exception&) {
      fail(n, key, "expected true or false, got '" + n.Scalar() + "'");
    }
  }
  fs::path path(const YAML::Node& n, const std::string& key) const {
    std::string s = str(n, key);
    if (s.empty()) fail(n, key, "empty path");
    if (s[0] == '~' && getenv("HOME")) s = std::string(getenv("HOME")) + s.substr(1);
    fs::path p(s);
    return p.is_absolute() ? p : dir / p;
  }
  std::vector<std::string> str_list(const YAML::Node& n, const std::string& key) const {
    std::vector<std::string> out;
    if (n.IsScalar()) return {n.as<std::string>()};
    if (!n.IsSequence()) fail(n, key, "expected a list of strings");
    for (const auto& x : n) out.push_back(str(x, key));
    return out;
  }

  BackendSpec backend(const YAML::Node& n, const std::string& key) const {
    BackendSpec b;
    if (n.IsScalar()) {
      std::string s = n.as<std::string>();
      if (s == "engine") return b;
      fail(n, key, "expected 'engine' or a mapping with 'engine' or 'server'");
    }
    only_keys(n, key, {"engine", "server"});
    if (n["engine"] && n["server"]) fail(n, key, "give either 'engine' or 'server', not both");
    if (const auto e = n["engine"]) {
      if (!e.IsNull()) {
        only_keys(e, key + ".engine", {"max_batch", "max_context", "kv_bf16"});
        if (e["kv_bf16"]) b.kv_bf16 = boolean(e["kv_bf16"], key + ".engine.kv_bf16");
        if (e["max_batch"])
          b.max_batch = num<int>(e["max_batch"], key + ".engine.max_batch", "a positive integer");
        if (e["max_context"])
          b.max_context =
              num<int>(e["max_context"], key + ".engine.max_context", "a positive integer");
        if (b.max_batch <= 0) fail(e["max_batch"], key + ".engine.max_batch", "must be positive");
        if (b.max_context <= 0)
          fail(e["max_context"], key + ".engine.max_context", "must be positive");
      }
    }
    if (const auto s = n["server"]) {
      const std::string k = key + ".server";
      only_keys(s, k, {"command", "base_url", "model_name", "startup_timeout", "concurrency"});
      b.server = true;
      if (!s["command"])
        fail(s, k, "missing 'command' (e.g. \"vllm serve {model} --port {port}\")");
      b.srv.command = str(s["command"], k + ".command");
      if (b.srv.command.find("{model}") == std::string::npos)
        fail(s["command"], k + ".command", "must contain {model} (the model directory to serve)");
      if (s["base_url"]) b.srv.base_url = str(s["base_url"], k + ".base_url");
      if (s["model_name"]) b.srv.model_name = str(s["model_name"], k + ".model_name");
      if (s["startup_timeout"]) {
        b.srv.startup_timeout =
            num<double>(s["startup_timeout"], k + ".startup_timeout", "seconds");
        if (!(b.srv.startup_timeout > 0))
          fail(s["startup_timeout"], k + ".startup_timeout", "must be positive");
      }
      if (s["concurrency"]) {
        b.srv.concurrency = num<int>(s["concurrency"], k + ".concurrency", "a positive integer");
        if (b.srv.concurrency <= 0) fail(s["concurrency"], k + ".concurrency", "must be positive");
      }
      try {
        std::string probe = b.srv.base_url;
        for (size_t p; (p = probe.find("{port}")) != std::string::npos;) probe.replace(p, 6, "1");
        HttpBackend::parse_base_url(probe);
      } catch (const Error& e) {
        fail(s["base_url"] ? s["base_url"] : s, k + ".base_url", e.what());
      }
    }
    return b;
  }
};

std::string safe_name(const std::string& s) {
  std::string o;
  for (char c : s)
    o += (isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  return o.empty() ? "_" : o;
}

}  // namespace

ExperimentConfig parse_experiment_config(const std::string& text, const fs::path& source) {
  Parser P{source.string(), source.has_parent_path() ? source.parent_path() : fs::path(".")};
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw Error(P.src + ":" + std::to_string(e.mark.line + 1), "YAML syntax error: " + e.msg);
  }
  if (!root.IsMap()) throw Error(P.src, "expected a YAML mapping at the top level");
  P.only_keys(
      root, "",
      {"vector", "targets", "alphas", "controls", "tasks", "limit", "seed", "data_dir", "backend"});
  ExperimentConfig c;
  c.source = source;

  const YAML::Node v = root["vector"];
  if (!v) P.fail(root, "vector", "missing (give {base: DIR, tuned: DIR} or {file: PATH})");
  P.only_keys(v, "vector", {"base", "tuned", "file"});
  if (v["file"]) {
    if (v["base"] || v["tuned"])
      P.fail(v, "vector", "give either 'file' or 'base' and 'tuned', not both");
    c.vector_file = P.path(v["file"], "vector.file");
  } else {
    if (!v["base"]) P.fail(v, "vector.base", "missing (the SFT model directory)");
    if (!v["tuned"]) P.fail(v, "vector.tuned", "missing (the GRPO/RL model directory)");
    c.base = P.path(v["base"], "vector.base");
    c.tuned = P.path(v["tuned"], "vector.tuned");
  }

  BackendSpec default_backend;
  if (root["backend"]) default_backend = P.backend(root["backend"], "backend");

  const YAML::Node t = root["targets"];
  if (!t) P.fail(root, "targets", "missing (a list of model directories)");
  if (!t.IsSequence() || t.size() == 0) P.fail(t, "targets", "expected a non-empty list");
  std::set<std::string> names;
  for (const auto& n : t) {
    ExperimentTarget tg;
    tg.backend = default_backend;
    if (n.IsScalar()) {
      tg.dir = P.path(n, "targets");
    } else {
      P.only_keys(n, "targets[]", {"name", "path", "backend"});
      if (!n["path"]) P.fail(n, "targets[].path", "missing");
      tg.dir = P.path(n["path"], "targets[].path");
      if (n["name"]) tg.name = P.str(n["name"], "targets[].name");
      if (n["backend"]) tg.backend = P.backend(n["backend"], "targets[].backend");
    }
    if (tg.name.empty()) tg.name = tg.dir.lexically_normal().filename().string();
    if (tg.name.empty()) tg.name = tg.dir.lexically_normal().parent_path().filename().string();
    if (!names.insert(tg.name).second)
      P.fail(n, "targets", "duplicate target name '" + tg.name + "' (give each a distinct 'name')");
    c.targets.push_back(tg);
  }

  if (const auto a = root["alphas"]) {
    if (!a.IsSequence() || a.size() == 0)
      P.fail(a, "alphas", "expected a non-empty list of numbers");
    c.alphas.clear();
    for (const auto& x : a) {
      double d = P.num<double>(x, "alphas", "a number");
      if (!std::isfinite(d)) P.fail(x, "alphas", "must be finite");
      if (std::find(c.alphas.begin(), c.alphas.end(), d) != c.alphas.end())
        P.fail(x, "alphas", "duplicate value " + x.Scalar());
      c.alphas.push_back(d);
    }
  }

  if (const auto k = root["controls"]) {
    P.only_keys(k, "controls", {"random", "reverse"});
    if (const auto r = k["random"]) {
      if (r.IsMap()) {
        P.only_keys(r, "controls.random", {"seed"});
        c.control_random = true;
        if (r["seed"])
          c.random_seed =
              P.num<uint64_t>(r["seed"], "controls.random.seed", "a non-negative integer");
      } else {
        c.control_random = P.boolean(r, "controls.random");
      }
    }
    if (k["reverse"]) c.control_reverse = P.boolean(k["reverse"], "controls.reverse");
  }

  int default_limit = 0;
  uint64_t default_seed = 1234;
  if (root["limit"]) default_limit = P.num<int>(root["limit"], "limit", "a non-negative integer");
  if (default_limit < 0) P.fail(root["limit"], "limit", "must be >= 0");
  if (root["seed"]) default_seed = P.num<uint64_t>(root["seed"], "seed", "a non-negative integer");
  if (root["data_dir"])
    c.data_dir = P.path(root["data_dir"], "data_dir");
  else
    c.data_dir = default_data_dir();

  const YAML::Node ts = root["tasks"];
  if (!ts) P.fail(root, "tasks", "missing (e.g. [gsm8k, sciq])");
  if (!ts.IsSequence() || ts.size() == 0) P.fail(ts, "tasks", "expected a non-empty list");
  std::set<std::string> labels;
  const auto known = task_names();
  for (const auto& n : ts) {
    ExperimentTask et;
    et.options.data_dir = c.data_dir;
    et.options.limit = default_limit;
    et.options.seed = default_seed;
    if (!n.IsScalar()) {
      P.only_keys(n, "tasks[]",
                  {"name", "label", "limit", "seed", "transforms", "cot_hint", "chat_template",
                   "num_fewshot", "system_prompt", "fewshot_as_multiturn"});
      if (!n["name"]) P.fail(n, "tasks[].name", "missing");
      if (n["label"]) et.label = P.str(n["label"], "tasks[].label");
      if (n["limit"])
        et.options.limit = P.num<int>(n["limit"], "tasks[].limit", "a non-negative integer");
      if (et.options.limit < 0) P.fail(n["limit"], "tasks[].limit", "must be >= 0");
      if (n["seed"])
        et.options.seed = P.num<uint64_t>(n["seed"], "tasks[].seed", "a non-negative integer");
      if (n["transforms"])
        et.options.transforms = P.str_list(n["transforms"], "tasks[].transforms");
      if (n["cot_hint"]) et.options.cot_hint = P.boolean(n["cot_hint"], "tasks[].cot_hint");
      if (n["chat_template"])
        et.options.apply_chat_template = P.boolean(n["chat_template"], "tasks[].chat_template");
      if (n["fewshot_as_multiturn"])
        et.options.fewshot_as_multiturn =
            P.boolean(n["fewshot_as_multiturn"], "tasks[].fewshot_as_multiturn");
      if (n["num_fewshot"])
        et.options.num_fewshot = P.num<int>(n["num_fewshot"], "tasks[].num_fewshot", "an integer");
      if (n["system_prompt"])
        et.options.system_prompt = P.str(n["system_prompt"], "tasks[].system_prompt");
    }
    // (yaml-cpp's Node::operator= writes through to the referenced node, so
    // this is a fresh handle, never an assignment.)
    const YAML::Node name_node = n.IsScalar() ? YAML::Node(n) : YAML::Node(n["name"]);
    et.name = P.str(name_node, "tasks[].name");
    if (std::find(known.begin(), known.end(), et.name) == known.end()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      P.fail(name_node, "tasks", "unknown task '" + et.name + "' (known: " + list + ")");
    }
    if (et.label.empty()) et.label = et.name;
    if (safe_name(et.label) != et.label)
      P.fail(name_node, "tasks[].label",
             "'" + et.label + "' may only use letters, digits, '-', '_' and '.'");
    if (!labels.insert(et.label).second)
      P.fail(name_node, "tasks",
             "duplicate task column '" + et.label + "' (give task variants distinct 'label's)");
    c.tasks.push_back(et);
  }
  return c;
}

ExperimentConfig load_experiment_config(const fs::path& path) {
  if (!fs::exists(path)) throw Error(path.string(), "no such file");
  return parse_experiment_config(read_file(path), path);
}

// ---------------------------------------------------------------- servers

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
  auto url = HttpBackend::parse_base_url(base_url);
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

// ---------------------------------------------------------------- pipeline

namespace {

// Cheap identity of a file or directory: names, sizes and modification
// times of its files (content hashing a 15 GB checkpoint on every rerun
// would cost minutes).
std::string path_identity(const fs::path& p) {
  std::vector<std::string> items;
  auto add = [&](const fs::path& f, const std::string& rel) {
    auto t = fs::last_write_time(f).time_since_epoch().count();
    items.push_back(rel + "|" + std::to_string(fs::file_size(f)) + "|" + std::to_string(t));
  };
  if (fs::is_directory(p)) {
    for (const auto& e : fs::recursive_directory_iterator(p))
      if (e.is_regular_file()) add(e.path(), fs::relative(e.path(), p).string());
  } else {
    add(p, p.filename().string());
  }
  std::sort(items.begin(), items.end());
  std::string s = fs::weakly_canonical(p).string();
  for (const auto& i : items) s += "\n" + i;
  return sha256_hex(s);
}

std::string fmt_alpha(double a) {
  char b[32];
  snprintf(b, sizeof b, "%+g", a);
  return b;
}

// Makes a streaming backend's cache identity the model variant's content
// fingerprint (a server's URL changes with its port between runs).
class Rekeyed : public StreamingBackend {
 public:
  Rekeyed(StreamingBackend& in, std::string fp) : in_(in), fp_(std::move(fp)) {}
  std::string fingerprint() const override { return fp_; }
  std::string describe() const override { return in_.describe(); }
  void generate_stream(const std::vector<GenRequest>& r, const GenResultFn& f) override {
    in_.generate_stream(r, f);
  }
  void loglikelihood_stream(const std::vector<LoglikRequest>& r, const LoglikResultFn& f) override {
    in_.loglikelihood_stream(r, f);
  }

 private:
  StreamingBackend& in_;
  std::string fp_;
};

struct Variant {
  std::string label;    // "qwen-7b +v α=+1"
  std::string dirname;  // file-system safe
  size_t target = 0;
  std::string vec;  // "base" | "v" | "random"
  double alpha = 0;
  fs::path model_dir;
  std::string model_fp;
  std::vector<fs::path> runs;  // per task
};

std::string subst(std::string s, const std::string& key, const std::string& val) {
  for (size_t p = 0; (p = s.find(key, p)) != std::string::npos; p += val.size())
    s.replace(p, key.size(), val);
  return s;
}

std::string pct(const json& x) {
  if (!x.is_number()) return "–";
  char b[32];
  snprintf(b, sizeof b, "%.1f", 100 * x.get<double>());
  return b;
}
std::string spct(const json& x) {
  if (!x.is_number()) return "–";
  char b[32];
  snprintf(b, sizeof b, "%+.1f", 100 * x.get<double>());
  return b;
}

std::string xml(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<')
      o += "&lt;";
    else if (c == '>')
      o += "&gt;";
    else if (c == '&')
      o += "&amp;";
    else if (c == '"')
      o += "&quot;";
    else
      o += c;
  }
  return o;
}

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                         "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

// Accuracy vs α: one line per (target, vector), base (α=0) shared.
std::string accuracy_svg(const json& rep, const std::string& task) {
  std::map<std::string, std::vector<std::pair<double, double>>> series;
  double amin = 0, amax = 0;
  std::map<std::string, double> base_acc;
  for (const auto& r : rep["rows"]) {
    const json& c = r["cells"][task];
    if (!c.contains("accuracy") || !c["accuracy"].is_number()) continue;
    double a = r["alpha"], acc = c["accuracy"];
    amin = std::min(amin, a);
    amax = std::max(amax, a);
    std::string tgt = r["target"];
    if (r["vector"] == "base")
      base_acc[tgt] = acc;
    else
      series[tgt + " " + r["vector"].get<std::string>()].push_back({a, acc});
  }
  for (auto& [name, pts] : series) {
    std::string tgt = name.substr(0, name.rfind(' '));
    if (base_acc.count(tgt)) pts.push_back({0.0, base_acc[tgt]});
    std::sort(pts.begin(), pts.end());
  }
  for (const auto& [tgt, acc] : base_acc)
    if (!series.count(tgt + " v") && !series.count(tgt + " random"))
      series[tgt + " base"] = {{0.0, acc}};
  if (amax - amin < 1e-9) {
    amin -= 1;
    amax += 1;
  }
  const double W = 640, H = 400, L = 60, R = 190, T = 40, B = 50, pw = W - L - R, ph = H - T - B;
  auto X = [&](double a) { return L + pw * (a - amin) / (amax - amin); };
  auto Y = [&](double v) { return T + ph * (1 - v); };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
       "fill=\"white\"/>\n";
  s << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" << xml(task)
    << ": accuracy vs α</text>\n";
  for (int i = 0; i <= 4; ++i) {
    double v = i / 4.0;
    s << "<line x1=\"" << L << "\" x2=\"" << L + pw << "\" y1=\"" << Y(v) << "\" y2=\"" << Y(v)
      << "\" stroke=\"#ddd\"/><text x=\"" << L - 6 << "\" y=\"" << Y(v) + 4
      << "\" text-anchor=\"end\">" << 100 * v << "%</text>\n";
  }
  std::set<double> ticks;
  for (const auto& r : rep["rows"]) ticks.insert(r["alpha"].get<double>());
  for (double a : ticks)
    s << "<text x=\"" << X(a) << "\" y=\"" << T + ph + 18 << "\" text-anchor=\"middle\">"
      << fmt_alpha(a) << "</text>\n";
  s << "<text x=\"" << L + pw / 2 << "\" y=\"" << H - 10 << "\" text-anchor=\"middle\">α</text>\n";
  s << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << pw << "\" height=\"" << ph
    << "\" fill=\"none\" stroke=\"#444\"/>\n";
  int k = 0;
  for (const auto& [name, pts] : series) {
    const char* col = kColors[k % 8];
    bool dashed = name.size() > 7 && name.substr(name.size() - 7) == " random";
    s << "<polyline fill=\"none\" stroke=\"" << col << "\" stroke-width=\"2\""
      << (dashed ? " stroke-dasharray=\"5,4\"" : "") << " points=\"";
    for (const auto& [a, v] : pts) s << X(a) << "," << Y(v) << " ";
    s << "\"/>\n";
    for (const auto& [a, v] : pts)
      s << "<circle cx=\"" << X(a) << "\" cy=\"" << Y(v) << "\" r=\"3.5\" fill=\"" << col
        << "\"><title>" << xml(name) << " α=" << fmt_alpha(a) << ": " << pct(v)
        << "%</title></circle>\n";
    double ly = T + 10 + 18 * k;
    s << "<line x1=\"" << L + pw + 12 << "\" x2=\"" << L + pw + 36 << "\" y1=\"" << ly << "\" y2=\""
      << ly << "\" stroke=\"" << col << "\" stroke-width=\"2\""
      << (dashed ? " stroke-dasharray=\"5,4\"" : "") << "/><text x=\"" << L + pw + 42 << "\" y=\""
      << ly + 4 << "\">" << xml(name) << "</text>\n";
    ++k;
  }
  s << "</svg>\n";
  return s.str();
}

std::string norms_svg(const json& layers, const std::string& title) {
  const double W = 640, H = 360, L = 70, R = 20, T = 40, B = 50, pw = W - L - R, ph = H - T - B;
  double vmax = 0;
  for (const auto& l : layers) vmax = std::max(vmax, l["l2"].get<double>());
  if (vmax <= 0) vmax = 1;
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
       "fill=\"white\"/>\n";
  s << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" << xml(title)
    << "</text>\n";
  const size_t n = std::max<size_t>(1, layers.size());
  const double bw = pw / static_cast<double>(n);
  for (int i = 0; i <= 4; ++i) {
    double v = vmax * i / 4.0, y = T + ph * (1 - i / 4.0);
    char b[32];
    snprintf(b, sizeof b, "%.3g", v);
    s << "<line x1=\"" << L << "\" x2=\"" << L + pw << "\" y1=\"" << y << "\" y2=\"" << y
      << "\" stroke=\"#ddd\"/><text x=\"" << L - 6 << "\" y=\"" << y + 4
      << "\" text-anchor=\"end\">" << b << "</text>\n";
  }
  size_t i = 0;
  for (const auto& l : layers) {
    double v = l["l2"].get<double>(), h = ph * v / vmax, x = L + bw * static_cast<double>(i);
    s << "<rect x=\"" << x + bw * 0.1 << "\" y=\"" << T + ph - h << "\" width=\"" << bw * 0.8
      << "\" height=\"" << h << "\" fill=\"#1f77b4\"><title>layer " << l["layer"].get<int>() << ": "
      << v << "</title></rect>\n";
    if (n <= 40 || i % 4 == 0)
      s << "<text x=\"" << x + bw / 2 << "\" y=\"" << T + ph + 15
        << "\" text-anchor=\"middle\" font-size=\"10\">" << l["layer"].get<int>() << "</text>\n";
    ++i;
  }
  s << "<text x=\"" << L + pw / 2 << "\" y=\"" << H - 10
    << "\" text-anchor=\"middle\">layer</text>\n";
  s << "<text x=\"16\" y=\"" << T + ph / 2 << "\" transform=\"rotate(-90 16 " << T + ph / 2
    << ")\" text-anchor=\"middle\">‖v‖₂</text>\n</svg>\n";
  return s.str();
}

}  // namespace

void write_random_control(const fs::path& v, uint64_t seed, const fs::path& out) {
  TensorSet ts(v);
  std::vector<TensorSpec> specs;
  for (const auto& name : ts.names()) specs.push_back({name, DType::F32, ts.find(name)->shape});
  AtomicOutput ao(out, AtomicOutput::Kind::kFile, true);
  // The writer names its single file; write it into a scratch dir then move.
  fs::path scratch = ao.path().string() + ".d";
  fs::create_directories(scratch);
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{scratch};
  {
    SafetensorsWriter::Options wo;
    // v's provenance (architecture, shapes' source) so `check` judges the
    // control exactly as it judges v.
    wo.metadata = ts.metadata();
    wo.metadata["reasonvec.kind"] = "random-control";
    wo.metadata["reasonvec.seed"] = std::to_string(seed);
    wo.metadata["reasonvec.norms_of"] = v.string();
    wo.shard_size = ~0ull;
    SafetensorsWriter w(scratch, specs, wo);
    constexpr size_t kTile = 1 << 20;
    for (size_t t = 0; t < specs.size(); ++t) {
      check_interrupted();
      TensorView tv = ts.view(specs[t].name);
      const uint64_t n = tv.numel();
      const size_t esz = tv.nbytes() / std::max<uint64_t>(1, n);
      const uint64_t stream = hash_name(specs[t].name);
      const size_t tiles = (n + kTile - 1) / kTile;
      std::vector<double> vsq(tiles, 0), rsq(tiles, 0);
      parallel_for(tiles, 1, [&](size_t b, size_t e) {
        std::vector<float> buf(kTile);
        for (size_t k = b; k < e; ++k) {
          uint64_t lo = k * kTile, m = std::min<uint64_t>(kTile, n - lo);
          to_f32(tv.dtype(), tv.data + lo * esz, buf.data(), m);
          for (uint64_t i = 0; i < m; ++i) {
            vsq[k] += static_cast<double>(buf[i]) * buf[i];
            double r = synth_normal(seed, stream, lo + i);
            rsq[k] += r * r;
          }
        }
      });
      double vs = 0, rs = 0;
      for (size_t k = 0; k < tiles; ++k) {
        vs += vsq[k];
        rs += rsq[k];
      }
      const double scale = rs > 0 ? std::sqrt(vs) / std::sqrt(rs) : 0.0;
      parallel_for(tiles, 1, [&](size_t b, size_t e) {
        std::vector<float> buf(kTile);
        for (size_t k = b; k < e; ++k) {
          uint64_t lo = k * kTile, m = std::min<uint64_t>(kTile, n - lo);
          for (uint64_t i = 0; i < m; ++i)
            buf[i] =
                static_cast<float>(scale * static_cast<double>(synth_normal(seed, stream, lo + i)));
          w.write(t, lo * 4, buf.data(), m * 4);
        }
      });
    }
    w.finish();
  }
  fs::rename(scratch / "model.safetensors", ao.path());
  ao.commit();
}

ExperimentResult run_experiment(const ExperimentConfig& cfg, const ExperimentOptions& opt) {
  auto log = [&](const std::string& s) {
    if (opt.log) opt.log(s);
  };
  const fs::path out = opt.out_dir;
  fs::create_directories(out);
  ExperimentResult res;

  // 1. Preflight: everything that can be wrong without heavy work.
  std::vector<std::string> problems;
  auto try_model = [&](const fs::path& d, const std::string& what) {
    try {
      if (!fs::is_directory(d)) throw Error(d.string(), "no such model directory");
      ModelDir md(d);
    } catch (const Error& e) {
      problems.push_back(what + ": " + e.what());
    }
  };
  if (cfg.vector_file.empty()) {
    try_model(cfg.base, "vector.base");
    try_model(cfg.tuned, "vector.tuned");
  } else {
    try {
      TensorSet ts(cfg.vector_file);
    } catch (const Error& e) {
      problems.push_back(std::string("vector.file: ") + e.what());
    }
  }
  for (const auto& t : cfg.targets) try_model(t.dir, "target " + t.name);
  for (const auto& t : cfg.tasks) {
    try {
      make_task(t.name)->instances(t.options);
    } catch (const Error& e) {
      problems.push_back("task " + t.label + ": " + e.what());
    }
  }
  if (!problems.empty()) {
    std::string msg;
    for (const auto& p : problems) msg += (msg.empty() ? "" : "; ") + p;
    throw Error(cfg.source.string(), msg);
  }

  // 2. The vector (and the random control).
  fs::path vpath;
  std::string vfp;
  fs::create_directories(out / "vectors");
  if (!cfg.vector_file.empty()) {
    vpath = cfg.vector_file;
    vfp = sha256_hex("file|" + path_identity(vpath));
    log("[given ] vector " + vpath.string());
  } else {
    vfp = sha256_hex("extract|f32|" + path_identity(cfg.base) + "|" + path_identity(cfg.tuned));
    vpath = out / "vectors" / ("v-" + vfp.substr(0, 16) + ".safetensors");
    if (fs::exists(vpath)) {
      log("[cached] extract " + vpath.string());
      ++res.steps_cached;
    } else {
      log("[run   ] extract " + cfg.tuned.string() + " - " + cfg.base.string() + " -> " +
          vpath.string());
      vec::ExtractOptions eo;
      eo.command_line = "reasonvec experiment " + cfg.source.string();
      vec::extract(cfg.base, cfg.tuned, vpath, eo, log);
      ++res.steps_run;
    }
  }
  fs::path rpath;
  std::string rfp;
  if (cfg.control_random) {
    rfp = sha256_hex("random|" + vfp + "|" + std::to_string(cfg.random_seed));
    rpath = out / "vectors" / ("random-" + rfp.substr(0, 16) + ".safetensors");
    if (fs::exists(rpath)) {
      log("[cached] random control " + rpath.string());
      ++res.steps_cached;
    } else {
      log("[run   ] random control (seed " + std::to_string(cfg.random_seed) + ") -> " +
          rpath.string());
      write_random_control(vpath, cfg.random_seed, rpath);
      ++res.steps_run;
    }
  }

  // 3. check every (target, vector) pair before applying anything.
  {
    std::vector<std::string> errs;
    for (const auto& t : cfg.targets) {
      std::vector<fs::path> vs = {vpath};
      if (!rpath.empty()) vs.push_back(rpath);
      for (const auto& vp : vs) {
        vec::CheckResult cr = vec::check(t.dir, vp, vec::CheckOptions{});
        for (const auto& w : cr.warnings)
          log("warning: " + t.name + " + " + vp.filename().string() + ": " + w);
        if (cr.verdict == vec::CheckResult::Verdict::kIncompatible)
          for (const auto& e : cr.errors)
            errs.push_back(t.name + " (" + t.dir.string() + "): " + e);
      }
    }
    if (!errs.empty()) {
      std::string msg;
      for (const auto& e : errs) msg += (msg.empty() ? "" : "; ") + e;
      throw Error("check", "incompatible target/vector: " + msg);
    }
    log("[ok    ] check: " + std::to_string(cfg.targets.size()) + " target(s) compatible");
  }

  // 4. Variants and their model directories.
  std::vector<double> alphas = cfg.alphas;
  if (cfg.control_reverse)
    for (double a : cfg.alphas)
      if (std::find(alphas.begin(), alphas.end(), -a) == alphas.end()) alphas.push_back(-a);
  std::sort(alphas.begin(), alphas.end());
  std::vector<Variant> variants;
  for (size_t ti = 0; ti < cfg.targets.size(); ++ti) {
    const auto& t = cfg.targets[ti];
    Variant b;
    b.label = t.name;
    b.dirname = safe_name(t.name) + "__base";
    b.target = ti;
    b.vec = "base";
    b.model_dir = t.dir;
    b.model_fp = sha256_hex("model|" + path_identity(t.dir));
    variants.push_back(b);
    std::vector<std::pair<std::string, std::string>> vecs = {{"v", vfp}};
    if (cfg.control_random) vecs.push_back({"random", rfp});
    for (const auto& [vname, fp] : vecs)
      for (double a : alphas) {
        if (a == 0) continue;
        Variant x;
        x.target = ti;
        x.vec = vname;
        x.alpha = a;
        x.label = t.name + " " + vname + " α=" + fmt_alpha(a);
        x.dirname = safe_name(t.name) + "__" + vname + "_a" + fmt_alpha(a);
        x.model_fp = sha256_hex("apply|" + b.model_fp + "|" + fp + "|" + fmt_alpha(a));
        x.model_dir = out / "models" / (x.dirname + "-" + x.model_fp.substr(0, 12));
        variants.push_back(x);
      }
  }
  fs::create_directories(out / "models");
  for (auto& x : variants) {
    if (x.vec == "base") continue;
    if (fs::exists(x.model_dir / "config.json")) {
      log("[cached] apply " + x.label);
      ++res.steps_cached;
      continue;
    }
    log("[run   ] apply " + x.label + " -> " + x.model_dir.string());
    vec::ApplyOptions ao;
    ao.force = true;  // a leftover partial dir (no config.json) from a killed run
    ao.command_line = "reasonvec experiment " + cfg.source.string();
    vec::apply(cfg.targets[x.target].dir, {{x.vec == "v" ? vpath : rpath, x.alpha}}, x.model_dir,
               ao, log);
    ++res.steps_run;
  }

  // 5. Evaluate every (variant, task).
  const fs::path cache = out / "eval-cache.sqlite";
  for (auto& x : variants) {
    const auto& t = cfg.targets[x.target];
    const BackendSpec& bs = t.backend;
    std::vector<size_t> todo;
    for (size_t k = 0; k < cfg.tasks.size(); ++k) {
      const auto& et = cfg.tasks[k];
      json key = {{"model", x.model_fp},
                  {"task", et.name},
                  {"config", make_task(et.name)->config(et.options)},
                  {"limit", et.options.limit},
                  {"seed", et.options.seed},
                  {"backend", bs.server ? "server" : "engine"}};
      // Only when set, so runs cached before the key existed stay valid.
      if (!bs.server && bs.kv_bf16) key["kv_bf16"] = true;
      std::string fp = sha256_hex(key.dump());
      fs::path run = out / "runs" / x.dirname / (et.label + "-" + fp.substr(0, 12));
      x.runs.push_back(run);
      if (fs::exists(run / "results.json")) {
        log("[cached] eval " + x.label + " / " + et.label);
        ++res.steps_cached;
      } else {
        todo.push_back(k);
      }
    }
    if (todo.empty()) continue;

    std::unique_ptr<StreamingBackend> inner;
    std::unique_ptr<ServerProcess> proc;
    std::string backend_desc, numerics;
    if (bs.server) {
      int port = free_local_port();
      std::string model_abs = fs::absolute(x.model_dir).string();
      std::string cmd =
          subst(subst(bs.srv.command, "{model}", model_abs), "{port}", std::to_string(port));
      std::string url =
          subst(subst(bs.srv.base_url, "{model}", model_abs), "{port}", std::to_string(port));
      fs::path slog = out / "logs" / (x.dirname + ".server.log");
      log("[start ] server for " + x.label + ": " + cmd);
      proc = std::make_unique<ServerProcess>(cmd, slog);
      std::string served;
      try {
        served = proc->wait_ready(url, bs.srv.startup_timeout);
      } catch (const Error& e) {
        throw Error(x.label, e.what());
      }
      HttpOptions ho;
      ho.base_url = url;
      ho.model = bs.srv.model_name.empty() ? served
                                           : subst(subst(bs.srv.model_name, "{model}", model_abs),
                                                   "{port}", std::to_string(port));
      ho.concurrency = bs.srv.concurrency;
      ho.max_retries = 2;
      inner = std::make_unique<HttpBackend>(ho);
      backend_desc = "server: " + cmd;
    } else {
      engine::EngineOptions eo;
      eo.max_batch = bs.max_batch;
      eo.max_context = bs.max_context;
      eo.kv_bf16 = bs.kv_bf16;
      auto eb = EngineBackend::open(x.model_dir, eo);
      // kv-bf16 and avx512bf16 change the numbers: cached apart, as in eval.
      if (std::string n = eb->engine().numerics(); !n.empty()) numerics = "|" + n;
      inner = std::move(eb);
      backend_desc = "engine";
    }
    Rekeyed backend(*inner, "experiment|" + std::string(bs.server ? "server|" : "engine|") +
                                x.model_fp + numerics);
    for (size_t k : todo) {
      const auto& et = cfg.tasks[k];
      log("[run   ] eval " + x.label + " / " + et.label);
      RunOptions ro;
      ro.tasks = {et.name};
      ro.task = et.options;
      ro.cache_path = cache;
      ro.config["model"] = x.label;
      ro.config["model_dir"] = x.model_dir.string();
      ro.config["backend"] = backend_desc;
      ro.config["experiment"] = {
          {"target", t.name}, {"vector", x.vec}, {"alpha", x.alpha}, {"task_label", et.label}};
      RunResult rr;
      try {
        rr = run_eval(backend, ro);
      } catch (const Error& e) {
        if (proc) {
          const char* why = proc->alive() ? "" : "; the server exited during the run";
          throw Error(x.label + " / " + et.label,
                      std::string(e.what()) + why + "; server log tail" + proc->log_tail());
        }
        throw;
      }
      write_results(x.runs[k], rr);
      res.cache_hits += rr.cache_hits;
      res.cache_misses += rr.cache_misses;
      ++res.steps_run;
    }
    if (proc) {
      log("[stop  ] server for " + x.label);
      proc->stop();
    }
  }

  // 6. Report.
  json rep;
  rep["config"] = cfg.source.string();
  rep["vector"] = {{"path", vpath.string()}};
  if (!rpath.empty()) rep["random_control"] = {{"path", rpath.string()}, {"seed", cfg.random_seed}};
  rep["alphas"] = alphas;
  rep["tasks"] = json::array();
  for (const auto& et : cfg.tasks)
    rep["tasks"].push_back({{"label", et.label},
                            {"name", et.name},
                            {"limit", et.options.limit},
                            {"seed", et.options.seed},
                            {"transforms", et.options.transforms},
                            {"cot_hint", et.options.cot_hint},
                            {"chat_template", et.options.apply_chat_template}});
  rep["rows"] = json::array();
  ReportOptions ropt;
  std::map<size_t, size_t> row_of;  // variant -> rep["rows"] index
  for (size_t vi = 0; vi < variants.size(); ++vi) {
    const auto& x = variants[vi];
    row_of[vi] = rep["rows"].size();
    rep["rows"].push_back({{"label", x.label},
                           {"target", cfg.targets[x.target].name},
                           {"vector", x.vec},
                           {"alpha", x.alpha},
                           {"model_dir", x.model_dir.string()},
                           {"cells", json::object()}});
  }
  for (size_t ti = 0; ti < cfg.targets.size(); ++ti) {
    std::vector<size_t> members;  // base first
    for (size_t vi = 0; vi < variants.size(); ++vi)
      if (variants[vi].target == ti) members.push_back(vi);
    for (size_t k = 0; k < cfg.tasks.size(); ++k) {
      std::vector<fs::path> dirs;
      for (size_t vi : members) dirs.push_back(variants[vi].runs[k]);
      json br = build_report(dirs, ropt);
      for (const auto& row : br["rows"]) {
        if (row["task"] != cfg.tasks[k].name) continue;
        for (size_t m = 0; m < members.size(); ++m) {
          json cell = row["runs"][m];
          cell["run_dir"] = dirs[m].string();
          cell["metric"] = row["metric"];
          cell.erase("run");
          json& dst = rep["rows"][row_of[members[m]]]["cells"][cfg.tasks[k].label];
          if (row["variant"] == "all") {
            json groups = dst.contains("groups") ? dst["groups"] : json::object();
            dst = cell;
            if (!groups.empty()) dst["groups"] = groups;
          } else {
            dst["groups"][row["variant"].get<std::string>()] = cell;
          }
        }
      }
    }
  }
  // Per-layer norms of v.
  {
    vec::InspectResult ir = vec::inspect(vpath, "");
    json layers = json::array();
    for (const auto& [l, st] : ir.layers) layers.push_back({{"layer", l}, {"l2", st.l2()}});
    rep["vector"]["layers"] = layers;
    rep["vector"]["total_l2"] = ir.total.l2();
    rep["vector"]["other_l2"] = ir.other.l2();
  }

  std::ostringstream md;
  md << "# Reasoning-vector transfer\n\nConfig: `" << cfg.source.string() << "`, vector: `"
     << vpath.string() << "` (‖v‖ = " << rep["vector"]["total_l2"].get<double>() << ")\n\n";
  md << "Cells: accuracy % [bootstrap 95% CI]; for variants, Δ vs the target at α=0 on the same "
        "documents "
        "[paired bootstrap 95% CI] ("
     << ropt.bootstrap << " resamples, seed " << ropt.seed << ").\n\n";
  md << "| model |";
  for (const auto& et : cfg.tasks) md << " " << et.label << " |";
  md << "\n|---|";
  for (size_t k = 0; k < cfg.tasks.size(); ++k) md << "---|";
  md << "\n";
  auto cell_text = [&](const json& c) {
    if (!c.contains("accuracy")) return std::string("–");
    std::string s = pct(c["accuracy"]) + " [" + pct(c["ci95"][0]) + ", " + pct(c["ci95"][1]) + "]";
    if (c.contains("delta"))
      s += " (Δ " + spct(c["delta"]) + " [" + spct(c["delta_ci95"][0]) + ", " +
           spct(c["delta_ci95"][1]) + "])";
    return s;
  };
  bool any_groups = false;
  for (const auto& r : rep["rows"]) {
    md << "| " << r["label"].get<std::string>() << " |";
    for (const auto& et : cfg.tasks) {
      const json& c = r["cells"].contains(et.label) ? r["cells"][et.label] : json::object();
      if (c.contains("groups")) any_groups = true;
      md << " " << cell_text(c) << " |";
    }
    md << "\n";
  }
  if (any_groups) {
    md << "\n## Breakdown by subtask / perturbation\n";
    for (const auto& et : cfg.tasks) {
      std::set<std::string> gs;
      for (const auto& r : rep["rows"])
        if (r["cells"].contains(et.label) && r["cells"][et.label].contains("groups"))
          for (const auto& [g, _] : r["cells"][et.label]["groups"].items()) gs.insert(g);
      if (gs.empty()) continue;
      md << "\n### " << et.label << "\n\n| model |";
      for (const auto& g : gs) md << " " << g << " |";
      md << "\n|---|";
      for (size_t i = 0; i < gs.size(); ++i) md << "---|";
      md << "\n";
      for (const auto& r : rep["rows"]) {
        md << "| " << r["label"].get<std::string>() << " |";
        for (const auto& g : gs) {
          const json& cs = r["cells"][et.label];
          md << " "
             << (cs.contains("groups") && cs["groups"].contains(g) ? cell_text(cs["groups"][g])
                                                                   : "–")
             << " |";
        }
        md << "\n";
      }
    }
  }
  fs::create_directories(out / "plots");
  md << "\nPlots:";
  for (const auto& et : cfg.tasks) {
    fs::path p = out / "plots" / ("accuracy_" + et.label + ".svg");
    write_file(p, accuracy_svg(rep, et.label));
    md << " [" << et.label << "](plots/accuracy_" << et.label << ".svg)";
  }
  write_file(out / "plots" / "vector_norms.svg",
             norms_svg(rep["vector"]["layers"], "per-layer ‖v‖₂"));
  md << ", [‖v‖ per layer](plots/vector_norms.svg)\n";
  rep["steps"] = {{"run", res.steps_run}, {"cached", res.steps_cached}};
  res.markdown = md.str();
  res.report = rep;
  write_file(out / "report.json", rep.dump(2) + "\n");
  write_file(out / "report.md", res.markdown);
  return res;
}

}  // namespace rv::eval
