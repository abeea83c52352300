#include "lab/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

#include "common/error.h"
#include "common/file.h"
#include "common/text.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace rv::lab {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Two-sided 95% Student-t quantiles t_{0.975, df}, df = 1..30.
constexpr double kT975[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                            2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                            2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};

std::string alpha_text(double a) {
  char b[32];
  std::snprintf(b, sizeof b, "%+g", a);
  return b;
}

std::string pct(double x) {
  if (!std::isfinite(x)) return "–";
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", 100 * x);
  return b;
}
std::string spct(double x) {
  if (!std::isfinite(x)) return "–";
  char b[32];
  std::snprintf(b, sizeof b, "%+.1f", 100 * x);
  return b;
}

double num(const json& j, const char* k) {
  return j.contains(k) && j[k].is_number() ? j[k].get<double>() : kNaN;
}

std::vector<json> read_jsonl(const fs::path& p) {
  std::vector<json> out;
  if (!fs::exists(p)) return out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

// NaN (no interval from one seed) is written as null: JSON has no NaN.
json finite_or_null(double x) {
  return std::isfinite(x) ? json(x) : json(nullptr);
}
json ci_json(const MeanCi& m) {
  return {{"mean", finite_or_null(m.mean)},
          {"lo", finite_or_null(m.lo)},
          {"hi", finite_or_null(m.hi)},
          {"n", m.n}};
}

}  // namespace

MeanCi mean_t_ci(const std::vector<double>& xs) {
  MeanCi r;
  r.n = static_cast<int>(xs.size());
  if (xs.empty()) {
    r.mean = r.lo = r.hi = kNaN;
    return r;
  }
  double s = 0;
  for (double x : xs) s += x;
  r.mean = s / xs.size();
  if (xs.size() < 2) {
    r.lo = r.hi = kNaN;
    return r;
  }
  double ss = 0;
  for (double x : xs) ss += (x - r.mean) * (x - r.mean);
  const double sd = std::sqrt(ss / (xs.size() - 1));
  const size_t df = xs.size() - 1;
  const double t = df <= 30 ? kT975[df - 1] : 1.96;
  r.lo = r.mean - t * sd / std::sqrt(static_cast<double>(xs.size()));
  r.hi = r.mean + t * sd / std::sqrt(static_cast<double>(xs.size()));
  return r;
}

