// Restores the kernel ISA a test found when it ends, so a test that switches
// ISAs (kern::set_isa) cannot leak its choice into the tests after it.
#pragma once

#include "engine/kernels.h"

namespace rv::enginetest {

struct IsaGuard {
  engine::kern::Isa saved = engine::kern::isa();
  ~IsaGuard() { engine::kern::set_isa(saved); }
  IsaGuard() = default;
  IsaGuard(const IsaGuard&) = delete;
  IsaGuard& operator=(const IsaGuard&) = delete;
};

}  // namespace rv::enginetest
