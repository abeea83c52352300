#include "vector/internal.h"

#include <atomic>

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

void for_all_tiles(const std::vector<uint64_t>& numel,
                   const std::function<void(size_t, uint64_t, uint64_t)>& fn) {
  std::vector<uint64_t> first(numel.size() + 1, 0);  // first global tile of each tensor
  for (size_t i = 0; i < numel.size(); ++i)
    first[i + 1] = first[i] + (numel[i] + kTile - 1) / kTile;
  const uint64_t total = first.back();
  std::atomic<uint64_t> next{0};
  // One chunk per thread; each drains the shared tile counter.
  parallel_for(static_cast<size_t>(num_threads()), 1, [&](size_t, size_t) {
    for (uint64_t t; (t = next.fetch_add(1)) < total;) {
      const size_t i =
          static_cast<size_t>(std::upper_bound(first.begin(), first.end(), t) - first.begin() - 1);
      const uint64_t b = (t - first[i]) * kTile;
      try {
        check_interrupted();
        fn(i, b, std::min(numel[i], b + kTile));
      } catch (...) {
        next.store(total);  // the others stop at their next tile
        throw;
      }
    }
  });
}

void for_each_item(const std::vector<uint64_t>& size, const std::function<void(size_t)>& fn) {
  std::vector<size_t> order(size.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return size[a] > size[b]; });
  std::atomic<size_t> next{0};
  parallel_for(static_cast<size_t>(num_threads()), 1, [&](size_t, size_t) {
    for (size_t t; (t = next.fetch_add(1)) < order.size();) {
      try {
        check_interrupted();
        fn(order[t]);
      } catch (...) {
        next.store(order.size());
        throw;
      }
    }
  });
}

std::vector<float>& scratch(int slot, size_t n) {
  thread_local std::vector<float> bufs[4];
  auto& v = bufs[slot];
  if (v.size() < n) v.resize(n);
  return v;
}

std::vector<uint8_t>& scratch_bytes(int slot, size_t n) {
  thread_local std::vector<uint8_t> bufs[3];
  auto& v = bufs[slot];
  if (v.size() < n) v.resize(n);
  return v;
}

std::vector<uint8_t>& scratch_bytes(size_t n) {
  return scratch_bytes(0, n);
}

ViewSource source_of(const TensorSet& set, const TensorView& v) {
  const MappedFile& f = set.file_of(v.name()).file();
  return {&f, static_cast<uint64_t>(v.data - f.data()), dtype_size(v.dtype())};
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

bool is_weight_name(const std::string& name) {
  auto ends = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".weight") || ends(".bias");
}

std::string uncovered_text(const std::vector<std::string>& missing, size_t total,
                           const std::string& what) {
  std::string l = std::to_string(missing.size()) + " of " + std::to_string(total) + " " + what +
                  " are not in the vector (";
  for (size_t i = 0; i < missing.size() && i < 6; ++i) l += (i ? ", " : "") + missing[i];
  if (missing.size() > 6) l += ", ...";
  return l + ")";
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

Opened open_any(const std::filesystem::path& p) {
  Opened o;
  if (is_model_dir(p)) o.config = load_model_config(p / "config.json");
  o.set = std::make_unique<TensorSet>(p);
  return o;
}

}  // namespace rv::vec::detail
