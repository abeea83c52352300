#include "common/file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "common/error.h"

namespace rv {

constexpr size_t kHugePage = size_t{2} << 20;

MappedFile::MappedFile(const fs::path& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path.string(), "cannot open: " + errno_text(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw Error(path.string(), "cannot stat: " + errno_text(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path.string(), "not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      throw Error(path.string(), "cannot mmap: " + errno_text(e));
    }
    data_ = static_cast<const uint8_t*>(p);
    // Where the kernel can (Linux 6.x, ext4/xfs large folios), pages read in
    // through this mapping then come in 2 MiB folios mapped whole: decode,
    // which streams every weight once a token, reads them faster than
    // through 4 KiB pages (bench_engine_kernels --no-mmap-ab measures it).
    // Only a hint: elsewhere it does nothing.
    if (size_ >= kHugePage) madvise(p, size_, MADV_HUGEPAGE);
  }
  // Kept open for read(): the same file as the mapping even if the path is
  // replaced meanwhile.
  fd_ = fd;
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
  if (fd_ >= 0) ::close(fd_);
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : path_(std::move(o.path_)), data_(o.data_), size_(o.size_), fd_(o.fd_) {
  o.data_ = nullptr;
  o.size_ = 0;
  o.fd_ = -1;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (data_) munmap(const_cast<uint8_t*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    data_ = o.data_;
    size_ = o.size_;
    fd_ = o.fd_;
    o.data_ = nullptr;
    o.size_ = 0;
    o.fd_ = -1;
  }
  return *this;
}

static void advise(const uint8_t* base, size_t size, size_t off, size_t len, int how) {
  if (!base || off >= size) return;
  const size_t page = 4096;
  size_t a = off & ~(page - 1);
  size_t end = std::min(size, off + len);
  madvise(const_cast<uint8_t*>(base) + a, end - a, how);
}

void MappedFile::read(size_t off, void* dst, size_t n) const {
  if (off > size_ || n > size_ - off)
    throw Error(path_.string(), "internal: read of " + std::to_string(n) + " bytes at " +
                                    std::to_string(off) + " past the end (" +
                                    std::to_string(size_) + " bytes)");
  auto* p = static_cast<uint8_t*>(dst);
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd_, p + done, n - done, static_cast<off_t>(off + done));
    if (r < 0 && errno == EINTR) continue;
    // 0: the file shrank under the mapping (truncated by someone else).
    if (r <= 0) throw Error(path_.string(), "read failed: " + errno_text(r < 0 ? errno : EIO));
    done += static_cast<size_t>(r);
  }
}

void MappedFile::will_need(size_t off, size_t len) const {
  advise(data_, size_, off, len, MADV_WILLNEED);
}
void MappedFile::dont_need(size_t off, size_t len) const {
  advise(data_, size_, off, len, MADV_DONTNEED);
}

FileWriter::FileWriter(const fs::path& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(path.string(), "cannot create: " + errno_text(errno));
  buf_.reserve(1 << 20);
}

FileWriter::~FileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void FileWriter::flush() {
  size_t done = 0;
  while (done < buf_.size()) {
    ssize_t n = ::write(fd_, buf_.data() + done, buf_.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(path_.string(), "write failed: " + errno_text(errno));
    }
    if (n == 0) throw Error(path_.string(), "write failed: no progress");
    done += static_cast<size_t>(n);
  }
  buf_.clear();
}

void FileWriter::write(const void* data, size_t n) {
  if (fd_ < 0) throw Error(path_.string(), "write after close");
  const char* p = static_cast<const char*>(data);
  offset_ += n;
  if (buf_.size() + n <= buf_.capacity()) {
    buf_.append(p, n);
    return;
  }
  flush();
  if (n >= buf_.capacity()) {  // large block: write straight through
    buf_.assign(p, n);
    flush();
    buf_.reserve(1 << 20);
  } else {
    buf_.append(p, n);
  }
}

void FileWriter::close() {
  if (fd_ < 0) return;
  flush();
  if (sync_outputs() && fsync(fd_) != 0 && errno != EINVAL) {
    int e = errno;
    ::close(fd_);
    fd_ = -1;
    throw Error(path_.string(), "fsync failed: " + errno_text(e));
  }
  if (::close(fd_) != 0) {
    fd_ = -1;
    throw Error(path_.string(), "close failed: " + errno_text(errno));
  }
  fd_ = -1;
}

void write_file(const fs::path& path, std::string_view content) {
  FileWriter w(path);
  w.write(content);
  w.close();
}

void write_file_atomic(const fs::path& path, std::string_view content) {
  AtomicOutput out(path, AtomicOutput::Kind::kFile, /*force=*/true);
  write_file(out.path(), content);
  out.commit();
}

std::string read_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path.string(), "cannot open: " + errno_text(errno));
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      throw Error(path.string(), "read failed: " + errno_text(e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

namespace {
std::atomic<bool> g_sync_outputs{true};
}  // namespace

void set_sync_outputs(bool on) {
  g_sync_outputs.store(on, std::memory_order_relaxed);
}
bool sync_outputs() {
  return g_sync_outputs.load(std::memory_order_relaxed);
}

void fsync_dir(const fs::path& dir) {
  if (!sync_outputs()) return;
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: some filesystems refuse directory fds
  fsync(fd);
  ::close(fd);
}

namespace {

// Temporaries of writers that were killed (SIGKILL, power loss) never got
// their destructor: remove those whose process is gone, so a rerun leaves
// the directory clean. A live process's temporary is never touched.
void remove_stale_temps(const fs::path& dir, const std::string& stem) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= stem.size() || name.compare(0, stem.size(), stem) != 0) continue;
    const std::string digits = name.substr(stem.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    if (pid <= 0 || (::kill(pid, 0) != 0 && errno == ESRCH)) {
      std::error_code rm;
      fs::remove_all(it->path(), rm);
    }
  }
}

}  // namespace

