#include "histocnn/io/npy.h"

#include "histocnn/io/atomic_file.h"

#include <torch/torch.h>

#include <string>

namespace histocnn::io {

void write_npy(const std::filesystem::path& path, const torch::Tensor& tensor) {
  const auto t = tensor.to(torch::kCPU, torch::kFloat32).contiguous();
  std::string shape;
  for (int64_t i = 0; i < t.dim(); ++i) shape += std::to_string(t.size(i)) + (t.dim() == 1 || i + 1 < t.dim() ? "," : "");
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }";
  // Magic, version 1.0, header length; the header is padded with spaces to a multiple of 64 bytes.
  const size_t preamble = 10;
  header.append(64 - (preamble + header.size() + 1) % 64, ' ');
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>((header.size() >> 8) & 0xff);
  bytes += header;
  bytes.append(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel()) * sizeof(float));
  write_file_atomic(path, bytes);
}

}  // namespace histocnn::io
