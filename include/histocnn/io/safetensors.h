#pragma once
// Read and write safetensors files (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header and one raw data buffer. No pickle, no code.
//
//   auto file = histocnn::io::load_safetensors("mobilenet_v2.safetensors");
//   torch::Tensor w = file.tensors.at("features.0.0.weight");      // [32, 3, 3, 3] float32
//   histocnn::io::save_safetensors("out.safetensors", {{"w", w}}, {{"format", "pt"}});
//
// Supported dtypes: F32 F64 F16 BF16 I64 I32 I16 I8 U8 BOOL. Every header field is validated;
// malformed input throws std::invalid_argument naming the source (unreadable files throw
// std::runtime_error). Loaded tensors are CPU tensors that own their memory.
#include <torch/types.h>

#include <filesystem>
#include <map>
#include <string>

namespace histocnn::io {

using TensorMap = std::map<std::string, torch::Tensor>;

struct SafetensorsFile {
  TensorMap tensors;
  std::map<std::string, std::string> metadata;  ///< the header's "__metadata__" (string values)
};

/// Reads and validates a whole file.
SafetensorsFile load_safetensors(const std::filesystem::path& path);

/// Parses bytes already in memory; `source_name` is used in error messages.
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source_name);

/// The bytes of a safetensors file: tensors moved to CPU and made contiguous, sorted by name,
/// stored back to back; the header is padded with spaces to a multiple of 8 bytes.
std::string serialize_safetensors(const TensorMap& tensors,
                                  const std::map<std::string, std::string>& metadata = {});

/// serialize_safetensors written atomically (see write_file_atomic).
void save_safetensors(const std::filesystem::path& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace histocnn::io
