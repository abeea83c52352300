#include "lab/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "common/error.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/parallel.h"
#include "common/progress.h"
#include "experiment/experiment.h"
#include "experiment/plan.h"
#include "lab/bpe.h"
#include "lab/report.h"
#include "lab/task.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "train/grpo_trainer.h"
#include "train/lm_trainer.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace rv::lab {
namespace {

std::string fp_of(const json& j) {
  return sha256_hex(j.dump());
}
std::string short_fp(const std::string& fp) {
  return fp.substr(0, 10);
}

TaskSpec task_spec(const LabConfig& c) {
  TaskSpec t;
  t.min_ops = c.task.min_ops;
  t.max_ops = c.task.max_ops;
  t.max_operand = c.task.max_operand;
  t.max_value = c.task.max_value;
  t.distractor_rate = c.task.distractor_rate;
  return t;
}

// Sub-seeds of one pipeline seed, one per data stream, so that changing how
// many documents one stage draws does not change another stage's data.
uint64_t sub_seed(uint64_t seed, uint64_t stream) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ULL + stream * 0xbf58476d1ce4e5b9ULL + 1;
  x = (x ^ (x >> 31)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 29);
}
enum Stream : uint64_t {
  kCorpus = 1,
  kInstruct,
  kSkills,
  kSft,
  kEval,
  kInit,
  kTrainBase,
  kTrainTarget,
  kTrainSft,
  kGrpo
};

// Everything one seed's stages read: data generated in memory (cheap and
// deterministic) plus the tokenizer, once trained.
struct SeedData {
  uint64_t seed = 0;
  std::vector<std::string> corpus;
  std::vector<Problem> instruct_problems, sft_problems;
  std::vector<ChatPair> skills;
};

SeedData make_data(const LabConfig& c, uint64_t seed) {
  SeedData d;
  d.seed = seed;
  const TaskSpec spec = task_spec(c);
  d.corpus = make_corpus(spec, std::max(c.pretrain.docs, c.tokenizer.corpus_docs),
                         sub_seed(seed, kCorpus));
  d.instruct_problems = make_split(spec, "train", c.instruct.problems, sub_seed(seed, kInstruct));
  d.skills = make_skills(c.instruct.skills, sub_seed(seed, kSkills));
  d.sft_problems = make_split(spec, "train", c.sft.problems, sub_seed(seed, kSft));
  return d;
}

// The chat formatting every stage and the evaluation share: the tokenizer's
// own ChatML template with a generation prompt.
struct Chat {
  const Tokenizer* tok = nullptr;
  std::string tmpl;
  int32_t im_end = -1, eot = -1;

  std::vector<int32_t> prompt(const std::string& user) const {
    ChatTemplateInputs in;
    in.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", user}}});
    in.add_generation_prompt = true;
    return tok->encode(render_chat_template(tmpl, in), /*parse_special=*/true);
  }
  train::Example example(const std::string& user, const std::string& assistant) const {
    train::Example e;
    e.tokens = prompt(user);
    e.target.assign(e.tokens.size(), 0);
    for (int32_t id : tok->encode(assistant, /*parse_special=*/false)) {
      e.tokens.push_back(id);
      e.target.push_back(1);
    }
    e.tokens.push_back(im_end);
    e.target.push_back(1);
    return e;
  }
};

Chat make_chat(const Tokenizer& tok, const fs::path& tok_dir) {
  Chat ch;
  ch.tok = &tok;
  ch.tmpl = load_chat_template(tok_dir).tmpl;
  auto im_end = tok.token_id("<|im_end|>");
  auto eot = tok.token_id("<|endoftext|>");
  if (!im_end || !eot)
    throw Error(tok_dir.string() + ": tokenizer lacks <|im_end|> or <|endoftext|>");
  ch.im_end = *im_end;
  ch.eot = *eot;
  return ch;
}

void copy_tokenizer(const fs::path& tok_dir, const fs::path& model_dir) {
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(tok_dir / f, model_dir / f, fs::copy_options::overwrite_existing);
}

