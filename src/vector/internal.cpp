#include "vector/internal.h"

#include "common/error.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/parallel.h"

namespace rv::vec::detail {

void for_tiles(uint64_t n, const std::function<void(uint64_t, uint64_t)>& fn) {
  const uint64_t tiles = (n + kTile - 1) / kTile;
  parallel_for(tiles, 1, [&](size_t tb, size_t te) {
    for (size_t t = tb; t < te; ++t) {
      check_interrupted();
      uint64_t b = t * kTile, e = std::min(n, b + kTile);
      fn(b, e);
    }
  });
}

std::vector<float>& scratch(int slot, size_t n) {
  thread_local std::vector<float> bufs[4];
  auto& v = bufs[slot];
  if (v.size() < n) v.resize(n);
  return v;
}

std::vector<uint8_t>& scratch_bytes(size_t n) {
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < n) buf.resize(n);
  return buf;
}

void release(const TensorSet& set, const TensorView& v, uint64_t b, uint64_t e) {
  const SafetensorsFile& f = set.file_of(v.name());
  const size_t es = dtype_size(v.dtype());
  size_t off = static_cast<size_t>(v.data - f.file().data()) + b * es;
  // Only whole pages strictly inside the range: neighbours may still be in use.
  const size_t page = 4096;
  size_t start = (off + page - 1) & ~(page - 1);
  size_t end = (off + (e - b) * es) & ~(page - 1);
  if (end > start) f.file().dont_need(start, end - start);
}

NameFilter::NameFilter(const std::string& include, const std::string& exclude) {
  try {
    if (!include.empty()) inc_ = std::regex(include, std::regex::ECMAScript), has_inc_ = true;
  } catch (const std::regex_error& e) {
    throw Error("--include: invalid regex '" + include + "': " + e.what());
  }
  try {
    if (!exclude.empty()) exc_ = std::regex(exclude, std::regex::ECMAScript), has_exc_ = true;
  } catch (const std::regex_error& e) {
    throw Error("--exclude: invalid regex '" + exclude + "': " + e.what());
  }
}

bool NameFilter::operator()(const std::string& name) const {
  if (has_inc_ && !std::regex_search(name, inc_)) return false;
  if (has_exc_ && std::regex_search(name, exc_)) return false;
  return true;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

bool is_vocab_tensor(const std::string& name) {
  auto ends = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends("embed_tokens.weight") || name == kLmHead || ends(".lm_head.weight") ||
         ends("wte.weight") || ends("embed_out.weight");
}

std::map<std::string, std::string> base_metadata(const std::string& kind, const std::string& cmd) {
  std::map<std::string, std::string> m;
  m["reasonvec.format_version"] = "1";
  m["reasonvec.tool_version"] = RV_VERSION;
  m["reasonvec.kind"] = kind;
  if (!cmd.empty()) m["reasonvec.command"] = cmd;
  return m;
}

std::string config_hash(const std::filesystem::path& p) {
  if (!is_model_dir(p)) return "";
  return sha256_hex(read_file(p / "config.json"));
}

Opened open_any(const std::filesystem::path& p) {
  Opened o;
  if (is_model_dir(p)) o.config = load_model_config(p / "config.json");
  o.set = std::make_unique<TensorSet>(p);
  return o;
}

}  // namespace rv::vec::detail
