#include "histocnn/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <system_error>

#include "histocnn/core/error.h"

namespace histocnn::io {
namespace {

namespace fs = std::filesystem;

std::string errno_text(int err) { return std::strerror(err); }

// Closes a descriptor on scope exit unless released.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

// Removes the temporary file on scope exit unless the write was committed.
class TempFileGuard {
 public:
  explicit TempFileGuard(fs::path path) : path_(std::move(path)) {}
  ~TempFileGuard() {
    if (!committed_) ::unlink(path_.c_str());
  }
  void commit() { committed_ = true; }

 private:
  fs::path path_;
  bool committed_ = false;
};

std::string unique_suffix() {
  static std::atomic<unsigned long long> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}() ^
                                   static_cast<unsigned long long>(
                                       std::chrono::steady_clock::now().time_since_epoch().count())};
  return std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)) + "-" +
         std::to_string(rng() % 1000000007ULL);
}

void write_all(int fd, const std::string& contents, const fs::path& temp, const fs::path& target) {
  const char* data = contents.data();
  size_t left = contents.size();
  while (left > 0) {
    ssize_t n = ::write(fd, data, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      HISTOCNN_FAIL_IO("cannot write '{}' (temporary file '{}'): {}; check free disk space and "
                       "permissions",
                       target.string(), temp.string(), errno_text(errno));
    }
    data += n;
    left -= static_cast<size_t>(n);
  }
}

void fsync_directory(const fs::path& dir, const fs::path& target) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  HISTOCNN_CHECK_IO(fd >= 0, "wrote '{}' but cannot open its folder '{}' to sync it: {}",
                    target.string(), dir.string(), errno_text(errno));
  FdGuard guard(fd);
  if (::fsync(fd) != 0) {
    // Some filesystems do not support fsync on directories; the rename itself has happened.
    if (errno != EINVAL && errno != ENOTSUP && errno != EBADF) {
      HISTOCNN_FAIL_IO("wrote '{}' but cannot sync its folder '{}': {}", target.string(),
                       dir.string(), errno_text(errno));
    }
  }
}

}  // namespace

void write_file_atomic(const fs::path& path, const std::string& contents) {
  HISTOCNN_CHECK_IO(!path.empty(), "cannot write a file with an empty path");
  HISTOCNN_CHECK_IO(path.has_filename(), "cannot write '{}': the path names a folder, not a file",
                    path.string());
  fs::path dir = path.parent_path();
  if (dir.empty()) dir = ".";

  std::error_code ec;
  fs::create_directories(dir, ec);
  HISTOCNN_CHECK_IO(!ec, "cannot write '{}': cannot create folder '{}': {}", path.string(),
                    dir.string(), ec.message());
  HISTOCNN_CHECK_IO(fs::is_directory(dir, ec), "cannot write '{}': '{}' is not a folder",
                    path.string(), dir.string());
  HISTOCNN_CHECK_IO(!fs::is_directory(path, ec), "cannot write '{}': it is an existing folder",
                    path.string());

  fs::path temp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    temp = dir / ("." + path.filename().string() + ".tmp-" + unique_suffix());
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  HISTOCNN_CHECK_IO(fd >= 0, "cannot write '{}': cannot create a temporary file in '{}': {}",
                    path.string(), dir.string(), errno_text(errno));
  TempFileGuard temp_guard(temp);
  {
    FdGuard fd_guard(fd);
    write_all(fd, contents, temp, path);
    HISTOCNN_CHECK_IO(::fsync(fd) == 0, "cannot write '{}': fsync of '{}' failed: {}",
                      path.string(), temp.string(), errno_text(errno));
    HISTOCNN_CHECK_IO(::close(fd_guard.release()) == 0, "cannot write '{}': close of '{}' failed: {}",
                      path.string(), temp.string(), errno_text(errno));
  }
  HISTOCNN_CHECK_IO(::rename(temp.c_str(), path.c_str()) == 0,
                    "cannot write '{}': renaming the temporary file '{}' over it failed: {}",
                    path.string(), temp.string(), errno_text(errno));
  temp_guard.commit();
  fsync_directory(dir, path);
}

std::string read_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    HISTOCNN_CHECK_FOUND(err != ENOENT, "cannot read '{}': it does not exist; check the path", path.string());
    HISTOCNN_FAIL_IO("cannot read '{}': {}; check the path and its permissions", path.string(),
                     errno_text(err));
  }
  FdGuard guard(fd);
  struct stat st {};
  HISTOCNN_CHECK_IO(::fstat(fd, &st) == 0, "cannot read '{}': {}", path.string(),
                    errno_text(errno));
  HISTOCNN_CHECK_IO(!S_ISDIR(st.st_mode), "cannot read '{}': it is a directory, not a file; "
                    "pass the path of a file inside it", path.string());
  std::string out;
  if (S_ISREG(st.st_mode) && st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  char buffer[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      if (err == EISDIR) {
        HISTOCNN_FAIL_IO("cannot read '{}': it is a directory, not a file; pass the path of a "
                         "file inside it", path.string());
      }
      HISTOCNN_FAIL_IO("cannot read '{}': {}", path.string(), errno_text(err));
    }
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace histocnn::io
