// reasonvec export-gguf: Hugging Face model directory -> GGUF for llama.cpp / Ollama.
#include <cstdio>

#include "cli/commands.h"
#include "common/error.h"
#include "convert/gguf_export.h"

namespace rv::cli {

void add_export_gguf_command(CLI::App& app) {
  struct Opts {
    std::string model, out, dtype, name;
    bool force = false;
  };
  auto* o = keep_alive<Opts>();
  auto* sub = app.add_subcommand(
      "export-gguf", "Write a model directory as a GGUF v3 file that llama.cpp and Ollama load");
  sub->add_option("--model,-m", o->model, "Model directory (Qwen2, Qwen3 or Llama)")->required();
  sub->add_option("-o,--output", o->out, "Output .gguf file")->required();
  sub->add_option(
      "--dtype", o->dtype,
      "Matrix dtype: f32, f16 or bf16 (default: the model's; norms and biases stay f32)");
  sub->add_option("--name", o->name, "general.name (default: the directory name)");
  sub->add_flag("--force", o->force, "Overwrite the output file if it exists");
  sub->callback([o] {
    GgufExportOptions opt;
    if (!o->dtype.empty()) {
      auto d = parse_user_dtype(o->dtype);
      if (!d || (*d != DType::F32 && *d != DType::F16 && *d != DType::BF16))
        throw Error("--dtype: expected f32, f16 or bf16, got '" + o->dtype + "'");
      opt.dtype = d;
    }
    opt.name = o->name;
    GgufExportResult r = export_gguf(o->model, o->out, opt, o->force);
    fprintf(stderr, "wrote %s: %s, %zu tensors, %lld tokens (pre %s), %.1f MB\n", o->out.c_str(),
            r.arch.c_str(), r.n_tensors, static_cast<long long>(r.n_vocab), r.pre.c_str(),
            r.bytes / 1e6);
  });
}

}  // namespace rv::cli
