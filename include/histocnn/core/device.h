#pragma once
// Device and thread choice, the same for the CLI, the bindings and C++ programs.
//
//   auto device = histocnn::default_device();        // CUDA when LibTorch has it, else CPU
//   histocnn::configure_threads();                   // intra-op threads = hardware cores, OpenBLAS 1
#include <torch/types.h>

#include <string>

namespace histocnn {

/// CUDA device 0 when LibTorch was built with CUDA and a GPU is visible, otherwise the CPU.
torch::Device default_device();

/// Parses "auto", "cpu", "cuda" or "cuda:N"; "auto" means default_device().
/// Throws std::invalid_argument naming the value when it is not one of those or CUDA is absent.
torch::Device parse_device(const std::string& spec);

/// Sets LibTorch's intra-op thread count (LibTorch starts with one here). threads <= 0 means
/// the number of hardware threads. Returns the count in force afterwards.
/// When OpenBLAS is the process's BLAS and neither OPENBLAS_NUM_THREADS nor GOTO_NUM_THREADS
/// names a count (a number above 0: OpenBLAS reads an empty value or 0 as none), OpenBLAS's own
/// pool is set to one thread (process-wide): LibTorch calls it from its own threads, and two pools
/// on the same cores made training epochs up to 2.7 times slower.
int configure_threads(int threads = 0);

/// OpenBLAS's thread count in force (openblas_get_num_threads), or 0 when OpenBLAS is not loaded.
int blas_threads();

}  // namespace histocnn
