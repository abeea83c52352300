#include "eval/report/report.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "common/error.h"
#include "common/file.h"
#include "common/text.h"
#include "eval/run/results.h"

namespace rv::eval {

namespace fs = std::filesystem;
using json = nlohmann::json;

double binomial_two_sided_p(int64_t k, int64_t n) {
  if (n <= 0) return 1.0;
  int64_t lo = std::min(k, n - k);
  // Sum the smaller tail in log space: C(n,i) / 2^n.
  double tail = 0;
  for (int64_t i = 0; i <= lo; ++i) {
    double lc = std::lgamma(static_cast<double>(n) + 1) - std::lgamma(static_cast<double>(i) + 1) -
                std::lgamma(static_cast<double>(n - i) + 1);
    tail += std::exp(lc - static_cast<double>(n) * std::log(2.0));
  }
  return std::min(1.0, 2 * tail);
}

McNemar mcnemar(int64_t b, int64_t c) {
  McNemar m;
  m.b = b;
  m.c = c;
  const int64_t n = b + c;
  if (n < 25) {
    m.exact = true;
    m.p_value = binomial_two_sided_p(std::min(b, c), n);
  } else {
    m.exact = false;
    double d = std::abs(static_cast<double>(b - c)) - 1.0;
    m.statistic = d * d / static_cast<double>(n);
    m.p_value = std::erfc(std::sqrt(m.statistic / 2.0));  // chi-square, 1 dof
  }
  return m;
}

namespace {

struct SplitMix {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
};

std::pair<double, double> percentile(std::vector<double> v, double level) {
  if (v.empty()) return {NAN, NAN};
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    double pos = q * static_cast<double>(v.size() - 1);
    size_t i = static_cast<size_t>(std::floor(pos));
    size_t j = std::min(i + 1, v.size() - 1);
    return v[i] + (pos - static_cast<double>(i)) * (v[j] - v[i]);
  };
  double a = (1 - level) / 2;
  return {at(a), at(1 - a)};
}

}  // namespace

std::pair<double, double> bootstrap_ci(const std::vector<double>& x, int B, uint64_t seed,
                                       double level) {
  if (x.empty()) return {NAN, NAN};
  SplitMix rng{seed};
  std::vector<double> means(static_cast<size_t>(B));
  for (auto& m : means) {
    double s = 0;
    for (size_t i = 0; i < x.size(); ++i) s += x[rng.below(x.size())];
    m = s / static_cast<double>(x.size());
  }
  return percentile(std::move(means), level);
}

std::pair<double, double> bootstrap_diff_ci(const std::vector<double>& x,
                                            const std::vector<double>& y, int B, uint64_t seed,
                                            double level) {
  if (x.empty() || x.size() != y.size()) return {NAN, NAN};
  SplitMix rng{seed};
  std::vector<double> d(static_cast<size_t>(B));
  for (auto& m : d) {
    double s = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      size_t k = rng.below(x.size());
      s += y[k] - x[k];
    }
    m = s / static_cast<double>(x.size());
  }
  return percentile(std::move(d), level);
}

