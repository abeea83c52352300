#include "experiment/plan.h"

namespace rv::experiment {

bool step_done(const Step& s) {
  return std::filesystem::exists(s.done);
}

bool run_step(const Step& s, const Log& log, StepCounts& counts) {
  if (step_done(s)) {
    if (log) log("[cached] " + s.title);
    ++counts.cached;
    return false;
  }
  if (log) log("[run   ] " + (s.run_title.empty() ? s.title : s.run_title));
  s.run();
  ++counts.run;
  return true;
}

}  // namespace rv::experiment