// Writes a training log (one JSON object per line) next to a checkpoint.
template <class T, class F>
void write_log(const fs::path& file, const std::vector<T>& log, F to_json) {
  std::string s;
  for (const T& x : log) s += to_json(x).dump() + "\n";
  write_file_atomic(file, s);
}

json lm_log_json(const train::LmStepLog& s) {
  return {{"step", s.step},           {"loss", s.loss},     {"lr", s.lr},
          {"grad_norm", s.grad_norm}, {"tokens", s.tokens}, {"seconds", s.seconds}};
}
json grpo_log_json(const train::GrpoStepLog& s) {
  return {{"step", s.step},
          {"reward", s.reward},
          {"accuracy", s.accuracy},
          {"reward_std", s.reward_std},
          {"kl", s.kl},
          {"entropy", s.entropy},
          {"clip_frac", s.clip_frac},
          {"length", s.length},
          {"grad_norm", s.grad_norm},
          {"lr", s.lr},
          {"sample_seconds", s.sample_seconds},
          {"train_seconds", s.train_seconds}};
}

// A stage's output: the model directory (written atomically by save), the
// tokenizer, and last the training log, which is the stage's done-marker.
template <class T, class F>
void save_stage(const train::TrainModel& m, const std::vector<T>& log, F to_json, const Chat& ch,
                const fs::path& tok_dir, const fs::path& out) {
  m.save(out, -1, ch.im_end);
  copy_tokenizer(tok_dir, out);
  write_log(out / "train_log.jsonl", log, to_json);
}

train::LmTrainOptions lm_options(const LabStage& s, uint64_t seed, const Chat& ch) {
  train::LmTrainOptions o;
  o.steps = s.steps;
  o.rows = s.rows;
  o.seq_len = s.seq_len;
  o.lr = s.lr;
  o.warmup = s.warmup;
  o.weight_decay = s.weight_decay;
  o.seed = seed;
  o.checkpoint_every = std::max(10, s.steps / 10);
  o.eos = ch.im_end;
  return o;
}

// Runs one supervised stage from `init` (empty: a fresh seeded model) and
// writes the trained model (with the tokenizer) to `out`.
void run_lm_stage(const std::string& name, const LabConfig& c, const LabStage& s, uint64_t seed,
                  const fs::path& init, const std::vector<train::Example>& data, const Chat& ch,
                  const fs::path& tok_dir, const fs::path& out, const LabOptions& opt) {
  train::TrainModel m = init.empty() ? train::TrainModel(c.model, {.threads = c.threads})
                                     : train::TrainModel::load(init, {.threads = c.threads});
  if (init.empty()) m.init(sub_seed(seed, kInit));
  train::LmTrainOptions o = lm_options(s, seed, ch);
  o.checkpoint_dir = out.parent_path() / ("." + out.filename().string() + ".ckpt");
  const auto t0 = std::chrono::steady_clock::now();
  int64_t tokens = 0;
  bool first = true;
  auto res = train::train_lm(m, data, o, [&](const train::LmStepLog& l) {
    if (first && l.step > 1 && opt.log)
      opt.log("  " + name + " resumed from its checkpoint at step " + std::to_string(l.step - 1));
    first = false;
    tokens += l.tokens;
    if (opt.log && (l.step == 1 || l.step % std::max(1, l.steps / 10) == 0 || l.step == l.steps)) {
      double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      char buf[200];
      std::snprintf(buf, sizeof buf, "  %-8s step %4d/%d  loss %.4f  lr %.2e  %.0f tok/s",
                    name.c_str(), l.step, l.steps, l.loss, l.lr, tokens / std::max(sec, 1e-9));
      opt.log(buf);
    }
  });
  save_stage(m, res.log, lm_log_json, ch, tok_dir, out);
  fs::remove_all(o.checkpoint_dir);
}

