#include "formats/model_dir.h"

#include <algorithm>
#include <set>

#include "common/error.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/parallel.h"

namespace rv {

using json = nlohmann::json;

bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (isdigit(static_cast<unsigned char>(a[i])) && isdigit(static_cast<unsigned char>(b[j]))) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (j2 < b.size() && isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
      std::string x = a.substr(i, i2 - i), y = b.substr(j, j2 - j);
      x.erase(0, std::min(x.find_first_not_of('0'), x.size()));
      y.erase(0, std::min(y.find_first_not_of('0'), y.size()));
      if (x.size() != y.size()) return x.size() < y.size();
      if (x != y) return x < y;
      i = i2;
      j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

int layer_index(const std::string& name) {
  static const std::string keys[] = {".layers.", ".h.", ".blocks."};
  for (const auto& k : keys) {
    auto p = name.find(k);
    if (p == std::string::npos) continue;
    p += k.size();
    int v = 0;
    size_t q = p;
    while (q < name.size() && isdigit(static_cast<unsigned char>(name[q])) && q - p < 6)
      v = v * 10 + (name[q++] - '0');
    if (q > p && (q == name.size() || name[q] == '.')) return v;
  }
  return -1;
}

namespace {

int get_int(const json& j, const char* key, const std::string& where, bool required, int def = 0) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) throw Error(where, std::string("missing required field '") + key + "'");
    return def;
  }
  if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > (1 << 30))
    throw Error(where, std::string("field '") + key + "' is not a valid non-negative integer");
  return it->get<int>();
}

double get_double(const json& j, const char* key, const std::string& where, double def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number()) throw Error(where, std::string("field '") + key + "' is not a number");
  return it->get<double>();
}

}  // namespace

ModelConfig parse_model_config(const json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where, "config is not a JSON object");
  ModelConfig c;
  c.raw = j;
  if (auto a = j.find("architectures"); a != j.end() && a->is_array() && !a->empty() &&
                                        (*a)[0].is_string())
    c.architecture = (*a)[0].get<std::string>();
  if (auto m = j.find("model_type"); m != j.end() && m->is_string()) c.model_type = m->get<std::string>();
  c.hidden_size = get_int(j, "hidden_size", where, true);
  c.num_layers = get_int(j, "num_hidden_layers", where, true);
  c.num_heads = get_int(j, "num_attention_heads", where, true);
  c.num_kv_heads = get_int(j, "num_key_value_heads", where, false, c.num_heads);
  c.intermediate_size = get_int(j, "intermediate_size", where, true);
  c.vocab_size = get_int(j, "vocab_size", where, true);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", where, false, 0);
  if (c.num_heads <= 0) throw Error(where, "num_attention_heads must be positive");
  c.head_dim = get_int(j, "head_dim", where, false, c.hidden_size / c.num_heads);
  if (c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0)
    throw Error(where, "num_attention_heads must be a multiple of num_key_value_heads");
  if (auto t = j.find("tie_word_embeddings"); t != j.end() && t->is_boolean())
    c.tie_word_embeddings = t->get<bool>();
  c.rope_theta = get_double(j, "rope_theta", where, 10000.0);
  c.rms_norm_eps = get_double(j, "rms_norm_eps", where, 1e-6);
  if (auto d = j.find("torch_dtype"); d != j.end() && d->is_string()) c.torch_dtype = d->get<std::string>();
  else if (auto d2 = j.find("dtype"); d2 != j.end() && d2->is_string()) c.torch_dtype = d2->get<std::string>();
  return c;
}

ModelConfig load_model_config(const fs::path& p) {
  std::string text = read_file(p);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(p.string(), "malformed JSON: " + std::string(e.what()));
  }
  return parse_model_config(j, p.string());
}

TensorSet::TensorSet(const fs::path& path) : path_(path) {
  std::error_code ec;
  fs::path index;
  std::vector<fs::path> shard_paths;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(path / "model.safetensors.index.json")) {
      index = path / "model.safetensors.index.json";
    } else if (fs::exists(path / "model.safetensors")) {
      shard_paths.push_back(path / "model.safetensors");
    } else {
      throw Error(path.string(), "no model.safetensors or model.safetensors.index.json in directory");
    }
  } else if (path.string().size() > 11 &&
             path.string().substr(path.string().size() - 11) == ".index.json") {
    index = path;
  } else {
    if (!fs::exists(path, ec)) throw Error(path.string(), "no such file or directory");
    shard_paths.push_back(path);
  }
  std::map<std::string, std::string> weight_map;
  if (!index.empty()) {
    json j;
    try {
      j = json::parse(read_file(index));
    } catch (const json::exception& e) {
      throw Error(index.string(), "malformed JSON: " + std::string(e.what()));
    }
    auto wm = j.find("weight_map");
    if (!j.is_object() || wm == j.end() || !wm->is_object())
      throw Error(index.string(), "missing 'weight_map' object");
    std::set<std::string> shards;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string()) throw Error(index.string(), "weight_map value for '" + it.key() + "' is not a string");
      std::string f = it.value().get<std::string>();
      if (f.find('/') != std::string::npos || f == "..")
        throw Error(index.string(), "weight_map names a file outside the directory: '" + f + "'");
      weight_map[it.key()] = f;
      shards.insert(f);
    }
    for (const auto& s : shards) {
      fs::path sp = index.parent_path() / s;
      if (!fs::exists(sp, ec)) throw Error(index.string(), "names missing shard '" + s + "'");
      shard_paths.push_back(sp);
    }
  }
  std::vector<std::string> fnames;
  for (const auto& sp : shard_paths) {
    files_.push_back(std::make_unique<SafetensorsFile>(sp));
    fnames.push_back(sp.filename().string());
  }
  for (size_t f = 0; f < files_.size(); ++f) {
    for (const TensorInfo& t : files_[f]->tensors()) {
      if (!weight_map.empty()) {
        auto w = weight_map.find(t.name);
        if (w == weight_map.end() || w->second != fnames[f]) continue;  // index decides
      }
      if (!index_.emplace(t.name, std::make_pair(f, &t)).second)
        throw Error(files_[f]->path().string(), "tensor '" + t.name + "' appears in more than one shard");
    }
  }
  for (const auto& [name, file] : weight_map)
    if (!index_.count(name))
      throw Error(index.string(), "tensor '" + name + "' is listed in the index but missing from " + file);
  for (const auto& kv : index_) names_.push_back(kv.first);
  std::sort(names_.begin(), names_.end(), natural_less);
}

