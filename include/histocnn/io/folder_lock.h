#pragma once
// One writer per folder: a run folder, a serving base path or a pipeline root is locked by the
// process that writes it.
//
//   histocnn::io::FolderLock lock("runs/x", "run folder", /*wait=*/false);  // throws FolderBusy
//
// The lock is flock(2) on <folder>/.lock, which also records the holder's process id and command.
// The kernel releases it when the process ends, however it ends (kill -9 included), so a crashed
// writer never leaves a folder locked. Two locks on one folder conflict within one process too.
#include <filesystem>
#include <stdexcept>
#include <string>

namespace histocnn::io {

/// Another process (or another lock in this one) holds the folder.
struct FolderBusy : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class FolderLock {
 public:
  /// Creates `folder` when missing and locks it. When it is held: waits for it when `wait`
  /// (logging who holds it), otherwise throws FolderBusy naming the holder and what to do.
  /// `what` names the folder in messages ("run folder").
  FolderLock(const std::filesystem::path& folder, const std::string& what, bool wait);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace histocnn::io
