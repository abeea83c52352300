// The experiment as a plan of cached steps.
//
// Every heavy piece of work (extract the vector, draw the random control,
// apply a vector, evaluate a variant on a task) is a Step: a fingerprint of
// its inputs names its output, and a done-marker file says the output is
// complete. A step whose done-marker exists is skipped, so a rerun does only
// what changed and a killed run resumes. Outputs are written atomically (or
// their marker last), so a marker never exists for a partial output.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

namespace rv::experiment {

using Log = std::function<void(const std::string&)>;

struct Step {
  // Log line after "[cached] " when the step is skipped ("apply qwen v α=+1").
  std::string title;
  // Log line after "[run   ] " when it runs (default: title).
  std::string run_title;
  // SHA-256 (hex) over everything the output depends on; the output's name
  // carries a prefix of it.
  std::string fingerprint;
  std::filesystem::path output;  // file or directory the step writes
  std::filesystem::path done;    // exists iff `output` is complete
  std::function<void()> run;     // writes `output` (and with it `done`)
};

struct StepCounts {
  int run = 0;     // steps executed
  int cached = 0;  // steps skipped because their done-marker existed
};

// True when the step's done-marker exists.
bool step_done(const Step& s);

// Runs `s` unless it is done; logs "[cached] TITLE" or "[run   ] RUN_TITLE"
// and counts it. Returns true when it ran. Exceptions from s.run propagate
// (the step is then neither counted nor marked done).
bool run_step(const Step& s, const Log& log, StepCounts& counts);

}  // namespace rv::experiment
