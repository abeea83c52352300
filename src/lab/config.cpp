#include "lab/config.h"

#include <functional>
#include <map>
#include <set>

#include "common/error.h"
#include "common/file.h"
#include "common/yaml_reader.h"

namespace rv::lab {
namespace {

// The special tokens every lab tokenizer carries (lab/bpe.h).
constexpr int kSpecialTokens = 3;

void stage_json(nlohmann::json& j, const char* name, const LabStage& s) {
  j[name] = {{"steps", s.steps}, {"rows", s.rows},         {"seq_len", s.seq_len},
             {"lr", s.lr},       {"warmup", s.warmup},     {"weight_decay", s.weight_decay},
             {"docs", s.docs},   {"problems", s.problems}, {"skills", s.skills}};
}

struct Parser : YamlReader {
  int pos_int(const YAML::Node& n, const std::string& key) const {
    int v = integer(n, key);
    if (v < 1) fail(n, key, "must be a positive integer");
    return v;
  }
  int nonneg_int(const YAML::Node& n, const std::string& key) const {
    int v = integer(n, key);
    if (v < 0) fail(n, key, "must be >= 0");
    return v;
  }
  double pos_real(const YAML::Node& n, const std::string& key) const {
    double v = real(n, key);
    if (!(v > 0)) fail(n, key, "must be > 0");
    return v;
  }
  double nonneg_real(const YAML::Node& n, const std::string& key) const {
    double v = real(n, key);
    if (!(v >= 0)) fail(n, key, "must be >= 0");
    return v;
  }
  double unit(const YAML::Node& n, const std::string& key) const {
    double v = real(n, key);
    if (!(v >= 0 && v <= 1)) fail(n, key, "must be in [0, 1]");
    return v;
  }

  // Applies a section's keys through a table of setters; unknown keys fail.
  using Setter = std::function<void(const YAML::Node&, const std::string&)>;
  void section(const YAML::Node& root, const std::string& name,
               const std::map<std::string, Setter>& keys) const {
    const YAML::Node n = root[name];
    if (!n) return;
    std::set<std::string> allowed;
    for (const auto& [k, _] : keys) allowed.insert(k);
    only_keys(n, name, allowed);
    for (const auto& kv : n) {
      const std::string k = kv.first.as<std::string>();
      keys.at(k)(kv.second, name + "." + k);
    }
  }

