#include "cli/commands.h"
#include "common/error.h"
#include "formats/synth.h"

namespace rv::cli {

void add_synth_command(CLI::App& app) {
  auto* o = keep_alive<SynthOptions>();
  auto* out = keep_alive<std::string>();
  auto* dtype = keep_alive<std::string>("bf16");
  auto* force = keep_alive<bool>(false);
  auto* tok = keep_alive<std::string>();
  auto* sub = app.add_subcommand("synth", "Synthesize a random Hugging Face model directory (test fixtures, demos)");
  sub->add_option("--arch", o->arch, "Architecture: qwen2, qwen3 or llama")->capture_default_str();
  sub->add_option("--layers", o->layers, "Decoder layers")->capture_default_str();
  sub->add_option("--hidden", o->hidden, "Hidden size")->capture_default_str();
  sub->add_option("--heads", o->heads, "Attention heads")->capture_default_str();
  sub->add_option("--kv-heads", o->kv_heads, "Key/value heads (GQA)")->capture_default_str();
  sub->add_option("--head-dim", o->head_dim, "Head dimension (default hidden/heads)");
  sub->add_option("--intermediate", o->intermediate, "MLP intermediate size")->capture_default_str();
  sub->add_option("--vocab", o->vocab, "Vocabulary size (default: the tokenizer's, else 256)");
  sub->add_option("--tokenizer", *tok, "Copy tokenizer files from this directory and size the vocab from it");
  sub->add_option("--dtype", *dtype, "Weight dtype: bf16, f16 or f32")->capture_default_str();
  sub->add_option("--seed", o->seed, "Random seed")->capture_default_str();
  sub->add_option("--shards", o->shards, "Number of safetensors shards")->capture_default_str();
  sub->add_flag("--tied", o->tied, "Tie input embeddings and lm_head (no lm_head.weight)");
  sub->add_option("--init-scale", o->init_scale, "Std-dev of weight matrices")->capture_default_str();
  sub->add_option("--rope-theta", o->rope_theta, "RoPE base")->capture_default_str();
  sub->add_option("--delta-scale", o->delta_scale,
                  "Add seeded noise of this std-dev (make relatives of a --seed model)");
  sub->add_option("--delta-seed", o->delta_seed, "Seed of the --delta-scale noise");
  sub->add_flag("--force", *force, "Overwrite the output directory if it exists");
  sub->add_option("-o,--output", *out, "Output directory")->required();
  sub->callback([=] {
    auto d = parse_user_dtype(*dtype);
    if (!d) throw Error("--dtype: expected bf16, f16 or f32, got '" + *dtype + "'");
    o->dtype = *d;
    o->tokenizer_dir = *tok;
    synth_model(*o, *out, *force);
  });
}

}  // namespace rv::cli
