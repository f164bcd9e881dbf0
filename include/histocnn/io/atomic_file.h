#pragma once
// Whole-file reads and crash-safe whole-file writes.
//
//   histocnn::io::write_file_atomic("runs/1/model.json", json_text);   // all or nothing
//   std::string bytes = histocnn::io::read_file("runs/1/model.json");
//
// write_file_atomic writes a uniquely named temporary file next to the target, fsyncs it, renames
// it over the target and fsyncs the folder, so readers see either the old file or the new one,
// never half of one. Both functions throw std::runtime_error naming the file and the reason.
#include <filesystem>
#include <string>

namespace histocnn::io {

/// Replaces `path` with `contents` atomically. Missing parent folders are created. On failure
/// the temporary file is removed and std::runtime_error is thrown (path and strerror in it).
void write_file_atomic(const std::filesystem::path& path, const std::string& contents);

/// Reads the whole file as bytes. Throws std::runtime_error naming the file when it is missing,
/// is a directory or cannot be read.
std::string read_file(const std::filesystem::path& path);

}  // namespace histocnn::io
