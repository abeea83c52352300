#include "formats/safetensors.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "common/file.h"

namespace rv {

using json = nlohmann::json;

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

uint64_t TensorSpec::nbytes() const {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

namespace {

// Parses JSON while rejecting duplicate keys, which nlohmann would silently
// collapse (the last one winning) — a file with two "x" tensors is corrupt.
json parse_strict_json(const char* b, const char* e, const std::string& where) {
  std::vector<std::set<std::string>> keys;
  std::string dup;
  auto cb = [&](int, json::parse_event_t ev, json& parsed) -> bool {
    switch (ev) {
      case json::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second && dup.empty())
          dup = parsed.get<std::string>();
        break;
      default:
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(b, e, cb);
  } catch (const json::exception& ex) {
    std::string m = ex.what();
    auto p = m.find("] ");
    throw Error(where, "malformed header JSON: " + (p == std::string::npos ? m : m.substr(p + 2)));
  }
  if (!dup.empty()) throw Error(where, "duplicate key in header: '" + dup + "'");
  return j;
}

}  // namespace

SafetensorsHeader parse_safetensors(const uint8_t* data, size_t size, const std::string& where) {
  if (size < 8)
    throw Error(where, "truncated: " + std::to_string(size) +
                           " bytes, too short for the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > kMaxSafetensorsHeader)
    throw Error(where, "header length " + std::to_string(n) +
                           " exceeds the 100 MB limit (corrupt or not a safetensors file)");
  if (n > size - 8)
    throw Error(where, "truncated: header length " + std::to_string(n) +
                           " runs past end of file (" + std::to_string(size) + " bytes)");
  if (n < 2 || data[8] != '{')
    throw Error(where, "header is not a JSON object (not a safetensors file?)");
  const char* hb = reinterpret_cast<const char*>(data + 8);
  json j = parse_strict_json(hb, hb + n, where);
  if (!j.is_object()) throw Error(where, "header is not a JSON object");

  SafetensorsHeader h;
  h.data_start = 8 + n;
  const uint64_t data_size = size - h.data_start;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw Error(where, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          throw Error(where, "__metadata__ value for '" + m.key() + "' is not a string");
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string tw = "tensor '" + name + "'";
    if (!v.is_object()) throw Error(where, tw + ": entry is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) throw Error(where, tw + ": missing or invalid dtype");
    if (sh == v.end() || !sh->is_array()) throw Error(where, tw + ": missing or invalid shape");
    if (off == v.end() || !off->is_array() || off->size() != 2)
      throw Error(where, tw + ": missing or invalid data_offsets");
    TensorInfo t;
    t.name = name;
    auto d = parse_dtype(dt->get<std::string>());
    if (!d) throw Error(where, tw + ": unknown dtype '" + dt->get<std::string>() + "'");
    t.dtype = *d;
    uint64_t bytes = dtype_size(t.dtype);
    for (const json& s : *sh) {
      if (!s.is_number_unsigned())
        throw Error(where, tw + ": shape has a non-integer or negative entry");
      uint64_t dim = s.get<uint64_t>();
      if (dim > (1ull << 62) || __builtin_mul_overflow(bytes, dim, &bytes))
        throw Error(where, tw + ": shape size overflows");
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    for (const json& o : *off)
      if (!o.is_number_unsigned())
        throw Error(where, tw + ": data_offsets are not non-negative integers");
    t.begin = (*off)[0].get<uint64_t>();
    t.end = (*off)[1].get<uint64_t>();
    if (t.begin > t.end)
      throw Error(where, tw + ": data_offsets begin " + std::to_string(t.begin) + " > end " +
                             std::to_string(t.end));
    if (t.end > data_size)
      throw Error(where, tw + ": data_offsets end " + std::to_string(t.end) +
                             " past the data section (" + std::to_string(data_size) +
                             " bytes; truncated file?)");
    if (t.end - t.begin != bytes)
      throw Error(where, tw + ": byte span " + std::to_string(t.end - t.begin) + " != shape x " +
                             std::string(dtype_name(t.dtype)) + " size " + std::to_string(bytes));
    h.tensors.push_back(std::move(t));
  }
  std::sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  for (const TensorInfo& t : h.tensors) {
    if (t.begin < pos)
      throw Error(where, "tensor '" + t.name + "' overlaps the previous tensor (offset " +
                             std::to_string(t.begin) + " < " + std::to_string(pos) + ")");
    if (t.begin > pos)
      throw Error(where, "gap in data section before tensor '" + t.name + "' (offset " +
                             std::to_string(t.begin) + ", expected " + std::to_string(pos) + ")");
    pos = t.end;
  }
  if (pos != data_size)
    throw Error(where, "data section is " + std::to_string(data_size) +
                           " bytes but tensors cover " + std::to_string(pos));
  return h;
}

SafetensorsFile::SafetensorsFile(const fs::path& path) : file_(path) {
  header_ = parse_safetensors(file_.data(), file_.size(), path.string());
  for (size_t i = 0; i < header_.tensors.size(); ++i) by_name_[header_.tensors[i].name] = i;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &header_.tensors[it->second];
}

std::string build_safetensors_header(const std::vector<TensorSpec>& tensors,
                                     std::map<std::string, std::string> metadata,
                                     std::vector<uint64_t>* offsets_out) {
  metadata["format"] = "pt";
  // Written by hand rather than through a JSON object so that tensors appear
  // in data order (readers that stream appreciate it) and __metadata__ first.
  std::string s = "{\"__metadata__\":";
  s += json(metadata).dump();
  uint64_t off = 0;
  if (offsets_out) offsets_out->clear();
  for (const TensorSpec& t : tensors) {
    if (offsets_out) offsets_out->push_back(off);
    uint64_t end = off + t.nbytes();
    s += ",";
    s += json(t.name).dump();
    s += ":{\"dtype\":\"" + std::string(dtype_name(t.dtype)) + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) s += (i ? "," : "") + std::to_string(t.shape[i]);
    s += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(end) + "]}";
    off = end;
  }
  s += "}";
  while ((s.size() + 8) % 8) s += ' ';
  return s;
}

uint64_t parse_size(const std::string& s) {
  size_t i = 0;
  while (i < s.size() && (isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) throw Error("invalid size '" + s + "' (expected e.g. 5GB, 500MB, 2GiB)");
  double v = std::stod(s.substr(0, i));
  std::string u = s.substr(i);
  for (auto& c : u) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  double m = 1;
  if (u.empty() || u == "B")
    m = 1;
  else if (u == "KB")
    m = 1e3;
  else if (u == "MB")
    m = 1e6;
  else if (u == "GB")
    m = 1e9;
  else if (u == "TB")
    m = 1e12;
  else if (u == "KIB")
    m = 1024.0;
  else if (u == "MIB")
    m = 1024.0 * 1024;
  else if (u == "GIB")
    m = 1024.0 * 1024 * 1024;
  else if (u == "TIB")
    m = 1024.0 * 1024 * 1024 * 1024;
  else
    throw Error("invalid size unit in '" + s + "' (use B, KB, MB, GB, KiB, MiB, GiB)");
  double r = v * m;
  if (!(r >= 1)) throw Error("size '" + s + "' must be at least one byte");
  return static_cast<uint64_t>(r);
}

SafetensorsWriter::SafetensorsWriter(const fs::path& dir, std::vector<TensorSpec> tensors,
                                     Options opt)
    : dir_(dir),
      index_name_(opt.shard_prefix + ".safetensors.index.json"),
      specs_(std::move(tensors)) {
  std::set<std::string> seen;
  for (auto& t : specs_)
    if (!seen.insert(t.name).second) throw Error(dir.string(), "duplicate tensor '" + t.name + "'");
  // Plan shards the way transformers does: fill until the next tensor would
  // exceed the shard size.
  std::vector<std::vector<size_t>> groups(1);
  uint64_t cur = 0;
  for (size_t i = 0; i < specs_.size(); ++i) {
    uint64_t b = specs_[i].nbytes();
    total_ += b;
    if (!groups.back().empty() && cur + b > opt.shard_size) {
      groups.emplace_back();
      cur = 0;
    }
    groups.back().push_back(i);
    cur += b;
  }
  sharded_ = groups.size() > 1;
  shard_of_.resize(specs_.size());
  offset_of_.resize(specs_.size());
  char name[128];
  try {
    for (size_t g = 0; g < groups.size(); ++g) {
      Shard sh;
      if (sharded_) {
        snprintf(name, sizeof name, "%s-%05zu-of-%05zu.safetensors", opt.shard_prefix.c_str(),
                 g + 1, groups.size());
        sh.name = name;
      } else {
        sh.name = opt.single_name;
      }
      sh.path = dir_ / sh.name;
      std::vector<TensorSpec> sub;
      for (size_t i : groups[g]) sub.push_back(specs_[i]);
      std::vector<uint64_t> offs;
      std::string header = build_safetensors_header(sub, opt.metadata, &offs);
      for (size_t k = 0; k < groups[g].size(); ++k) {
        shard_of_[groups[g][k]] = g;
        offset_of_[groups[g][k]] = offs[k];
      }
      uint64_t data_bytes = 0;
      for (auto& t : sub) data_bytes += t.nbytes();
      sh.data_start = 8 + header.size();
      sh.fd = ::open(sh.path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (sh.fd < 0) throw Error(sh.path.string(), "cannot create: " + errno_text(errno));
      shards_.push_back(sh);
      uint64_t file_size = sh.data_start + data_bytes;
      // Reserve the space now so a full disk fails here, before hours of work.
      int rc = file_size ? posix_fallocate(sh.fd, 0, static_cast<off_t>(file_size)) : 0;
      if (rc == EOPNOTSUPP || rc == EINVAL) {
        if (ftruncate(sh.fd, static_cast<off_t>(file_size)) != 0)
          rc = errno;
        else
          rc = 0;
      }
      if (rc != 0)
        throw Error(sh.path.string(),
                    "cannot reserve " + std::to_string(file_size) + " bytes: " + errno_text(rc));
      uint8_t len[8];
      uint64_t hl = header.size();
      for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(hl >> (8 * i));
      std::string head(reinterpret_cast<char*>(len), 8);
      head += header;
      size_t done = 0;
      while (done < head.size()) {
        ssize_t n = pwrite(sh.fd, head.data() + done, head.size() - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw Error(sh.path.string(), "write failed: " + errno_text(errno));
        done += static_cast<size_t>(n);
      }
    }
  } catch (...) {
    for (auto& s : shards_)
      if (s.fd >= 0) ::close(s.fd);
    shards_.clear();
    throw;
  }
}

SafetensorsWriter::~SafetensorsWriter() {
  for (auto& s : shards_)
    if (s.fd >= 0) ::close(s.fd);
}

// RWF_DONTCACHE (Linux 6.14+; ext4, xfs, btrfs): a buffered write whose pages
// are dropped from the page cache once written back, and whose writeback
// starts at once. A model written here is mostly read again much later, if
// ever (and often does not fit in RAM); keeping it cached only makes the
// kernel allocate and later reclaim gigabytes of pages. On the dev VM,
// writing 2 GiB from two threads in 8 MiB pieces took 7-9 s by plain pwrite
// and 1.0 s with this flag, fsync included (cp of the same bytes: 1.1-1.6 s).
// Older kernels and other filesystems answer EOPNOTSUPP: then plain pwrite.
// Under --no-sync (sync_outputs() false) writes are plain, as cp's are: the
// flag starts writeback at once, on the writing thread, and that is the
// cost --no-sync opts out of (bench/vector_vs_cp.sh measures both).
#ifndef RWF_DONTCACHE
#define RWF_DONTCACHE 0x00000080
#endif

ssize_t SafetensorsWriter::write_at(int fd, const void* p, size_t n, uint64_t pos) {
  if (sync_outputs() && dontcache_.load(std::memory_order_relaxed)) {
    iovec iov{const_cast<void*>(p), n};
    ssize_t w = pwritev2(fd, &iov, 1, static_cast<off_t>(pos), RWF_DONTCACHE);
    if (w >= 0 || (errno != EOPNOTSUPP && errno != EINVAL)) return w;
    dontcache_.store(false, std::memory_order_relaxed);
  }
  return pwrite(fd, p, n, static_cast<off_t>(pos));
}

void SafetensorsWriter::write(size_t tensor, uint64_t offset, const void* data, size_t n) {
  const Shard& sh = shards_[shard_of_[tensor]];
  if (offset + n > specs_[tensor].nbytes())
    throw Error(sh.path.string(),
                "internal: write past the end of tensor '" + specs_[tensor].name + "'");
  uint64_t pos = sh.data_start + offset_of_[tensor] + offset;
  const char* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < n) {
    ssize_t w = write_at(sh.fd, p + done, n - done, pos + done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      throw Error(sh.path.string(), "write failed: " + errno_text(w < 0 ? errno : ENOSPC));
    done += static_cast<size_t>(w);
  }
  // Start writing these pages to disk now, while later tiles are computed,
  // so that finish()'s fsync has little left to wait for (RWF_DONTCACHE
  // already does). Only a hint: its errors are fsync's to report.
  if (sync_outputs() && !dontcache_.load(std::memory_order_relaxed))
    sync_file_range(sh.fd, static_cast<off_t>(pos), static_cast<off_t>(n), SYNC_FILE_RANGE_WRITE);
}

void SafetensorsWriter::finish() {
  if (finished_) return;
  for (auto& s : shards_) {
    if (sync_outputs() && fsync(s.fd) != 0)
      throw Error(s.path.string(), "fsync failed: " + errno_text(errno));
    // RWF_DONTCACHE leaves behind the pages two writes share (one every
    // write piece), which would keep nearly every 2 MiB range of the file in
    // 4 KiB page-cache folios when it is read next, and the engine's mapping
    // in 4 KiB pages (MappedFile). Dropping them makes the next reader's
    // fault-in whole: 2 MiB folios where the kernel has them. Only a hint.
    if (sync_outputs() && dontcache_.load(std::memory_order_relaxed))
      posix_fadvise(s.fd, 0, 0, POSIX_FADV_DONTNEED);
    if (::close(s.fd) != 0) {
      s.fd = -1;
      throw Error(s.path.string(), "close failed: " + errno_text(errno));
    }
    s.fd = -1;
  }
  if (sharded_) {
    json idx;
    idx["metadata"]["total_size"] = total_;
    json wm = json::object();
    for (size_t i = 0; i < specs_.size(); ++i) wm[specs_[i].name] = shards_[shard_of_[i]].name;
    idx["weight_map"] = wm;
    write_file(dir_ / index_name_, idx.dump(2) + "\n");
  }
  finished_ = true;
}

std::vector<std::string> SafetensorsWriter::files() const {
  std::vector<std::string> r;
  for (auto& s : shards_) r.push_back(s.name);
  return r;
}

}  // namespace rv