json build_lab_report(const LabConfig& c, const std::vector<SeedSummary>& seeds) {
  json rep;
  rep["config"] = c.to_json();
  rep["preset"] = c.preset;
  rep["source"] = c.source;
  rep["seeds"] = json::array();
  for (const auto& s : seeds) rep["seeds"].push_back(s.seed);
  rep["splits"] = c.eval.splits;
  for (const std::string& init : c.grpo.init) {
    json& R = rep["grpo_init"][init];
    // Siblings: rows "sft" α=0 (SFT) and "v" α=+1 (= the GRPO model), paired.
    for (const std::string& split : c.eval.splits) {
      json per = json::array();
      std::vector<double> deltas;
      for (const auto& s : seeds) {
        auto it = s.experiments.find("siblings-" + init);
        if (it == s.experiments.end()) continue;
        json e = {{"seed", s.seed}};
        for (const auto& row : it->second["rows"]) {
          if (!row["cells"].contains(split)) continue;
          const json& cell = row["cells"][split];
          if (row["vector"] == "base") e["sft"] = finite_or_null(num(cell, "accuracy"));
          if (row["vector"] == "v" && row["alpha"].get<double>() == 1) {
            e["grpo"] = finite_or_null(num(cell, "accuracy"));
            e["delta"] = finite_or_null(num(cell, "delta"));
            e["delta_ci95"] = cell.value("delta_ci95", json::array());
            e["n"] = cell.value("n", 0);
            if (std::isfinite(num(cell, "delta"))) deltas.push_back(num(cell, "delta"));
          }
        }
        per.push_back(e);
      }
      R["siblings"][split] = {{"per_seed", per}, {"delta", ci_json(mean_t_ci(deltas))}};
    }
    // Transfer: every target row but the base, keyed "v α=+1", "random α=+1", ...
    std::map<std::string, std::map<std::string, std::pair<json, std::vector<double>>>> rows;
    std::map<std::string, std::pair<json, std::vector<double>>> base_acc;
    std::vector<std::string> order;
    for (const auto& s : seeds) {
      auto it = s.experiments.find("transfer-" + init);
      if (it == s.experiments.end()) continue;
      for (const auto& row : it->second["rows"]) {
        const std::string vec = row["vector"].get<std::string>();
        const double a = row["alpha"].get<double>();
        for (const std::string& split : c.eval.splits) {
          if (!row["cells"].contains(split)) continue;
          const json& cell = row["cells"][split];
          if (vec == "base") {
            auto& b = base_acc[split];
            if (b.first.is_null()) b.first = json::array();
            b.first.push_back(
                {{"seed", s.seed}, {"accuracy", finite_or_null(num(cell, "accuracy"))}});
            b.second.push_back(num(cell, "accuracy"));
            continue;
          }
          const std::string key = vec + " α=" + alpha_text(a);
          if (std::find(order.begin(), order.end(), key) == order.end()) order.push_back(key);
          auto& r = rows[key][split];
          if (r.first.is_null()) r.first = json::array();
          r.first.push_back({{"seed", s.seed},
                             {"accuracy", finite_or_null(num(cell, "accuracy"))},
                             {"delta", finite_or_null(num(cell, "delta"))},
                             {"delta_ci95", cell.value("delta_ci95", json::array())}});
          if (std::isfinite(num(cell, "delta"))) r.second.push_back(num(cell, "delta"));
        }
      }
    }
    for (const auto& [split, b] : base_acc)
      R["target"][split] = {{"per_seed", b.first}, {"accuracy", ci_json(mean_t_ci(b.second))}};
    json tr = json::array();
    for (const std::string& key : order) {
      json r = {{"variant", key}};
      for (const auto& [split, v] : rows[key])
        r["splits"][split] = {{"per_seed", v.first}, {"delta", ci_json(mean_t_ci(v.second))}};
      tr.push_back(r);
    }
    R["transfer"] = tr;
  }
  return rep;
}