namespace {

struct Sample {
  std::string group;
  double value = 0;  // primary metric; avg@K of it when the run sampled K > 1
  bool correct = false;
  double pass = NAN, maj = NAN;  // pass@K / maj@K of the primary metric, when present
};

struct Run {
  fs::path dir;
  std::string name;
  json results;
  std::map<std::string, std::map<std::string, Sample>> samples;  // task -> doc_id -> sample
  std::map<std::string, std::string> k;  // task -> K, for tasks sampled K > 1
};

// "avg@K:<metric>" among a sample's metrics: K, else "".
std::string sampled_k(const json& metrics, const std::string& metric) {
  const std::string tail = ":" + metric;
  for (const auto& [key, v] : metrics.items()) {
    if (key.rfind("avg@", 0) != 0 || key.size() <= 4 + tail.size()) continue;
    if (key.compare(key.size() - tail.size(), tail.size(), tail) != 0) continue;
    std::string k = key.substr(4, key.size() - 4 - tail.size());
    if (!k.empty() && std::all_of(k.begin(), k.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return k;
  }
  return "";
}

Run load_run(const fs::path& dir) {
  Run r;
  r.dir = dir;
  r.name = dir.filename().empty() ? dir.parent_path().filename().string() : dir.filename().string();
  fs::path rj = dir / "results.json";
  try {
    r.results = json::parse(read_file(rj));
  } catch (const json::exception& e) {
    throw Error(rj.string(), std::string("malformed JSON: ") + e.what());
  }
  if (!r.results.contains("results") || !r.results.contains("primary_metric"))
    throw Error(rj.string(), "not a reasonvec results.json (no \"results\"/\"primary_metric\")");
  for (const auto& [task, key] : r.results["primary_metric"].items()) {
    fs::path sp = dir / ("samples_" + task + ".jsonl");
    std::ifstream in(sp);
    if (!in) throw Error(sp.string(), "missing (the run directory is incomplete)");
    std::string line;
    size_t lineno = 0;
    const std::string metric = key.get<std::string>();
    auto& docs = r.samples[task];
    while (std::getline(in, line)) {
      ++lineno;
      if (line.empty()) continue;
      try {
        json s = json::parse(line);
        Sample x;
        x.group = s.value("group", "");
        x.correct = s.at("correct").get<bool>();
        const json& m = s.at("metrics");
        x.value = m.contains(metric) ? m[metric].get<double>() : (x.correct ? 1.0 : 0.0);
        // K > 1: compare on the per-document mean over the K samples.
        if (!r.k.count(task)) {
          std::string k = sampled_k(m, metric);
          if (!k.empty()) r.k[task] = k;
        }
        if (auto kt = r.k.find(task); kt != r.k.end()) {
          const std::string at = "@" + kt->second + ":" + metric;
          x.value = m.at("avg" + at).get<double>();
          if (m.contains("pass" + at)) x.pass = m["pass" + at].get<double>();
          if (m.contains("maj" + at)) x.maj = m["maj" + at].get<double>();
        }
        std::string id =
            s.at("doc_id").is_string() ? s["doc_id"].get<std::string>() : s["doc_id"].dump();
        docs[id] = x;
      } catch (const json::exception& e) {
        throw Error(sp.string() + ":" + std::to_string(lineno),
                    std::string("malformed sample: ") + e.what());
      }
    }
  }
  return r;
}

}  // namespace

json build_report(const std::vector<fs::path>& dirs, const ReportOptions& opt) {
  if (dirs.empty()) throw Error("report", "no run directories given");
  std::vector<Run> runs;
  for (const auto& d : dirs) runs.push_back(load_run(d));
  // Disambiguate equal directory names (a/run, b/run).
  for (size_t i = 0; i < runs.size(); ++i)
    for (size_t k = 0; k < i; ++k)
      if (runs[k].name == runs[i].name) runs[i].name += "#" + std::to_string(i + 1);

  json rep;
  rep["seed"] = opt.seed;
  rep["bootstrap"] = opt.bootstrap;
  rep["runs"] = json::array();
  for (const auto& r : runs) {
    const json& c = r.results.value("config", json::object());
    rep["runs"].push_back({{"name", r.name},
                           {"dir", r.dir.string()},
                           {"model", c.value("model", json(nullptr))},
                           {"backend", c.value("backend", json(nullptr))},
                           {"transforms", c.value("transforms", json::array())}});
  }
  rep["rows"] = json::array();
  const Run& base = runs[0];
  uint64_t row_seed = opt.seed;
  for (const auto& [task, metric] : base.results["primary_metric"].items()) {
    // Variants: the whole task, then each group in the first run.
    std::vector<std::string> variants = {""};
    for (const auto& [id, s] : base.samples.at(task))
      if (!s.group.empty() &&
          std::find(variants.begin(), variants.end(), s.group) == variants.end())
        variants.push_back(s.group);
    std::sort(variants.begin() + 1, variants.end());
    for (const auto& variant : variants) {
      json row = {{"task", task},
                  {"variant", variant.empty() ? "all" : variant},
                  {"entry", variant.empty() ? task : group_entry_name(task, variant)},
                  {"metric", metric},
                  {"runs", json::array()}};
      std::map<std::string, const Sample*> base_docs;
      for (const auto& [id, s] : base.samples.at(task))
        if (variant.empty() || s.group == variant) base_docs[id] = &s;
      ++row_seed;
      for (size_t ri = 0; ri < runs.size(); ++ri) {
        const Run& r = runs[ri];
        json cell = {{"run", r.name}};
        auto it = r.samples.find(task);
        if (it == r.samples.end()) {
          cell["missing"] = true;
          row["runs"].push_back(cell);
          continue;
        }
        std::vector<double> vals, pass, maj;
        for (const auto& [id, s] : it->second)
          if (variant.empty() || s.group == variant) {
            vals.push_back(s.value);
            pass.push_back(s.pass);
            maj.push_back(s.maj);
          }
        double sum = 0;
        for (double v : vals) sum += v;
        double acc = vals.empty() ? NAN : sum / static_cast<double>(vals.size());
        auto ci = bootstrap_ci(vals, opt.bootstrap, row_seed * 1000003 + ri);
        cell["n"] = vals.size();
        cell["accuracy"] = acc;
        cell["ci95"] = {ci.first, ci.second};
        // K > 1: accuracy is avg@K (the bootstrap resamples documents, each
        // with its mean over the K samples); pass@K and maj@K beside it.
        const auto kt = r.k.find(task);
        std::string value_key = metric.get<std::string>();
        if (kt != r.k.end()) {
          value_key = "avg@" + kt->second + ":" + value_key;
          cell["k"] = std::stoi(kt->second);
          cell["value_metric"] = value_key;
          auto mean_of = [&](const std::vector<double>& v, const char* name, uint64_t salt) {
            double t = 0;
            for (double x : v) {
              if (std::isnan(x)) return;  // some document lacks it
              t += x;
            }
            if (v.empty()) return;
            auto c = bootstrap_ci(v, opt.bootstrap, row_seed * 1000003 + ri + salt);
            cell[name] = t / static_cast<double>(v.size());
            cell[std::string(name) + "_ci95"] = {c.first, c.second};
          };
          mean_of(pass, "pass_at_k", 104729);
          mean_of(maj, "maj_at_k", 224737);
        }
        // The value results.json reports, for cross-checking.
        std::string entry = row["entry"];
        if (r.results["results"].contains(entry) && r.results["results"][entry].contains(value_key))
          cell["results_value"] = r.results["results"][entry][value_key];
        if (ri > 0) {
          std::vector<double> x, y;
          int64_t b = 0, c = 0;
          for (const auto& [id, s0] : base_docs) {
            auto jt = it->second.find(id);
            if (jt == it->second.end()) continue;
            x.push_back(s0->value);
            y.push_back(jt->second.value);
            if (s0->correct && !jt->second.correct) ++b;
            if (!s0->correct && jt->second.correct) ++c;
          }
          double dx = 0, dy = 0;
          for (size_t i = 0; i < x.size(); ++i) {
            dx += x[i];
            dy += y[i];
          }
          auto dci = bootstrap_diff_ci(x, y, opt.bootstrap, row_seed * 1000003 + 7919 * ri);
          McNemar m = mcnemar(b, c);
          cell["n_paired"] = x.size();
          cell["delta"] =
              x.empty() ? json(nullptr) : json((dy - dx) / static_cast<double>(x.size()));
          cell["delta_ci95"] = {dci.first, dci.second};
          if (base.k.count(task) || kt != r.k.end())
            // avg@K is not a per-document right/wrong: McNemar does not apply
            // (the paired bootstrap above is over per-document avg@K).
            cell["mcnemar"] = nullptr;
          else
            cell["mcnemar"] = {{"b", m.b},
                               {"c", m.c},
                               {"exact", m.exact},
                               {"statistic", m.statistic},
                               {"p_value", m.p_value}};
        }
        row["runs"].push_back(cell);
      }
      rep["rows"].push_back(row);
    }
  }
  return rep;
}

namespace {

std::string pct(const json& v) {
  if (!v.is_number() || !std::isfinite(v.get<double>())) return "–";
  char b[32];
  snprintf(b, sizeof b, "%.1f", 100 * v.get<double>());
  return b;
}
std::string signed_pct(const json& v) {
  if (!v.is_number() || !std::isfinite(v.get<double>())) return "–";
  char b[32];
  snprintf(b, sizeof b, "%+.1f", 100 * v.get<double>());
  return b;
}
std::string pval(double p) {
  char b[32];
  if (p < 1e-4)
    snprintf(b, sizeof b, "%.1e", p);
  else
    snprintf(b, sizeof b, "%.4f", p);
  return b;
}

}  // namespace

std::string report_markdown(const json& rep) {
  std::ostringstream md;
  md << "# Evaluation report\n\nRuns (deltas and tests are against the first):\n\n";
  for (size_t i = 0; i < rep["runs"].size(); ++i) {
    const json& r = rep["runs"][i];
    md << i + 1 << ". **" << r["name"].get<std::string>() << "** — `" << r["dir"].get<std::string>()
       << "`";
    if (r["model"].is_string()) md << ", model " << r["model"].get<std::string>();
    if (!r["transforms"].empty()) md << ", transforms " << r["transforms"].dump();
    md << "\n";
  }
  // Runs with K > 1 samples per document get K, pass@K and maj@K columns
  // (the table of K = 1 runs is unchanged).
  bool sampled = false;
  for (const auto& row : rep["rows"])
    for (const auto& c : row["runs"]) sampled |= c.contains("k");
  md << "\nAccuracy in %, bootstrap 95% CI (" << rep["bootstrap"].get<int>() << " resamples, seed "
     << rep["seed"].get<uint64_t>()
     << "); Δ in points with a paired bootstrap 95% CI; McNemar p on per-document "
     << "correctness (b = only the first run right, c = only this run right).\n\n";
  if (sampled) {
    md << "Runs with K > 1 samples per document: Accuracy is avg@K, the mean over the K "
       << "samples; its CI and Δ resample documents (each with its avg@K), not samples; "
       << "pass@K and maj@K beside it. McNemar needs one right/wrong per document and is "
       << "not computed where a run is sampled.\n\n";
    md << "| Task | Variant | Run | n | K | Accuracy | 95% CI | pass@K | maj@K | Δ | Δ 95% CI | b "
          "/ c | McNemar p |\n";
    md << "|---|---|---|---:|---:|---:|---|---:|---:|---:|---|---:|---:|\n";
  } else {
    md << "| Task | Variant | Run | n | Accuracy | 95% CI | Δ | Δ 95% CI | b / c | McNemar p |\n";
    md << "|---|---|---|---:|---:|---|---:|---|---:|---:|\n";
  }
  for (const auto& row : rep["rows"]) {
    for (const auto& c : row["runs"]) {
      md << "| " << row["task"].get<std::string>() << " | " << row["variant"].get<std::string>()
         << " | " << c["run"].get<std::string>() << " | ";
      if (c.contains("missing")) {
        md << (sampled ? "– | | missing | | | | | | | |\n" : "– | missing | | | | | |\n");
        continue;
      }
      if (sampled) {
        md << c["n"].get<size_t>() << " | " << c.value("k", 1) << " | " << pct(c["accuracy"])
           << " | [" << pct(c["ci95"][0]) << ", " << pct(c["ci95"][1]) << "] | "
           << pct(c.value("pass_at_k", json(nullptr))) << " | "
           << pct(c.value("maj_at_k", json(nullptr))) << " | ";
      } else {
        md << c["n"].get<size_t>() << " | " << pct(c["accuracy"]) << " | [" << pct(c["ci95"][0])
           << ", " << pct(c["ci95"][1]) << "] | ";
      }
      if (c.contains("delta") && c["mcnemar"].is_null()) {
        md << signed_pct(c["delta"]) << " | [" << signed_pct(c["delta_ci95"][0]) << ", "
           << signed_pct(c["delta_ci95"][1]) << "] | – | – |\n";
      } else if (c.contains("delta")) {
        const json& m = c["mcnemar"];
        md << signed_pct(c["delta"]) << " | [" << signed_pct(c["delta_ci95"][0]) << ", "
           << signed_pct(c["delta_ci95"][1]) << "] | " << m["b"].get<int64_t>() << " / "
           << m["c"].get<int64_t>() << " | " << pval(m["p_value"].get<double>())
           << (m["exact"].get<bool>() ? " (exact)" : "") << " |\n";
      } else {
        md << " | | | |\n";
      }
    }
  }
  return md.str();
}

std::string report_svg(const json& rep) {
  static const char* kColors[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759",
                                  "#76b7b2", "#edc948", "#b07aa1"};
  const size_t nruns = rep["runs"].size();
  const size_t nrows = rep["rows"].size();
  const double bar_w = 14, gap = 18, left = 60, top = 40, plot_h = 260, bottom = 170;
  const double group_w = static_cast<double>(nruns) * bar_w + gap;
  const double width = left + static_cast<double>(nrows) * group_w + 20;
  const double height = top + plot_h + bottom;
  std::ostringstream s;
  char buf[256];
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
    << "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << "<text x=\"" << left
    << "\" y=\"20\" font-size=\"14\">Accuracy with bootstrap 95% CI</text>\n";
  for (int t = 0; t <= 4; ++t) {  // y axis grid: 0, 25, 50, 75, 100 %
    double y = top + plot_h - plot_h * t / 4.0;
    snprintf(buf, sizeof buf,
             "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text "
             "x=\"%.1f\" y=\"%.1f\" "
             "text-anchor=\"end\">%d%%</text>\n",
             left, y, width - 20, y, left - 6, y + 4, t * 25);
    s << buf;
  }
  for (size_t g = 0; g < nrows; ++g) {
    const json& row = rep["rows"][g];
    double x0 = left + static_cast<double>(g) * group_w + gap / 2;
    for (size_t r = 0; r < row["runs"].size(); ++r) {
      const json& c = row["runs"][r];
      if (!c.contains("accuracy") || !c["accuracy"].is_number()) continue;
      double acc = c["accuracy"].get<double>();
      double x = x0 + static_cast<double>(r) * bar_w;
      double h = plot_h * acc;
      snprintf(buf, sizeof buf,
               "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s: "
               "%.1f%%</title></rect>\n",
               x, top + plot_h - h, bar_w - 2, h, kColors[r % 7],
               text::xml_escape(c["run"].get<std::string>()).c_str(), 100 * acc);
      s << buf;
      if (c["ci95"][0].is_number() && c["ci95"][1].is_number()) {
        double lo = top + plot_h - plot_h * c["ci95"][0].get<double>();
        double hi = top + plot_h - plot_h * c["ci95"][1].get<double>();
        double cx = x + (bar_w - 2) / 2;
        snprintf(buf, sizeof buf,
                 "<path d=\"M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f\" stroke=\"#222\" "
                 "fill=\"none\"/>\n",
                 cx, lo, hi, cx - 3, lo, cx + 3, cx - 3, hi, cx + 3);
        s << buf;
      }
    }
    std::string label = row["task"].get<std::string>();
    if (row["variant"] != "all") label += " / " + row["variant"].get<std::string>();
    double lx = x0 + static_cast<double>(nruns) * bar_w / 2, ly = top + plot_h + 10;
    snprintf(buf, sizeof buf, "<text transform=\"translate(%.1f,%.1f) rotate(45)\">", lx, ly);
    s << buf << text::xml_escape(label) << "</text>\n";
  }
  double ly = top + plot_h + bottom - 12.0 * static_cast<double>(nruns);
  for (size_t r = 0; r < nruns; ++r) {
    snprintf(buf, sizeof buf,
             "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/>", left,
             ly + 12.0 * static_cast<double>(r) - 9, kColors[r % 7]);
    s << buf << "<text x=\"" << left + 14 << "\" y=\"" << ly + 12.0 * static_cast<double>(r)
      << "\">" << text::xml_escape(rep["runs"][r]["name"].get<std::string>()) << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

void write_report(const json& rep, const fs::path& md_path) {
  fs::path base = md_path;
  write_file_atomic(base, report_markdown(rep));
  write_file_atomic(fs::path(base).replace_extension(".json"),
                    rep.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
  write_file_atomic(fs::path(base).replace_extension(".svg"), report_svg(rep));
}

}  // namespace rv::eval