  std::map<std::string, Setter> stage_keys(LabStage& s, bool docs, bool problems,
                                           bool skills) const {
    std::map<std::string, Setter> m = {
        {"steps", [&](auto& n, auto& k) { s.steps = pos_int(n, k); }},
        {"rows", [&](auto& n, auto& k) { s.rows = pos_int(n, k); }},
        {"seq_len", [&](auto& n, auto& k) { s.seq_len = pos_int(n, k); }},
        {"lr", [&](auto& n, auto& k) { s.lr = pos_real(n, k); }},
        {"warmup", [&](auto& n, auto& k) { s.warmup = nonneg_int(n, k); }},
        {"weight_decay", [&](auto& n, auto& k) { s.weight_decay = nonneg_real(n, k); }},
    };
    if (docs) m["docs"] = [&](auto& n, auto& k) { s.docs = pos_int(n, k); };
    if (problems) m["problems"] = [&](auto& n, auto& k) { s.problems = pos_int(n, k); };
    if (skills) m["skills"] = [&](auto& n, auto& k) { s.skills = nonneg_int(n, k); };
    return m;
  }
};

}  // namespace

nlohmann::json LabConfig::to_json() const {
  nlohmann::json j;
  j["seed"] = seed;
  j["seeds"] = seeds;
  j["task"] = {{"min_ops", task.min_ops},
               {"max_ops", task.max_ops},
               {"max_operand", task.max_operand},
               {"max_value", task.max_value},
               {"distractor_rate", task.distractor_rate}};
  j["tokenizer"] = {{"vocab_size", tokenizer.vocab_size}, {"corpus_docs", tokenizer.corpus_docs}};
  j["model"] = {{"hidden", model.hidden},
                {"layers", model.layers},
                {"heads", model.heads},
                {"kv_heads", model.kv_heads},
                {"intermediate", model.intermediate},
                {"tied", model.tied},
                {"max_position", model.max_position},
                {"rope_theta", model.rope_theta}};
  stage_json(j, "pretrain", pretrain);
  stage_json(j, "instruct", instruct);
  stage_json(j, "sft", sft);
  j["grpo"] = {{"init", grpo.init},
               {"steps", grpo.steps},
               {"prompts", grpo.prompts},
               {"group", grpo.group},
               {"max_tokens", grpo.max_tokens},
               {"temperature", grpo.temperature},
               {"mu", grpo.mu},
               {"lr", grpo.lr},
               {"warmup", grpo.warmup},
               {"weight_decay", grpo.weight_decay},
               {"beta", grpo.beta},
               {"epsilon", grpo.epsilon},
               {"epsilon_high", grpo.epsilon_high},
               {"loss", grpo.loss},
               {"scale_rewards", grpo.scale_rewards},
               {"format_reward", grpo.format_reward}};
  j["eval"] = {{"n", eval.n},
               {"splits", eval.splits},
               {"alphas", eval.alphas},
               {"random", eval.random},
               {"reverse", eval.reverse}};
  return j;
}

std::vector<std::string> lab_preset_names() {
  return {"default", "quick"};
}

LabConfig lab_preset(const std::string& name) {
  // Both presets share the task and the model; `default` trains longer, runs
  // GRPO for longer on more prompts and evaluates every split. The recipe
  // search behind these numbers is in docs/lab.md.
  LabConfig c;
  c.preset = name;
  c.source = "<preset " + name + ">";
  c.task = {.min_ops = 1, .max_ops = 3, .max_operand = 9, .max_value = 60, .distractor_rate = 0.1};
  c.tokenizer = {.vocab_size = 512, .corpus_docs = 6000};
  c.model.vocab = 512;
  c.model.hidden = 96;
  c.model.layers = 3;
  c.model.heads = 4;
  c.model.kv_heads = 2;
  c.model.intermediate = 256;
  c.model.max_position = 256;
  c.pretrain = {.steps = 1000,
                .rows = 12,
                .seq_len = 192,
                .lr = 3e-3,
                .warmup = 20,
                .weight_decay = 0.1,
                .docs = 20000};
  c.instruct = {.steps = 150,
                .rows = 12,
                .seq_len = 192,
                .lr = 1e-3,
                .warmup = 8,
                .weight_decay = 0.1,
                .problems = 1500,
                .skills = 1500};
  c.sft = {.steps = 300,
           .rows = 12,
           .seq_len = 192,
           .lr = 2e-3,
           .warmup = 8,
           .weight_decay = 0.1,
           .problems = 6000};
  c.grpo.steps = 60;
  c.grpo.prompts = 32;
  c.grpo.group = 8;
  c.grpo.max_tokens = 64;
  c.grpo.mu = 2;
  c.grpo.lr = 1e-4;
  c.grpo.warmup = 10;
  c.eval.n = 200;
  if (name == "default") return c;
  if (name == "quick") {
    c.pretrain.steps = 700;
    c.instruct.steps = 100;
    c.sft.steps = 250;
    c.grpo.steps = 30;
    c.grpo.prompts = 16;
    c.grpo.warmup = 5;
    c.eval.n = 100;
    c.eval.splits = {"test_id", "test_long", "test_distractor"};
    c.eval.alphas = {-1, 0, 1};
    return c;
  }
  throw Error("lab: unknown preset '" + name + "' (default, quick)");
}

LabConfig parse_lab_config(const std::string& yaml_text, const std::string& source) {
  Parser p;
  p.src = source;
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw Error(source + ":" + std::to_string(e.mark.line + 1), e.msg);
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  p.only_keys(root, "",
              {"preset", "seed", "seeds", "threads", "task", "tokenizer", "model", "pretrain",
               "instruct", "sft", "grpo", "eval"});
  LabConfig c = lab_preset(root["preset"] ? p.str(root["preset"], "preset") : "default");
  c.source = source;
  if (root["seed"]) c.seed = p.num<uint64_t>(root["seed"], "seed", "a non-negative integer");
  if (root["seeds"]) c.seeds = p.pos_int(root["seeds"], "seeds");
  if (root["threads"]) c.threads = p.nonneg_int(root["threads"], "threads");

  p.section(
      root, "task",
      {{"min_ops", [&](auto& n, auto& k) { c.task.min_ops = p.pos_int(n, k); }},
       {"max_ops", [&](auto& n, auto& k) { c.task.max_ops = p.pos_int(n, k); }},
       {"max_operand", [&](auto& n, auto& k) { c.task.max_operand = p.pos_int(n, k); }},
       {"max_value", [&](auto& n, auto& k) { c.task.max_value = p.pos_int(n, k); }},
       {"distractor_rate", [&](auto& n, auto& k) { c.task.distractor_rate = p.unit(n, k); }}});
  bool vocab_set = false;
  p.section(
      root, "tokenizer",
      {{"vocab_size",
        [&](auto& n, auto& k) {
          c.tokenizer.vocab_size = p.pos_int(n, k);
          vocab_set = true;
        }},
       {"corpus_docs", [&](auto& n, auto& k) { c.tokenizer.corpus_docs = p.pos_int(n, k); }}});
  if (vocab_set) c.model.vocab = c.tokenizer.vocab_size;
  p.section(root, "model",
            {{"hidden", [&](auto& n, auto& k) { c.model.hidden = p.pos_int(n, k); }},
             {"layers", [&](auto& n, auto& k) { c.model.layers = p.pos_int(n, k); }},
             {"heads", [&](auto& n, auto& k) { c.model.heads = p.pos_int(n, k); }},
             {"kv_heads", [&](auto& n, auto& k) { c.model.kv_heads = p.pos_int(n, k); }},
             {"intermediate", [&](auto& n, auto& k) { c.model.intermediate = p.pos_int(n, k); }},
             {"tied", [&](auto& n, auto& k) { c.model.tied = p.boolean(n, k); }},
             {"max_position", [&](auto& n, auto& k) { c.model.max_position = p.pos_int(n, k); }},
             {"rope_theta", [&](auto& n, auto& k) { c.model.rope_theta = p.pos_real(n, k); }}});
  p.section(root, "pretrain", p.stage_keys(c.pretrain, true, false, false));
  p.section(root, "instruct", p.stage_keys(c.instruct, false, true, true));
  p.section(root, "sft", p.stage_keys(c.sft, false, true, false));
  LabGrpo& g = c.grpo;
  p.section(root, "grpo",
            {{"init",
              [&](auto& n, auto& k) {
                std::string s = p.str(n, k);
                if (s == "both")
                  g.init = {"sft", "base"};
                else if (s == "sft" || s == "base")
                  g.init = {s};
                else
                  p.fail(n, k, "expected sft, base or both, got '" + s + "'");
              }},
             {"steps", [&](auto& n, auto& k) { g.steps = p.pos_int(n, k); }},
             {"prompts", [&](auto& n, auto& k) { g.prompts = p.pos_int(n, k); }},
             {"group",
              [&](auto& n, auto& k) {
                g.group = p.pos_int(n, k);
                if (g.group < 2)
                  p.fail(n, k, "must be >= 2 (advantages compare samples of one prompt)");
              }},
             {"max_tokens", [&](auto& n, auto& k) { g.max_tokens = p.pos_int(n, k); }},
             {"temperature", [&](auto& n, auto& k) { g.temperature = p.pos_real(n, k); }},
             {"mu", [&](auto& n, auto& k) { g.mu = p.pos_int(n, k); }},
             {"lr", [&](auto& n, auto& k) { g.lr = p.pos_real(n, k); }},
             {"warmup", [&](auto& n, auto& k) { g.warmup = p.nonneg_int(n, k); }},
             {"weight_decay", [&](auto& n, auto& k) { g.weight_decay = p.nonneg_real(n, k); }},
             {"beta", [&](auto& n, auto& k) { g.beta = p.nonneg_real(n, k); }},
             {"epsilon", [&](auto& n, auto& k) { g.epsilon = p.pos_real(n, k); }},
             {"epsilon_high", [&](auto& n, auto& k) { g.epsilon_high = p.pos_real(n, k); }},
             {"loss",
              [&](auto& n, auto& k) {
                g.loss = p.str(n, k);
                if (g.loss != "token_mean" && g.loss != "sequence_mean" && g.loss != "constant")
                  p.fail(n, k,
                         "expected token_mean, sequence_mean or constant, got '" + g.loss + "'");
              }},
             {"scale_rewards", [&](auto& n, auto& k) { g.scale_rewards = p.boolean(n, k); }},
             {"format_reward", [&](auto& n, auto& k) { g.format_reward = p.nonneg_real(n, k); }}});
  p.section(root, "eval",
            {{"n", [&](auto& n, auto& k) { c.eval.n = p.pos_int(n, k); }},
             {"splits",
              [&](auto& n, auto& k) {
                c.eval.splits = p.str_list(n, k);
                if (c.eval.splits.empty()) p.fail(n, k, "expected a non-empty list of split names");
              }},
             {"alphas",
              [&](auto& n, auto& k) {
                if (!n.IsSequence() || n.size() == 0)
                  p.fail(n, k, "expected a non-empty list of numbers");
                c.eval.alphas.clear();
                for (const auto& x : n) c.eval.alphas.push_back(p.real(x, k));
              }},
             {"random", [&](auto& n, auto& k) { c.eval.random = p.boolean(n, k); }},
             {"reverse", [&](auto& n, auto& k) { c.eval.reverse = p.boolean(n, k); }},
             {"max_batch", [&](auto& n, auto& k) { c.eval.max_batch = p.pos_int(n, k); }}});
  validate(c);
  return c;
}

LabConfig load_lab_config(const std::filesystem::path& yaml) {
  if (!std::filesystem::exists(yaml)) throw Error(yaml.string() + ": no such file");
  return parse_lab_config(read_file(yaml), yaml.string());
}

void validate(const LabConfig& c) {
  auto bad = [&](const std::string& key, const std::string& what) {
    throw Error(c.source + ": " + key + ": " + what);
  };
  try {
    c.model.validate(c.source);
  } catch (const Error&) {
    throw;
  }
  if (c.tokenizer.vocab_size < 256 + kSpecialTokens)
    bad("tokenizer.vocab_size",
        std::to_string(c.tokenizer.vocab_size) + " cannot hold the 256 byte tokens and " +
            std::to_string(kSpecialTokens) +
            " special tokens (need >= " + std::to_string(256 + kSpecialTokens) + ")");
  if (c.task.min_ops > c.task.max_ops) bad("task.min_ops", "is larger than task.max_ops");
  if (c.task.max_value < c.task.max_operand)
    bad("task.max_value", "is smaller than task.max_operand");
  for (const auto& [name, s] : {std::pair<const char*, const LabStage*>{"pretrain", &c.pretrain},
                                {"instruct", &c.instruct},
                                {"sft", &c.sft}}) {
    if (s->seq_len > c.model.max_position)
      bad(std::string(name) + ".seq_len", std::to_string(s->seq_len) +
                                              " exceeds model.max_position " +
                                              std::to_string(c.model.max_position));
    if (s->warmup >= s->steps) bad(std::string(name) + ".warmup", "must be smaller than steps");
  }
  if (c.grpo.warmup >= c.grpo.steps) bad("grpo.warmup", "must be smaller than steps");
  if (c.grpo.max_tokens >= c.model.max_position)
    bad("grpo.max_tokens", "must leave room for the prompt within model.max_position");
  bool has_zero = false;
  for (double a : c.eval.alphas) has_zero |= a == 0;
  if (!has_zero) bad("eval.alphas", "must include 0 (the target itself, what deltas compare with)");
}

}  // namespace rv::lab
