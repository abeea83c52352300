#include "experiment/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <set>
#include <sstream>

#include "common/file.h"
#include "common/text.h"

namespace rv::experiment {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string format_alpha(double a) {
  char b[32];
  snprintf(b, sizeof b, "%+g", a);
  return b;
}

namespace {

std::string pct(std::optional<double> x) {
  if (!x) return "–";
  char b[32];
  snprintf(b, sizeof b, "%.1f", 100 * *x);
  return b;
}
std::string spct(std::optional<double> x) {
  if (!x) return "–";
  char b[32];
  snprintf(b, sizeof b, "%+.1f", 100 * *x);
  return b;
}

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                         "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

// A cell of eval::build_report's row["runs"] (see report.cpp there).
Cell cell_from(const json& c, const json& metric, const fs::path& run_dir) {
  Cell x;
  x.run_dir = run_dir.string();
  x.metric = metric.get<std::string>();
  if (c.contains("missing")) {
    x.missing = true;
    return x;
  }
  x.n = c["n"].get<size_t>();
  x.accuracy = c["accuracy"].get<double>();
  x.ci95 = {c["ci95"][0].get<double>(), c["ci95"][1].get<double>()};
  if (c.contains("results_value")) x.results_value = c["results_value"];
  if (c.contains("mcnemar")) {
    x.paired = true;
    x.n_paired = c["n_paired"].get<size_t>();
    if (c["delta"].is_number()) x.delta = c["delta"].get<double>();
    x.delta_ci95 = {c["delta_ci95"][0].get<double>(), c["delta_ci95"][1].get<double>()};
    const json& m = c["mcnemar"];
    x.has_mcnemar = m.is_object();
    if (x.has_mcnemar) {
      x.mcnemar.b = m["b"].get<int64_t>();
      x.mcnemar.c = m["c"].get<int64_t>();
      x.mcnemar.exact = m["exact"].get<bool>();
      x.mcnemar.statistic = m["statistic"].get<double>();
      x.mcnemar.p_value = m["p_value"].get<double>();
    }
  }
  return x;
}

json cell_json(const Cell& x) {
  json c = {{"run_dir", x.run_dir}, {"metric", x.metric}};
  if (x.missing) {
    c["missing"] = true;
    return c;
  }
  c["n"] = x.n;
  c["accuracy"] = x.accuracy;
  c["ci95"] = {x.ci95.first, x.ci95.second};
  if (x.results_value) c["results_value"] = *x.results_value;
  if (x.paired) {
    c["n_paired"] = x.n_paired;
    c["delta"] = x.delta ? json(*x.delta) : json(nullptr);
    c["delta_ci95"] = {x.delta_ci95.first, x.delta_ci95.second};
    c["mcnemar"] = !x.has_mcnemar ? json(nullptr)
                                  : json{{"b", x.mcnemar.b},
                                         {"c", x.mcnemar.c},
                                         {"exact", x.mcnemar.exact},
                                         {"statistic", x.mcnemar.statistic},
                                         {"p_value", x.mcnemar.p_value}};
  }
  return c;
}

// "accuracy [lo, hi] (Δ d [lo, hi])", or "–" for a cell without numbers.
std::string cell_text(const Cell* c) {
  if (!c || c->missing) return "–";
  std::string s = pct(c->accuracy) + " [" + pct(c->ci95.first) + ", " + pct(c->ci95.second) + "]";
  if (c->paired)
    s += " (Δ " + spct(c->delta) + " [" + spct(c->delta_ci95.first) + ", " +
         spct(c->delta_ci95.second) + "])";
  return s;
}

// The opening of an accuracy plot: the SVG element, a white background, the
// title and horizontal grid lines at 0, 25, ..., 100 % (y = Y(accuracy)).
void accuracy_frame(std::ostringstream& s, double W, double H, double L, double pw,
                    const std::function<double(double)>& Y, const std::string& title_xml) {
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
       "fill=\"white\"/>\n";
  s << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" << title_xml
    << "</text>\n";
  for (int i = 0; i <= 4; ++i) {
    double v = i / 4.0;
    s << "<line x1=\"" << L << "\" x2=\"" << L + pw << "\" y1=\"" << Y(v) << "\" y2=\"" << Y(v)
      << "\" stroke=\"#ddd\"/><text x=\"" << L - 6 << "\" y=\"" << Y(v) + 4
      << "\" text-anchor=\"end\">" << 100 * v << "%</text>\n";
  }
}

const TaskCells* cells_of(const Row& r, const std::string& label) {
  auto it = r.cells.find(label);
  return it == r.cells.end() ? nullptr : &it->second;
}

}  // namespace

void add_task_cells(const std::vector<Row*>& rows, const std::vector<fs::path>& run_dirs,
                    const std::string& task_name, const std::string& task_label,
                    const eval::ReportOptions& stats) {
  json br = eval::build_report(run_dirs, stats);
  for (const auto& row : br["rows"]) {
    if (row["task"] != task_name) continue;
    for (size_t m = 0; m < rows.size(); ++m) {
      Cell cell = cell_from(row["runs"][m], row["metric"], run_dirs[m]);
      TaskCells& dst = rows[m]->cells[task_label];
      if (row["variant"] == "all")
        dst.all = std::move(cell);
      else
        dst.groups[row["variant"].get<std::string>()] = std::move(cell);
    }
  }
}

json to_json(const Report& r) {
  json rep;
  rep["config"] = r.config;
  json layers = json::array();
  for (const auto& [l, v] : r.vector_layers) layers.push_back({{"layer", l}, {"l2", v}});
  rep["vector"] = {{"path", r.vector_path},
                   {"layers", layers},
                   {"total_l2", r.vector_total_l2},
                   {"other_l2", r.vector_other_l2}};
  if (r.random_control)
    rep["random_control"] = {{"path", r.random_control->first}, {"seed", r.random_control->second}};
  rep["alphas"] = r.alphas;
  rep["tasks"] = json::array();
  for (const auto& t : r.tasks)
    rep["tasks"].push_back({{"label", t.label},
                            {"name", t.name},
                            {"limit", t.limit},
                            {"seed", t.seed},
                            {"transforms", t.transforms},
                            {"cot_hint", t.cot_hint},
                            {"chat_template", t.chat_template}});
  rep["rows"] = json::array();
  for (const auto& row : r.rows) {
    json cells = json::object();
    for (const auto& [label, tc] : row.cells) {
      json c = tc.all ? cell_json(*tc.all) : json::object();
      for (const auto& [g, gc] : tc.groups) c["groups"][g] = cell_json(gc);
      cells[label] = c;
    }
    rep["rows"].push_back({{"label", row.label},
                           {"target", row.target},
                           {"vector", row.vector},
                           {"alpha", row.alpha},
                           {"model_dir", row.model_dir},
                           {"cells", cells}});
    json& jr = rep["rows"].back();
    if (!row.form.empty()) {
      jr["form"] = row.form;
      jr["delta"] = row.delta;
      jr["in_memory"] = row.in_memory;
      if (row.rank) jr["rank"] = row.rank;
      if (row.energy > 0) jr["energy"] = row.energy;
      if (row.density > 0) jr["density"] = row.density;
    }
  }
  rep["steps"] = {{"run", r.steps_run}, {"cached", r.steps_cached}};
  return rep;
}

std::string to_markdown(const Report& r) {
  std::ostringstream md;
  md << "# Reasoning-vector transfer\n\nConfig: `" << r.config << "`, vector: `" << r.vector_path
     << "` (‖v‖ = " << r.vector_total_l2 << ")\n\n";
  md << "Cells: accuracy % [bootstrap 95% CI]; for variants, Δ vs the target at α=0 on the same "
        "documents "
        "[paired bootstrap 95% CI] ("
     << r.stats.bootstrap << " resamples, seed " << r.stats.seed << ").\n\n";
  const bool forms = std::any_of(r.rows.begin(), r.rows.end(),
                                 [](const Row& x) { return !x.form.empty() && x.form != "full"; });
  const bool in_memory =
      std::any_of(r.rows.begin(), r.rows.end(), [](const Row& x) { return x.in_memory; });
  if (in_memory)
    md << "Variants marked in memory were evaluated by the built-in engine with the vector "
          "applied to the target's weights at load time (no model directory written).\n\n";
  md << "| model |" << (forms ? " form |" : "");
  for (const auto& t : r.tasks) md << " " << t.label << " |";
  md << "\n|---|" << (forms ? "---|" : "");
  for (size_t k = 0; k < r.tasks.size(); ++k) md << "---|";
  md << "\n";
  bool any_groups = false;
  for (const auto& row : r.rows) {
    md << "| " << row.label << " |";
    if (forms)
      md << " " << (row.form.empty() ? "–" : row.form) << (row.in_memory ? " (in memory)" : "")
         << " |";
    for (const auto& t : r.tasks) {
      const TaskCells* tc = cells_of(row, t.label);
      if (tc && !tc->groups.empty()) any_groups = true;
      md << " " << cell_text(tc && tc->all ? &*tc->all : nullptr) << " |";
    }
    md << "\n";
  }
  if (any_groups) {
    md << "\n## Breakdown by subtask / perturbation\n";
    for (const auto& t : r.tasks) {
      std::set<std::string> gs;
      for (const auto& row : r.rows)
        if (const TaskCells* tc = cells_of(row, t.label))
          for (const auto& [g, _] : tc->groups) gs.insert(g);
      if (gs.empty()) continue;
      md << "\n### " << t.label << "\n\n| model |";
      for (const auto& g : gs) md << " " << g << " |";
      md << "\n|---|";
      for (size_t i = 0; i < gs.size(); ++i) md << "---|";
      md << "\n";
      for (const auto& row : r.rows) {
        md << "| " << row.label << " |";
        const TaskCells* tc = cells_of(row, t.label);
        for (const auto& g : gs) {
          auto it = tc ? tc->groups.find(g) : decltype(tc->groups.end()){};
          md << " " << (tc && it != tc->groups.end() ? cell_text(&it->second) : "–") << " |";
        }
        md << "\n";
      }
    }
  }
  md << "\nPlots:";
  for (const auto& t : r.tasks) md << " [" << t.label << "](plots/accuracy_" << t.label << ".svg)";
  for (const char* p : {"rank", "density"})
    for (const auto& t : r.tasks)
      if (!sweep_svg(r, t.label, p).empty())
        md << " [" << t.label << " vs " << p << "](plots/accuracy_vs_" << p << "_" << t.label
           << ".svg)";
  md << ", [‖v‖ per layer](plots/vector_norms.svg)\n";
  return md.str();
}

std::string accuracy_svg(const Report& rep, const std::string& task) {
  std::map<std::string, std::vector<std::pair<double, double>>> series;
  std::map<std::string, std::string> series_target;
  double amin = 0, amax = 0;
  std::map<std::string, double> base_acc;
  for (const auto& r : rep.rows) {
    const TaskCells* tc = cells_of(r, task);
    if (!tc || !tc->all || tc->all->missing) continue;
    double a = r.alpha, acc = tc->all->accuracy;
    amin = std::min(amin, a);
    amax = std::max(amax, a);
    if (r.vector == "base") {
      base_acc[r.target] = acc;
    } else {
      const std::string name = r.target + " " + r.vector +
                               (r.form.empty() || r.form == "full" ? "" : "[" + r.form + "]");
      series[name].push_back({a, acc});
      series_target[name] = r.target;
    }
  }
  std::set<std::string> with_series;
  for (auto& [name, pts] : series) {
    const std::string& tgt = series_target[name];
    with_series.insert(tgt);
    if (base_acc.count(tgt)) pts.push_back({0.0, base_acc[tgt]});
    std::sort(pts.begin(), pts.end());
  }
  for (const auto& [tgt, acc] : base_acc)
    if (!with_series.count(tgt)) series[tgt + " base"] = {{0.0, acc}};
  if (amax - amin < 1e-9) {
    amin -= 1;
    amax += 1;
  }
  const double W = 640, H = 400, L = 60, R = 190, T = 40, B = 50, pw = W - L - R, ph = H - T - B;
  auto X = [&](double a) { return L + pw * (a - amin) / (amax - amin); };
  auto Y = [&](double v) { return T + ph * (1 - v); };
  std::ostringstream s;
  accuracy_frame(s, W, H, L, pw, Y, text::xml_escape(task) + ": accuracy vs α");
  std::set<double> ticks;
  for (const auto& r : rep.rows) ticks.insert(r.alpha);
  for (double a : ticks)
    s << "<text x=\"" << X(a) << "\" y=\"" << T + ph + 18 << "\" text-anchor=\"middle\">"
      << format_alpha(a) << "</text>\n";
  s << "<text x=\"" << L + pw / 2 << "\" y=\"" << H - 10 << "\" text-anchor=\"middle\">α</text>\n";
  s << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << pw << "\" height=\"" << ph
    << "\" fill=\"none\" stroke=\"#444\"/>\n";
  int k = 0;
  for (const auto& [name, pts] : series) {
    const char* col = kColors[k % 8];
    bool dashed = name.find(" random") != std::string::npos;
    s << "<polyline fill=\"none\" stroke=\"" << col << "\" stroke-width=\"2\""
      << (dashed ? " stroke-dasharray=\"5,4\"" : "") << " points=\"";
    for (const auto& [a, v] : pts) s << X(a) << "," << Y(v) << " ";
    s << "\"/>\n";
    for (const auto& [a, v] : pts)
      s << "<circle cx=\"" << X(a) << "\" cy=\"" << Y(v) << "\" r=\"3.5\" fill=\"" << col
        << "\"><title>" << text::xml_escape(name) << " α=" << format_alpha(a) << ": " << pct(v)
        << "%</title></circle>\n";
    double ly = T + 10 + 18 * k;
    s << "<line x1=\"" << L + pw + 12 << "\" x2=\"" << L + pw + 36 << "\" y1=\"" << ly << "\" y2=\""
      << ly << "\" stroke=\"" << col << "\" stroke-width=\"2\""
      << (dashed ? " stroke-dasharray=\"5,4\"" : "") << "/><text x=\"" << L + pw + 42 << "\" y=\""
      << ly + 4 << "\">" << text::xml_escape(name) << "</text>\n";
    ++k;
  }
  s << "</svg>\n";
  return s.str();
}

std::string sweep_svg(const Report& rep, const std::string& task, const std::string& param) {
  const bool rank = param == "rank";
  // (target vector α) -> points (x, accuracy); the full vector's accuracy at that α.
  std::map<std::string, std::vector<std::pair<double, double>>> series;
  std::map<std::string, double> full;
  for (const auto& r : rep.rows) {
    const TaskCells* tc = cells_of(r, task);
    if (r.form.empty() || !tc || !tc->all || tc->all->missing) continue;
    const std::string name = r.target + " " + r.vector + " α=" + format_alpha(r.alpha);
    if (r.form == "full")
      full[name] = tc->all->accuracy;
    else if (rank ? r.rank > 0 : r.density > 0)
      series[name].push_back({rank ? static_cast<double>(r.rank) : r.density, tc->all->accuracy});
  }
  if (series.empty()) return "";
  double xmin = 1e300, xmax = -1e300;
  for (auto& [name, pts] : series) {
    if (!rank && full.count(name)) pts.push_back({1.0, full[name]});
    std::sort(pts.begin(), pts.end());
    for (const auto& [x, v] : pts) {
      xmin = std::min(xmin, x);
      xmax = std::max(xmax, x);
    }
  }
  auto tx = [&](double x) { return rank ? std::log2(x) : x; };
  double lo = tx(xmin), hi = tx(xmax);
  if (!rank) lo = 0, hi = 1;
  if (hi - lo < 1e-9) lo -= 1, hi += 1;
  const double W = 640, H = 400, L = 60, R = 210, T = 40, B = 50, pw = W - L - R, ph = H - T - B;
  auto X = [&](double x) { return L + pw * (tx(x) - lo) / (hi - lo); };
  auto Y = [&](double v) { return T + ph * (1 - v); };
  std::ostringstream s;
  accuracy_frame(s, W, H, L, pw, Y,
                 text::xml_escape(task) + ": accuracy vs " + (rank ? "LoRA rank" : "density"));
  std::set<double> ticks;
  for (const auto& [name, pts] : series)
    for (const auto& [x, v] : pts) ticks.insert(x);
  for (double x : ticks) {
    char b[32];
    snprintf(b, sizeof b, "%g", x);
    s << "<text x=\"" << X(x) << "\" y=\"" << T + ph + 18 << "\" text-anchor=\"middle\">" << b
      << "</text>\n";
  }
  s << "<text x=\"" << L + pw / 2 << "\" y=\"" << H - 10 << "\" text-anchor=\"middle\">"
    << (rank ? "rank (log scale); dashed: the full vector" : "kept fraction (1 = the full vector)")
    << "</text>\n";
  s << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << pw << "\" height=\"" << ph
    << "\" fill=\"none\" stroke=\"#444\"/>\n";
  int k = 0;
  for (const auto& [name, pts] : series) {
    const char* col = kColors[k % 8];
    if (rank && full.count(name))
      s << "<line x1=\"" << L << "\" x2=\"" << L + pw << "\" y1=\"" << Y(full[name]) << "\" y2=\""
        << Y(full[name]) << "\" stroke=\"" << col << "\" stroke-dasharray=\"5,4\"/>\n";
    s << "<polyline fill=\"none\" stroke=\"" << col << "\" stroke-width=\"2\" points=\"";
    for (const auto& [x, v] : pts) s << X(x) << "," << Y(v) << " ";
    s << "\"/>\n";
    for (const auto& [x, v] : pts)
      s << "<circle cx=\"" << X(x) << "\" cy=\"" << Y(v) << "\" r=\"3.5\" fill=\"" << col
        << "\"><title>" << text::xml_escape(name) << " " << param << "=" << x << ": " << pct(v)
        << "%</title></circle>\n";
    double ly = T + 10 + 18 * k;
    s << "<line x1=\"" << L + pw + 12 << "\" x2=\"" << L + pw + 36 << "\" y1=\"" << ly << "\" y2=\""
      << ly << "\" stroke=\"" << col << "\" stroke-width=\"2\"/><text x=\"" << L + pw + 42
      << "\" y=\"" << ly + 4 << "\">" << text::xml_escape(name) << "</text>\n";
    ++k;
  }
  s << "</svg>\n";
  return s.str();
}

std::string norms_svg(const Report& rep) {
  const std::string title = "per-layer ‖v‖₂";
  const auto& layers = rep.vector_layers;
  const double W = 640, H = 360, L = 70, R = 20, T = 40, B = 50, pw = W - L - R, ph = H - T - B;
  double vmax = 0;
  for (const auto& [l, v] : layers) vmax = std::max(vmax, v);
  if (vmax <= 0) vmax = 1;
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
       "fill=\"white\"/>\n";
  s << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">"
    << text::xml_escape(title) << "</text>\n";
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
  for (const auto& [layer, v] : layers) {
    double h = ph * v / vmax, x = L + bw * static_cast<double>(i);
    s << "<rect x=\"" << x + bw * 0.1 << "\" y=\"" << T + ph - h << "\" width=\"" << bw * 0.8
      << "\" height=\"" << h << "\" fill=\"#1f77b4\"><title>layer " << layer << ": " << v
      << "</title></rect>\n";
    if (n <= 40 || i % 4 == 0)
      s << "<text x=\"" << x + bw / 2 << "\" y=\"" << T + ph + 15
        << "\" text-anchor=\"middle\" font-size=\"10\">" << layer << "</text>\n";
    ++i;
  }
  s << "<text x=\"" << L + pw / 2 << "\" y=\"" << H - 10
    << "\" text-anchor=\"middle\">layer</text>\n";
  s << "<text x=\"16\" y=\"" << T + ph / 2 << "\" transform=\"rotate(-90 16 " << T + ph / 2
    << ")\" text-anchor=\"middle\">‖v‖₂</text>\n</svg>\n";
  return s.str();
}

void write_report(const Report& r, const fs::path& out) {
  fs::create_directories(out / "plots");
  for (const auto& t : r.tasks)
    write_file(out / "plots" / ("accuracy_" + t.label + ".svg"), accuracy_svg(r, t.label));
  for (const char* p : {"rank", "density"})
    for (const auto& t : r.tasks) {
      std::string svg = sweep_svg(r, t.label, p);
      if (!svg.empty())
        write_file(out / "plots" / ("accuracy_vs_" + std::string(p) + "_" + t.label + ".svg"), svg);
    }
  write_file(out / "plots" / "vector_norms.svg", norms_svg(r));
  write_file(out / "report.json", to_json(r).dump(2) + "\n");
  write_file(out / "report.md", to_markdown(r));
}

}  // namespace rv::experiment
