// Files: read-only memory maps, checked writers and all-or-nothing outputs.
//
// All errors throw rv::Error("path: what"). None of these types are
// thread-safe for concurrent mutation; a MappedFile may be read from any
// number of threads once open.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace rv {

namespace fs = std::filesystem;

// A whole file mapped read-only. Zero-length files are valid (data() == nullptr).
// Mappings of 2 MiB or more ask for transparent huge pages (MADV_HUGEPAGE),
// so a file read in through them lands in the page cache in 2 MiB folios
// where the kernel and filesystem support that.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const fs::path& path);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const fs::path& path() const { return path_; }
  // Hint that [offset, offset+len) will be read soon / is no longer needed;
  // lets streaming jobs over models larger than RAM keep a small page cache.
  void will_need(size_t offset, size_t len) const;
  void dont_need(size_t offset, size_t len) const;
  // Copies bytes [offset, offset+n) of the file into dst (pread on the file
  // that is mapped). For one streaming pass over large data this beats
  // reading the mapping: no page faults, no TLB misses on 4 KiB pages, no
  // unmapping afterwards, and the copy lands in a cache-sized buffer that
  // the caller reuses. Thread-safe; throws naming the path on an I/O error
  // or a range past the end.
  void read(size_t offset, void* dst, size_t n) const;

 private:
  fs::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  int fd_ = -1;
};

// Sequential writer over a file descriptor with its own buffer. Short writes,
// ENOSPC and EFBIG (RLIMIT_FSIZE) all surface as rv::Error naming the path.
class FileWriter {
 public:
  explicit FileWriter(const fs::path& path);  // creates/truncates
  ~FileWriter();                              // closes without syncing; never throws
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  uint64_t offset() const { return offset_; }
  // Flushes the buffer, fsyncs and closes. Must be called for the data to count.
  void close();
  const fs::path& path() const { return path_; }

 private:
  void flush();
  fs::path path_;
  int fd_ = -1;
  uint64_t offset_ = 0;
  std::string buf_;
};

// Writes a whole small file (JSON, README) through FileWriter.
void write_file(const fs::path& path, std::string_view content);
// write_file through AtomicOutput (replacing an existing file): the file
// appears complete or not at all, whatever error, full disk or Ctrl-C.
void write_file_atomic(const fs::path& path, std::string_view content);
// Reads a whole small file; throws naming the path when missing/unreadable.
std::string read_file(const fs::path& path);

// An output file or directory that appears at `final_path` all at once, or
// not at all. Work is written under path() — a hidden temporary sibling — and
// commit() fsyncs and renames it into place. Destroying an uncommitted output
// (error, exception, Ctrl-C turned into an exception) removes the temporary.
class AtomicOutput {
 public:
  enum class Kind { kFile, kDirectory };
  // Throws if final_path exists and !force, or its parent is not writable.
  // Also removes temporaries of this output left by writers that died
  // (".NAME.tmp-PID" siblings whose PID no longer exists).
  AtomicOutput(fs::path final_path, Kind kind, bool force);
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  const fs::path& path() const { return tmp_; }
  const fs::path& final_path() const { return final_; }
  void commit();

 private:
  fs::path final_, tmp_;
  Kind kind_;
  bool force_;
  bool committed_ = false;
};

// fsync a directory so a rename inside it is durable.
void fsync_dir(const fs::path& dir);

// Whether outputs are fsynced before they are published (default: yes).
// Without it an output is still all-or-nothing against errors, a full disk,
// Ctrl-C and kill (temporary path + rename), but a power loss or kernel crash
// shortly after may leave it incomplete: the trade `cp` and most ML tools
// make, for speed. Process-wide; set once at startup (CLI --no-sync).
void set_sync_outputs(bool on);
bool sync_outputs();

// Ctrl-C handling: the CLI installs a handler that only sets a flag; long
// loops call check_interrupted(), which throws rv::Error("interrupted") so
// that destructors (AtomicOutput above) clean up.
void install_interrupt_handler();
bool interrupted();
void check_interrupted();

}  // namespace rv
