// Load-time flags shared by `generate`, `serve` and `eval`:
// --vector FILE --alpha A, vectors added to a model's weights
// (engine::ModelOptions::vectors), parsed like `apply`'s flags: repeatable,
// paired in order, alpha 1 when no --alpha is given at all; and --no-mmap
// (engine::ModelOptions::copy_weights).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "engine/model.h"

namespace rv::cli {

struct VectorFlags {
  std::vector<std::string> vectors;
  std::vector<double> alphas;
  bool partial = false;  // --partial: full vectors may leave weights unchanged
  bool given() const { return !vectors.empty() || !alphas.empty(); }
};

// Adds --vector and --alpha to `sub`, bound to `f` (which must outlive parsing).
void add_vector_flags(CLI::App* sub, VectorFlags* f);

// Adds --no-mmap to `sub`, bound to `flag`.
void add_no_mmap_flag(CLI::App* sub, bool* flag);

// The flags as load-time vectors. Throws CLI::ValidationError when the
// counts of --vector and --alpha do not pair up.
std::vector<engine::LoadVector> load_vectors(const VectorFlags& f);

// A `serve --variant` list "VECTOR:ALPHA+VECTOR:ALPHA" (":ALPHA" optional,
// alpha 1; empty: no vectors). Throws CLI::ValidationError on a bad alpha.
std::vector<engine::LoadVector> parse_vector_list(const std::string& spec);

// "v1.safetensors*0.5 + adapter*-1", for logs.
std::string describe_vectors(const std::vector<engine::LoadVector>& v);

}  // namespace rv::cli
