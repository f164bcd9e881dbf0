#pragma once
// NumPy's .npy format (version 1.0), for arrays that Python reads with numpy.load.
//
//   histocnn::io::write_npy("cam.npy", map);   // float32, C order, any number of dimensions
//   // Python: numpy.load("cam.npy").shape == tuple(map.sizes())
#include <torch/types.h>

#include <filesystem>

namespace histocnn::io {

/// Writes a tensor as float32 (converted from any dtype and device) to a .npy file, atomically
/// (io/atomic_file.h).
void write_npy(const std::filesystem::path& path, const torch::Tensor& tensor);

}  // namespace histocnn::io
