#pragma once
// Device and thread choice, the same for the CLI, the bindings and C++ programs.
//
//   auto device = histocnn::default_device();        // CUDA when LibTorch has it, else CPU
//   histocnn::configure_threads();                   // intra-op threads = hardware cores
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
int configure_threads(int threads = 0);

}  // namespace histocnn
