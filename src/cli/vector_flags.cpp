#include "cli/vector_flags.h"

#include <cmath>
#include <cstdlib>

namespace rv::cli {

void add_no_mmap_flag(CLI::App* sub, bool* flag) {
  sub->add_flag("--no-mmap", *flag,
                "Copy the weights into RAM (2 MiB pages) instead of reading them from the "
                "memory-mapped file: faster decode, at the cost of a second copy in memory and "
                "a slower start. Same results");
}

void add_vector_flags(CLI::App* sub, VectorFlags* f) {
  sub->add_option("--vector", f->vectors,
                  "Add a vector to the weights as the model loads (repeatable; summed in order): "
                  "a full vector (.safetensors, index.json or directory, as `apply` reads), a PEFT "
                  "LoRA adapter directory or a llama.cpp GGUF LoRA adapter. Same weights as "
                  "`reasonvec apply`, without writing a model");
  sub->add_option("--alpha", f->alphas,
                  "Scale of the matching --vector (repeatable, in the same order; default 1; "
                  "negative subtracts)");
  sub->add_flag("--partial", f->partial,
                "Allow a full vector that leaves some of the model's weights unchanged (refused "
                "by default, as by `apply`: such a vector was most likely made for another model)");
}

std::vector<engine::LoadVector> load_vectors(const VectorFlags& f) {
  if (!f.alphas.empty() && f.alphas.size() != f.vectors.size())
    throw CLI::ValidationError("--alpha", "give one --alpha per --vector (or none for alpha = 1)");
  std::vector<engine::LoadVector> r;
  for (size_t i = 0; i < f.vectors.size(); ++i)
    r.push_back({f.vectors[i], f.alphas.empty() ? 1.0 : f.alphas[i], f.partial});
  return r;
}

std::vector<engine::LoadVector> parse_vector_list(const std::string& spec) {
  std::vector<engine::LoadVector> r;
  if (spec.empty()) return r;
  size_t b = 0;
  while (b <= spec.size()) {
    size_t e = spec.find('+', b);
    if (e == std::string::npos) e = spec.size();
    const std::string item = spec.substr(b, e - b);
    if (item.empty()) throw CLI::ValidationError("--variant", "empty vector in '" + spec + "'");
    engine::LoadVector v{item, 1.0};
    // VECTOR:ALPHA; a path may itself hold ':', so only a number after the
    // last one is an alpha.
    if (const size_t c = item.rfind(':'); c != std::string::npos) {
      const std::string a = item.substr(c + 1);
      char* end = nullptr;
      const double x = std::strtod(a.c_str(), &end);
      if (!a.empty() && end == a.c_str() + a.size()) {
        if (!std::isfinite(x))
          throw CLI::ValidationError("--variant", "alpha '" + a + "' is not a finite number");
        v = {item.substr(0, c), x};
      }
    }
    r.push_back(v);
    b = e + 1;
  }
  return r;
}

std::string describe_vectors(const std::vector<engine::LoadVector>& v) {
  std::string s;
  for (const auto& x : v) {
    char a[32];
    snprintf(a, sizeof a, "%g", x.alpha);
    s += (s.empty() ? "" : " + ") + x.path.string() + "*" + a;
  }
  return s;
}

}  // namespace rv::cli