AtomicOutput::AtomicOutput(fs::path final_path, Kind kind, bool force)
    : final_(std::move(final_path)), kind_(kind), force_(force) {
  std::error_code ec;
  if (fs::exists(final_, ec) && !force_)
    throw Error(final_.string(), "output already exists (use --force to overwrite)");
  fs::path parent = final_.parent_path();
  if (parent.empty()) parent = ".";
  if (!fs::is_directory(parent, ec))
    throw Error(final_.string(), "parent directory does not exist");
  const std::string stem = "." + final_.filename().string() + ".tmp-";
  tmp_ = parent / (stem + std::to_string(getpid()));
  fs::remove_all(tmp_, ec);
  remove_stale_temps(parent, stem);
  if (kind_ == Kind::kDirectory) {
    if (::mkdir(tmp_.c_str(), 0755) != 0)
      throw Error(final_.string(), "cannot create output directory: " + errno_text(errno));
  }
}

AtomicOutput::~AtomicOutput() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

void AtomicOutput::commit() {
  if (committed_) return;
  if (kind_ == Kind::kDirectory) fsync_dir(tmp_);
  std::error_code ec;
  if (fs::exists(final_, ec)) {
    if (!force_) throw Error(final_.string(), "output appeared while we were writing it");
    fs::remove_all(final_, ec);
    if (ec) throw Error(final_.string(), "cannot replace existing output: " + ec.message());
  }
  if (::rename(tmp_.c_str(), final_.c_str()) != 0)
    throw Error(final_.string(), "cannot move output into place: " + errno_text(errno));
  committed_ = true;
  fsync_dir(final_.parent_path());
}

static std::atomic<bool> g_interrupted{false};

static void on_signal(int) {
  g_interrupted.store(true);
}

void install_interrupt_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // With RLIMIT_FSIZE a too-large write would kill us with SIGXFSZ before we
  // could clean up; ignoring it makes write() fail with EFBIG instead.
  signal(SIGXFSZ, SIG_IGN);
}

bool interrupted() {
  return g_interrupted.load(std::memory_order_relaxed);
}

void check_interrupted() {
  if (interrupted()) throw Error("interrupted");
}

}  // namespace rv
