// Hugging Face model directories and tensor collections.
//
// A TensorSet is any collection of safetensors files seen as one name ->
// tensor map: a single file (a reasoning vector), a directory with
// model.safetensors, or a sharded directory with model.safetensors.index.json.
// A ModelDir adds the parsed config.json and the list of non-weight files that
// outputs copy unchanged. Both are immutable after opening and safe to read
// from many threads.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "formats/safetensors.h"

namespace rv {

// The config.json fields the tools need. `raw` keeps the whole document.
struct ModelConfig {
  std::string architecture;  // architectures[0], e.g. "Qwen2ForCausalLM"
  std::string model_type;    // "qwen2", "qwen3", "llama"
  int hidden_size = 0;
  int num_layers = 0;        // num_hidden_layers
  int num_heads = 0;         // num_attention_heads
  int num_kv_heads = 0;      // num_key_value_heads (defaults to num_heads)
  int head_dim = 0;          // head_dim, or hidden_size / num_heads
  int intermediate_size = 0;
  int vocab_size = 0;
  int max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  std::string torch_dtype;   // "bfloat16", "float16", "float32" or empty
  nlohmann::json raw;
};

// Parses config.json. Missing required fields are an error naming the field.
ModelConfig parse_model_config(const nlohmann::json& j, const std::string& where);
ModelConfig load_model_config(const fs::path& config_json);

class TensorSet {
 public:
  // `path` is a .safetensors file, a .safetensors.index.json, or a directory
  // containing model.safetensors or model.safetensors.index.json.
  explicit TensorSet(const fs::path& path);
  const fs::path& path() const { return path_; }
  // Tensor names in a stable natural order ("layers.2" before "layers.10").
  const std::vector<std::string>& names() const { return names_; }
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  // Throws naming the tensor if it is absent.
  TensorView view(const std::string& name) const;
  const TensorInfo* find(const std::string& name) const;
  const SafetensorsFile& file_of(const std::string& name) const;
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  // __metadata__ of the first file (shards normally share it).
  const std::map<std::string, std::string>& metadata() const { return files_.front()->metadata(); }
  uint64_t total_bytes() const;

 private:
  fs::path path_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<size_t, const TensorInfo*>> index_;
  std::vector<std::string> names_;
};

class ModelDir {
 public:
  // Requires config.json and weights; throws naming what is missing.
  explicit ModelDir(const fs::path& dir);
  const fs::path& path() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  const TensorSet& tensors() const { return *tensors_; }
  // Files other than weights and the index (config.json, tokenizer files,
  // generation_config.json, chat_template.jinja, ...), relative names.
  const std::vector<std::string>& extra_files() const { return extra_; }
  // The dtype most weights use (what "--dtype same" means).
  DType weight_dtype() const;
  // model_fingerprint(path()).
  std::string fingerprint() const;

 private:
  fs::path dir_;
  ModelConfig config_;
  std::unique_ptr<TensorSet> tensors_;
  std::vector<std::string> extra_;
};

// The identity of a model: equal for two copies of the same model wherever
// they live, different as soon as anything that changes its outputs differs.
// Used as the evaluation cache key and to name the experiment's cached steps.
//
// Covers, by name and full content: every *.safetensors weight file, the
// shard index (model.safetensors.index.json), config.json,
// generation_config.json, the tokenizer (tokenizer.json,
// tokenizer_config.json, vocab.json, merges.txt) and the chat template
// (chat_template.jinja, chat_template.json). For a single .gguf file: its
// file name and full content.
// Deliberately not covered: the directory's path, modification times,
// README.md / model cards and any other file, so copying or touching a model
// keeps its identity.
//
// Cost: reads every weight byte once (64 MiB pieces hashed in parallel on
// all cores, pages released after hashing), i.e. about one sequential read
// of the model. Returns a 64-digit lowercase hex SHA-256. Throws rv::Error if
// the directory cannot be listed or a file cannot be read. Thread-safe.
std::string model_fingerprint(const fs::path& dir_or_gguf);

// SHA-256 (hex) of a model directory's config.json bytes, or "" for anything
// that is not a model directory (a bare tensor file). A cheap identity of the
// architecture only: vectors record it as reasonvec.*_config_sha256.
std::string model_config_identity(const fs::path& path);

// SHA-256 (hex) of the concatenated hex SHA-256s of a file's 64 MiB pieces,
// computed in parallel; the per-file digest model_fingerprint uses.
std::string sha256_file_pieces_hex(const fs::path& path);

// True when `path` looks like a model directory (has config.json).
bool is_model_dir(const fs::path& path);

// Copies `names` (relative) from `from` into `to`, byte for byte.
void copy_extra_files(const fs::path& from, const std::vector<std::string>& names, const fs::path& to);

// "a.2.b" < "a.10.b": compares digit runs numerically.
bool natural_less(const std::string& a, const std::string& b);

// The decoder layer index in a tensor name ("model.layers.12.mlp..." -> 12),
// or -1 for tensors outside the layer stack (embeddings, final norm, head).
int layer_index(const std::string& name);

}  // namespace rv
