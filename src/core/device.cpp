#include "histocnn/core/device.h"

#include "histocnn/core/error.h"

#include <torch/cuda.h>
#include <ATen/Parallel.h>

#include <thread>

namespace histocnn {

torch::Device default_device() {
  return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
}

torch::Device parse_device(const std::string& spec) {
  if (spec.empty() || spec == "auto") return default_device();
  if (spec == "cpu") return torch::Device(torch::kCPU);
  if (spec.rfind("cuda", 0) == 0) {
    HISTOCNN_CHECK(torch::cuda::is_available(),
                   "device '{}' was requested but LibTorch sees no CUDA GPU; use 'cpu' or 'auto'", spec);
    try {
      return torch::Device(spec);
    } catch (const std::exception&) {
      HISTOCNN_FAIL("device '{}' is not valid; use 'auto', 'cpu', 'cuda' or 'cuda:N'", spec);
    }
  }
  HISTOCNN_FAIL("device '{}' is not valid; use 'auto', 'cpu', 'cuda' or 'cuda:N'", spec);
}

int configure_threads(int threads) {
  if (threads <= 0) {
    threads = static_cast<int>(std::thread::hardware_concurrency());
    if (threads <= 0) threads = 1;
  }
  at::set_num_threads(threads);
  return at::get_num_threads();
}

}  // namespace histocnn
