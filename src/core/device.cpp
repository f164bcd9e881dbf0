#include "histocnn/core/device.h"

#include "histocnn/core/error.h"

#include <torch/cuda.h>
#include <ATen/Parallel.h>

#include <cstdlib>
#include <thread>

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#define HISTOCNN_HAS_DLFCN 1
#endif

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

namespace {

// OpenBLAS's thread-count functions, found in the process when OpenBLAS is its BLAS (Debian's
// LibTorch calls the system libblas.so.3, which libopenblas0-pthread provides); null otherwise.
void* openblas_symbol(const char* name) {
#ifdef HISTOCNN_HAS_DLFCN
  // Already loaded only (RTLD_NOLOAD): a Python extension's libraries are not in the global scope,
  // so RTLD_DEFAULT alone would miss them.
  for (const char* soname : {"libopenblas.so.0", "libopenblas.so"}) {
    if (void* handle = dlopen(soname, RTLD_NOW | RTLD_NOLOAD)) {
      void* symbol = dlsym(handle, name);
      dlclose(handle);  // drops the reference NOLOAD added; the library stays loaded
      if (symbol) return symbol;
    }
  }
  return dlsym(RTLD_DEFAULT, name);
#else
  (void)name;
  return nullptr;
#endif
}

// Whether the variable gives OpenBLAS a thread count: OpenBLAS reads it with atoi and takes an
// empty value, 0 or a negative one as no count at all (its pool then has a thread per core).
bool names_blas_threads(const char* variable) {
  const char* value = std::getenv(variable);
  return value && std::atoi(value) > 0;
}

// OpenBLAS keeps a thread pool of its own, as many threads as cores, and LibTorch calls it from
// inside its own OpenMP parallel regions: both pools then want every core, and OpenBLAS's workers
// spin. One OpenBLAS thread leaves the parallelism to LibTorch (bench/blas_threads.py: training
// epochs 1.1 to 2.7 times faster on 2 cores). A count the user gave OpenBLAS is left alone.
void configure_blas_threads() {
  if (names_blas_threads("OPENBLAS_NUM_THREADS") || names_blas_threads("GOTO_NUM_THREADS")) return;
  if (auto set = reinterpret_cast<void (*)(int)>(openblas_symbol("openblas_set_num_threads"))) set(1);
}

}  // namespace

int blas_threads() {
  auto get = reinterpret_cast<int (*)()>(openblas_symbol("openblas_get_num_threads"));
  return get ? get() : 0;
}

int configure_threads(int threads) {
  configure_blas_threads();
  if (threads <= 0) {
    threads = static_cast<int>(std::thread::hardware_concurrency());
    if (threads <= 0) threads = 1;
  }
  at::set_num_threads(threads);
  return at::get_num_threads();
}

}  // namespace histocnn