std::string lab_markdown(const json& rep) {
  std::ostringstream md;
  const auto& splits = rep["splits"];
  md << "# Lab: reasoning-vector transfer\n\n";
  md << "Preset `" << rep["preset"].get<std::string>() << "`, config `"
     << rep["source"].get<std::string>() << "`, seeds " << rep["seeds"].dump() << ".\n\n";
  md << "Cells: accuracy % (mean over seeds); Δ = paired difference in points on the same held-out "
        "problems, mean over seeds with a Student-t 95% interval over seeds (with one seed: that "
        "seed's paired bootstrap 95% interval, marked bs).\n";
  for (const auto& [init, R] : rep["grpo_init"].items()) {
    md << "\n## GRPO from " << init << "\n\n";
    md << "### Siblings: GRPO against SFT\n\n| | ";
    for (const auto& s : splits) md << s.get<std::string>() << " | ";
    md << "\n|---|";
    for (size_t i = 0; i < splits.size(); ++i) md << "---|";
    auto acc_mean = [&](const json& per, const char* k) {
      double s = 0;
      int n = 0;
      for (const auto& e : per)
        if (e.contains(k) && e[k].is_number()) s += e[k].get<double>(), ++n;
      return n ? s / n : kNaN;
    };
    // Across seeds: the t interval; with one seed, that seed's paired
    // bootstrap interval (marked "bs").
    auto delta_text = [&](const json& x) {
      const json& d = x["delta"];
      std::string t = "Δ " + spct(num(d, "mean"));
      if (std::isfinite(num(d, "lo"))) {
        t += " [" + spct(num(d, "lo")) + ", " + spct(num(d, "hi")) + "]";
      } else if (x["per_seed"].size() == 1 && x["per_seed"][0].contains("delta_ci95") &&
                 x["per_seed"][0]["delta_ci95"].size() == 2) {
        const json& ci = x["per_seed"][0]["delta_ci95"];
        t += " [" + spct(ci[0].get<double>()) + ", " + spct(ci[1].get<double>()) + "] bs";
      }
      return t;
    };
    for (const char* who : {"sft", "grpo"}) {
      md << "\n| " << (std::string(who) == "sft" ? "SFT sibling" : "GRPO sibling") << " | ";
      for (const auto& s : splits) {
        const json& x = R["siblings"][s.get<std::string>()];
        md << pct(acc_mean(x["per_seed"], who));
        if (std::string(who) == "grpo") md << " (" << delta_text(x) << ")";
        md << " | ";
      }
    }
    md << "\n\n### Transfer: the target + α·v (v = θ_GRPO − θ_SFT)\n\n| | ";
    for (const auto& s : splits) md << s.get<std::string>() << " | ";
    md << "\n|---|";
    for (size_t i = 0; i < splits.size(); ++i) md << "---|";
    md << "\n| target | ";
    for (const auto& s : splits) {
      const std::string k = s.get<std::string>();
      md << (R.contains("target") && R["target"].contains(k)
                 ? pct(num(R["target"][k]["accuracy"], "mean"))
                 : "–")
         << " | ";
    }
    for (const auto& r : R["transfer"]) {
      md << "\n| target + " << r["variant"].get<std::string>() << " | ";
      for (const auto& s : splits) {
        const std::string k = s.get<std::string>();
        if (!r.contains("splits") || !r["splits"].contains(k)) {
          md << "– | ";
          continue;
        }
        const json& x = r["splits"][k];
        md << pct(acc_mean(x["per_seed"], "accuracy")) << " (" << delta_text(x) << ") | ";
      }
    }
    md << "\n";
  }
  md << "\nPlots: plots/training_loss.svg, plots/grpo_reward.svg, plots/grpo_kl.svg, "
        "plots/transfer_<split>.svg. Per-seed numbers: lab_report.json.\n";
  return md.str();
}