experiment::ExperimentConfig experiment_config(
    const LabConfig& c, const fs::path& tasks_dir, const fs::path& base, const fs::path& tuned,
    const std::vector<std::pair<std::string, fs::path>>& targets, const std::vector<double>& alphas,
    bool random, bool reverse, uint64_t seed) {
  experiment::ExperimentConfig e;
  e.source = "<lab>";
  e.base = base;
  e.tuned = tuned;
  for (const auto& [name, dir] : targets) {
    experiment::ExperimentTarget t;
    t.name = name;
    t.dir = dir;
    t.backend.max_batch = c.eval.max_batch;
    t.backend.max_context = c.model.max_position;
    e.targets.push_back(t);
  }
  e.alphas = alphas;
  e.control_random = random;
  e.random_seed = seed;
  e.control_reverse = reverse;
  for (const std::string& split : c.eval.splits) {
    experiment::ExperimentTask t;
    t.name = (tasks_dir / (split + ".yaml")).string();
    t.label = split;
    t.options.limit = c.eval.n;
    t.options.apply_chat_template = true;
    e.tasks.push_back(t);
  }
  return e;
}

}  // namespace

LabResult run_lab(const LabConfig& c, const LabOptions& opt) {
  validate(c);
  if (c.threads > 0) set_num_threads(c.threads);
  fs::create_directories(opt.out_dir);
  auto log = [&](const std::string& s) {
    if (opt.log) opt.log(s);
  };
  experiment::StepCounts counts;
  std::vector<SeedSummary> runs;
  const json cj = c.to_json();

  for (int si = 0; si < c.seeds; ++si) {
    SeedSummary run;
    run.seed = c.seed + static_cast<uint64_t>(si);
    run.dir = opt.out_dir / ("seed-" + std::to_string(run.seed));
    fs::create_directories(run.dir);
    log("seed " + std::to_string(run.seed) + " -> " + run.dir.string());
    const SeedData data = make_data(c, run.seed);

    // data: tokenizer + evaluation splits.
    const std::string data_fp = fp_of({{"stage", "data"},
                                       {"seed", run.seed},
                                       {"task", cj["task"]},
                                       {"tokenizer", cj["tokenizer"]},
                                       {"pretrain_docs", c.pretrain.docs},
                                       {"eval_n", c.eval.n},
                                       {"splits", c.eval.splits}});
    const fs::path tok_dir = run.dir / ("tokenizer-" + short_fp(data_fp));
    const fs::path tasks_dir = run.dir / ("tasks-" + short_fp(data_fp));
    experiment::Step data_step;
    data_step.title = "data seed " + std::to_string(run.seed);
    data_step.fingerprint = data_fp;
    data_step.output = tok_dir;
    data_step.done = tok_dir / ".done";
    data_step.run = [&] {
      std::vector<std::string> corpus(
          data.corpus.begin(),
          data.corpus.begin() + std::min<size_t>(data.corpus.size(), c.tokenizer.corpus_docs));
      for (const auto& p : data.sft_problems) corpus.push_back(p.question + "\n" + p.cot);
      for (const auto& s : data.skills) corpus.push_back(s.user + "\n" + s.assistant);
      BpeOptions bo;
      bo.vocab_size = c.tokenizer.vocab_size;
      {
        AtomicOutput t(tok_dir, AtomicOutput::Kind::kDirectory, true);
        train_bpe_tokenizer(corpus, bo, t.path());
        t.commit();
      }
      AtomicOutput tk(tasks_dir, AtomicOutput::Kind::kDirectory, true);
      for (const std::string& split : c.eval.splits)
        write_eval_split(tk.path(), split,
                         make_split(task_spec(c), split, c.eval.n, sub_seed(run.seed, kEval)));
      tk.commit();
      write_file(tok_dir / ".done", data_fp + "\n");
    };
    experiment::run_step(data_step, log, counts);

    const Tokenizer tok = Tokenizer::load(tok_dir);
    const Chat ch = make_chat(tok, tok_dir);

    // Training stages.
    auto stage_dir = [&](const std::string& name, const std::string& fp) {
      fs::path d = run.dir / (name + "-" + short_fp(fp));
      run.stages[name] = d;
      return d;
    };
    const std::string base_fp = fp_of({{"stage", "base"},
                                       {"data", data_fp},
                                       {"model", cj["model"]},
                                       {"pretrain", cj["pretrain"]}});
    const fs::path base_dir = stage_dir("base", base_fp);
    experiment::Step base_step{.title = "base (pretrain) seed " + std::to_string(run.seed),
                               .run_title = "",
                               .fingerprint = base_fp,
                               .output = base_dir,
                               .done = base_dir / "train_log.jsonl",
                               .run = [&] {
                                 std::vector<train::Example> ex;
                                 for (int i = 0; i < c.pretrain.docs && i < (int)data.corpus.size();
                                      ++i) {
                                   train::Example e;
                                   e.tokens = tok.encode(data.corpus[i], false);
                                   e.tokens.push_back(ch.eot);
                                   e.target.assign(e.tokens.size(), 1);
                                   ex.push_back(std::move(e));
                                 }
                                 run_lm_stage("base", c, c.pretrain, sub_seed(run.seed, kTrainBase),
                                              {}, ex, ch, tok_dir, base_dir, opt);
                               }};
    experiment::run_step(base_step, log, counts);

    const std::string target_fp =
        fp_of({{"stage", "target"}, {"base", base_fp}, {"instruct", cj["instruct"]}});
    const fs::path target_dir = stage_dir("target", target_fp);
    experiment::Step target_step{
        .title = "target (instruct, direct answers) seed " + std::to_string(run.seed),
        .run_title = "",
        .fingerprint = target_fp,
        .output = target_dir,
        .done = target_dir / "train_log.jsonl",
        .run = [&] {
          std::vector<train::Example> ex;
          for (const auto& p : data.instruct_problems)
            ex.push_back(ch.example(p.question, p.direct));
          for (const auto& s : data.skills) ex.push_back(ch.example(s.user, s.assistant));
          run_lm_stage("target", c, c.instruct, sub_seed(run.seed, kTrainTarget), base_dir, ex, ch,
                       tok_dir, target_dir, opt);
        }};
    experiment::run_step(target_step, log, counts);

    const std::string sft_fp = fp_of({{"stage", "sft"}, {"base", base_fp}, {"sft", cj["sft"]}});
    const fs::path sft_dir = stage_dir("sft", sft_fp);
    experiment::Step sft_step{.title = "sft sibling seed " + std::to_string(run.seed),
                              .run_title = "",
                              .fingerprint = sft_fp,
                              .output = sft_dir,
                              .done = sft_dir / "train_log.jsonl",
                              .run = [&] {
                                std::vector<train::Example> ex;
                                for (const auto& p : data.sft_problems)
                                  ex.push_back(ch.example(p.question, p.cot));
                                run_lm_stage("sft", c, c.sft, sub_seed(run.seed, kTrainSft),
                                             base_dir, ex, ch, tok_dir, sft_dir, opt);
                              }};
    experiment::run_step(sft_step, log, counts);

    for (const std::string& init : c.grpo.init) {
      const fs::path init_dir = init == "sft" ? sft_dir : base_dir;
      // Which inits run is not part of a GRPO run's identity: adding `base`
      // must not retrain the one from `sft`.
      json grpo_cfg = cj["grpo"];
      grpo_cfg.erase("init");
      const std::string grpo_fp = fp_of({{"stage", "grpo"},
                                         {"init", init == "sft" ? sft_fp : base_fp},
                                         {"grpo", grpo_cfg},
                                         {"sft_data", cj["sft"]["problems"]}});
      const fs::path grpo_dir = stage_dir("grpo-" + init, grpo_fp);
      experiment::Step grpo_step;
      grpo_step.title = "grpo from " + init + " seed " + std::to_string(run.seed);
      grpo_step.fingerprint = grpo_fp;
      grpo_step.output = grpo_dir;
      grpo_step.done = grpo_dir / "train_log.jsonl";
      grpo_step.run = [&] {
        train::TrainModel policy = train::TrainModel::load(init_dir, {.threads = c.threads});
        std::unique_ptr<train::TrainModel> ref;
        if (c.grpo.beta > 0)
          ref = std::make_unique<train::TrainModel>(
              train::TrainModel::load(init_dir, {.threads = c.threads}));
        std::vector<std::vector<int32_t>> prompts;
        for (const auto& p : data.sft_problems) prompts.push_back(ch.prompt(p.question));
        train::GrpoTrainOptions o;
        o.steps = c.grpo.steps;
        o.prompts = c.grpo.prompts;
        o.group = c.grpo.group;
        o.max_tokens = c.grpo.max_tokens;
        o.temperature = static_cast<float>(c.grpo.temperature);
        o.mu = c.grpo.mu;
        o.lr = c.grpo.lr;
        o.warmup = c.grpo.warmup;
        o.weight_decay = c.grpo.weight_decay;
        o.loss.beta = c.grpo.beta;
        o.loss.epsilon_low = c.grpo.epsilon;
        o.loss.epsilon_high = c.grpo.epsilon_high;
        o.loss.aggregation = c.grpo.loss == "sequence_mean" ? train::LossAggregation::kSequenceMean
                             : c.grpo.loss == "constant"    ? train::LossAggregation::kConstant
                                                            : train::LossAggregation::kTokenMean;
        o.scale_rewards = c.grpo.scale_rewards;
        o.seed = sub_seed(run.seed, kGrpo);
        o.stop_ids = {ch.im_end, ch.eot};
        o.eos = ch.im_end;
        const auto t0 = std::chrono::steady_clock::now();
        auto reward = [&](int pi, const std::vector<int32_t>& toks, bool stopped) {
          std::vector<int32_t> body(toks);
          if (stopped && !body.empty()) body.pop_back();
          const std::string text = tok.decode(body, /*skip_special=*/true);
          train::GrpoReward r;
          auto got = extract_answer(text);
          r.correct = got && *got == data.sft_problems[pi].answer;
          r.reward = r.correct ? 1.0 : 0.0;
          if (c.grpo.format_reward > 0 && stopped && got) r.reward += c.grpo.format_reward;
          return r;
        };
        auto res = train::train_grpo(
            policy, ref.get(), prompts, reward, o, [&](const train::GrpoStepLog& l) {
              double sec =
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
              char buf[240];
              std::snprintf(
                  buf, sizeof buf,
                  "  grpo-%s step %3d/%d  reward %.3f  acc %.3f  kl %.4f  len %.1f  ent %.3f  "
                  "(sample %.1fs, train %.1fs, total %s)",
                  init.c_str(), l.step, l.steps, l.reward, l.accuracy, l.kl, l.length, l.entropy,
                  l.sample_seconds, l.train_seconds, format_duration(sec).c_str());
              log(buf);
            });
        save_stage(policy, res.log, grpo_log_json, ch, tok_dir, grpo_dir);
      };
      experiment::run_step(grpo_step, log, counts);

      // Siblings: GRPO against SFT on the same held-out problems (sft + 1·v is the GRPO model).
      for (const std::string kind : {"siblings", "transfer"}) {
        const bool sib = kind == std::string("siblings");
        const fs::path edir = run.dir / (std::string(kind) + "-" + init);
        auto ec = sib ? experiment_config(c, tasks_dir, sft_dir, grpo_dir, {{"sft", sft_dir}},
                                          {0, 1}, false, false, run.seed)
                      : experiment_config(c, tasks_dir, sft_dir, grpo_dir, {{"target", target_dir}},
                                          c.eval.alphas, c.eval.random, c.eval.reverse, run.seed);
        log(std::string("experiment ") + kind + " (grpo from " + init + ") seed " +
            std::to_string(run.seed));
        experiment::ExperimentOptions eo;
        eo.out_dir = edir;
        eo.log = [&](const std::string& s) { log("  " + s); };
        auto er = experiment::run_experiment(ec, eo);
        counts.run += er.steps_run;
        counts.cached += er.steps_cached;
        run.experiments[std::string(kind) + "-" + init] = er.report;
      }
    }
    runs.push_back(std::move(run));
  }

  // Report over all seeds.
  LabResult res;
  res.report = build_lab_report(c, runs);
  res.markdown = lab_markdown(res.report);
  write_lab_report(opt.out_dir, res.report, res.markdown, runs);
  res.stages_run = counts.run;
  res.stages_cached = counts.cached;
  return res;
}

}  // namespace rv::lab
