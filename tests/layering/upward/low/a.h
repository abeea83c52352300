#pragma once
#include "high/b.h"  // the violation the check must report
