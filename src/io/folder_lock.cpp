#include "histocnn/io/folder_lock.h"

#include "histocnn/core/error.h"
#include "histocnn/core/log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace histocnn::io {

namespace fs = std::filesystem;

namespace {

// "process 1234 (histocnn train ...)" from the lock file, or "another process" when unreadable.
std::string holder_of(const fs::path& lock_file) {
  std::ifstream in(lock_file);
  std::string line;
  std::getline(in, line);
  return line.empty() ? std::string("another process") : line;
}

std::string this_process() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string cmd = ss.str();
  for (auto& c : cmd) {
    if (c == '\0') c = ' ';
  }
  while (!cmd.empty() && cmd.back() == ' ') cmd.pop_back();
  if (cmd.size() > 200) cmd = cmd.substr(0, 200) + "...";
  return fmt::format("process {}{}", ::getpid(), cmd.empty() ? "" : fmt::format(" ({})", cmd));
}

}  // namespace

FolderLock::FolderLock(const fs::path& folder, const std::string& what, bool wait) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  HISTOCNN_CHECK_IO(!ec, "cannot create the {} '{}': {}", what, folder.string(), ec.message());
  const fs::path lock_file = folder / ".lock";
  fd_ = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  HISTOCNN_CHECK_IO(fd_ >= 0, "cannot lock the {} '{}': {}", what, folder.string(), std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) {
      ::close(fd_);
      HISTOCNN_FAIL_IO("cannot lock the {} '{}': {}", what, folder.string(), std::strerror(err));
    }
    const std::string holder = holder_of(lock_file);
    if (!wait) {
      ::close(fd_);
      throw FolderBusy(fmt::format("the {} '{}' is being written by {}; wait for it to finish (--wait waits for "
                                   "it), or write somewhere else",
                                   what, folder.string(), holder));
    }
    log_info("waiting for {} to finish with the {} '{}'", holder, what, folder.string());
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) {
        const int e = errno;
        ::close(fd_);
        HISTOCNN_FAIL_IO("cannot lock the {} '{}': {}", what, folder.string(), std::strerror(e));
      }
    }
  }
  // Who holds it now, for the message another process will show.
  const std::string me = this_process() + "\n";
  if (::ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] const auto written = ::pwrite(fd_, me.data(), me.size(), 0);
  }
}

FolderLock::~FolderLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace histocnn::io