std::string line_svg(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                     const std::vector<Series>& series) {
  const double W = 640, H = 400, L = 70, R = 160, T = 40, B = 50;
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y)) {
        x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad, y1 += pad;
  auto X = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto Y = [&](double y) { return T + (1 - (y - y0) / (y1 - y0)) * (H - T - B); };
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
       "fill=\"white\"/>\n";
  s << "<text x=\"" << (W - R + L) / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">"
    << text::xml_escape(title) << "</text>\n";
  for (int i = 0; i <= 4; ++i) {
    const double v = y0 + (y1 - y0) * i / 4;
    char lab[32];
    std::snprintf(lab, sizeof lab, "%.3g", v);
    s << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << Y(v) << "\" y2=\"" << Y(v)
      << "\" stroke=\"#ddd\"/><text x=\"" << L - 6 << "\" y=\"" << Y(v) + 4
      << "\" text-anchor=\"end\">" << lab << "</text>\n";
  }
  for (int i = 0; i <= 4; ++i) {
    const double v = x0 + (x1 - x0) * i / 4;
    char lab[32];
    std::snprintf(lab, sizeof lab, "%.3g", v);
    s << "<text x=\"" << X(v) << "\" y=\"" << H - B + 16 << "\" text-anchor=\"middle\">" << lab
      << "</text>\n";
  }
  s << "<text x=\"" << (W - R + L) / 2 << "\" y=\"" << H - 12 << "\" text-anchor=\"middle\">"
    << text::xml_escape(xlabel) << "</text>\n<text x=\"16\" y=\"" << (H - B + T) / 2
    << "\" transform=\"rotate(-90 16 " << (H - B + T) / 2 << ")\" text-anchor=\"middle\">"
    << text::xml_escape(ylabel) << "</text>\n";
  for (size_t i = 0; i < series.size(); ++i) {
    const char* col = colors[i % 10];
    s << "<polyline fill=\"none\" stroke=\"" << col << "\" stroke-width=\"1.5\" points=\"";
    for (const auto& [x, y] : series[i].points)
      if (std::isfinite(x) && std::isfinite(y)) s << X(x) << "," << Y(y) << " ";
    s << "\"/>\n";
    for (const auto& [x, y] : series[i].points)
      if (std::isfinite(x) && std::isfinite(y) && series[i].points.size() <= 12)
        s << "<circle cx=\"" << X(x) << "\" cy=\"" << Y(y) << "\" r=\"3\" fill=\"" << col
          << "\"/>\n";
    s << "<rect x=\"" << W - R + 10 << "\" y=\"" << T + 18 * i
      << "\" width=\"12\" height=\"3\" fill=\"" << col << "\"/><text x=\"" << W - R + 28
      << "\" y=\"" << T + 18 * i + 5 << "\">" << text::xml_escape(series[i].name) << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

void write_lab_report(const fs::path& out, const json& rep, const std::string& markdown,
                      const std::vector<SeedSummary>& seeds) {
  write_file_atomic(out / "lab_report.json", rep.dump(1) + "\n");
  write_file_atomic(out / "lab_report.md", markdown);
  fs::create_directories(out / "plots");
  // Training curves: the supervised stages' losses, and GRPO's reward and KL.
  std::vector<Series> loss, reward, kl;
  for (const auto& s : seeds)
    for (const auto& [stage, dir] : s.stages) {
      const auto log = read_jsonl(dir / "train_log.jsonl");
      const std::string name = stage + " s" + std::to_string(s.seed);
      if (stage.rfind("grpo", 0) == 0) {
        Series r{name + " reward", {}}, a{name + " acc", {}}, k{name, {}};
        for (const auto& e : log) {
          r.points.push_back({num(e, "step"), num(e, "reward")});
          k.points.push_back({num(e, "step"), num(e, "kl")});
        }
        reward.push_back(r);
        kl.push_back(k);
      } else {
        Series l{name, {}};
        for (const auto& e : log) l.points.push_back({num(e, "step"), num(e, "loss")});
        loss.push_back(l);
      }
    }
  write_file_atomic(out / "plots" / "training_loss.svg",
                    line_svg("Training loss", "step", "cross-entropy", loss));
  write_file_atomic(out / "plots" / "grpo_reward.svg",
                    line_svg("GRPO mean reward", "step", "reward", reward));
  write_file_atomic(out / "plots" / "grpo_kl.svg",
                    line_svg("GRPO KL to reference", "step", "KL (k3)", kl));
  // Transfer: mean Δ over seeds by α, per split, v against the random control.
  for (const auto& sp : rep["splits"]) {
    const std::string split = sp.get<std::string>();
    std::vector<Series> ss;
    for (const auto& [init, R] : rep["grpo_init"].items()) {
      std::map<std::string, Series> by;
      for (const auto& r : R["transfer"]) {
        const std::string key = r["variant"].get<std::string>();
        const std::string vec = key.substr(0, key.find(" α="));
        const double a = std::stod(key.substr(key.find("=") + 1));
        if (!r.contains("splits") || !r["splits"].contains(split)) continue;
        auto& s = by[vec];
        s.name = vec + " (grpo from " + init + ")";
        s.points.push_back({a, 100 * num(r["splits"][split]["delta"], "mean")});
      }
      for (auto& [_, s] : by) {
        s.points.push_back({0, 0});
        std::sort(s.points.begin(), s.points.end());
        ss.push_back(s);
      }
    }
    write_file_atomic(
        out / "plots" / ("transfer_" + split + ".svg"),
        line_svg("Target accuracy change, " + split, "alpha", "Δ accuracy (points)", ss));
  }
}

}  // namespace rv::lab