const TensorInfo* TensorSet::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second.second;
}

TensorView TensorSet::view(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error(path_.string(), "no tensor named '" + name + "'");
  return files_[it->second.first]->view(*it->second.second);
}

const SafetensorsFile& TensorSet::file_of(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error(path_.string(), "no tensor named '" + name + "'");
  return *files_[it->second.first];
}

uint64_t TensorSet::total_bytes() const {
  uint64_t n = 0;
  for (const auto& kv : index_) n += kv.second.second->nbytes();
  return n;
}

bool is_model_dir(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::exists(path / "config.json", ec);
}

static bool is_weight_file(const std::string& n) {
  auto ends = [&](const std::string& s) { return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0; };
  return ends(".safetensors") || ends(".safetensors.index.json") || ends(".bin") ||
         ends(".bin.index.json") || ends(".pt") || ends(".pth") || ends(".gguf") || ends(".msgpack") ||
         ends(".h5") || n == "README.md" || n[0] == '.';
}

ModelDir::ModelDir(const fs::path& dir) : dir_(dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(dir.string(), "not a model directory (does not exist or is not a directory)");
  if (!fs::exists(dir / "config.json", ec)) throw Error(dir.string(), "not a model directory: no config.json");
  config_ = load_model_config(dir / "config.json");
  tensors_ = std::make_unique<TensorSet>(dir);
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    std::string n = e.path().filename().string();
    if (!is_weight_file(n)) extra_.push_back(n);
  }
  std::sort(extra_.begin(), extra_.end());
}

DType ModelDir::weight_dtype() const {
  std::map<DType, uint64_t> bytes;
  for (const auto& n : tensors_->names()) {
    const TensorInfo* t = tensors_->find(n);
    if (is_float_dtype(t->dtype)) bytes[t->dtype] += t->nbytes();
  }
  DType best = DType::F32;
  uint64_t most = 0;
  for (auto [d, b] : bytes)
    if (b > most) most = b, best = d;
  return best;
}

void copy_extra_files(const fs::path& from, const std::vector<std::string>& names, const fs::path& to) {
  for (const auto& n : names) write_file(to / n, read_file(from / n));
}

std::string sha256_file_pieces_hex(const fs::path& path) {
  MappedFile m(path);
  const size_t piece = size_t(64) << 20;
  const size_t n = m.size() == 0 ? 1 : (m.size() + piece - 1) / piece;
  std::vector<std::string> hashes(n);
  parallel_for(n, 1, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      size_t off = i * piece, len = std::min(piece, m.size() - std::min(m.size(), off));
      hashes[i] = sha256_hex(std::string_view(reinterpret_cast<const char*>(m.data()) + off, len));
      if (len) m.dont_need(off, len);
    }
  });
  Sha256 h;
  for (const auto& x : hashes) h.update(x);
  return h.hex();
}

std::string model_fingerprint(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir, ec)) {  // a single .gguf file
    Sha256 h;
    h.update(dir.filename().string());
    h.update(sha256_file_pieces_hex(dir));
    return h.hex();
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    std::string name = e.path().filename().string();
    bool weights = name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0;
    bool meta = name == "config.json" || name == "tokenizer.json" ||
                name == "tokenizer_config.json" || name == "vocab.json" || name == "merges.txt" ||
                name == "chat_template.jinja" || name == "chat_template.json" ||
                name == "generation_config.json" || name == "model.safetensors.index.json";
    if (weights || meta) files.push_back(e.path());
  }
  if (ec) throw Error(dir.string(), "cannot list model directory: " + ec.message());
  std::sort(files.begin(), files.end());
  Sha256 h;
  for (const auto& f : files) {
    h.update(f.filename().string());
    h.update("\n");
    h.update(sha256_file_pieces_hex(f));
    h.update("\n");
  }
  return h.hex();
}

std::string ModelDir::fingerprint() const { return model_fingerprint(dir_); }

std::string model_config_identity(const fs::path& path) {
  if (!is_model_dir(path)) return "";
  return sha256_hex(read_file(path / "config.json"));
}

}  // namespace rv
