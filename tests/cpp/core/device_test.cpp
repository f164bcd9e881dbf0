#include "test_prelude.h"

#include "histocnn/core/device.h"

#include "test_support.h"

#include <dlfcn.h>

#include <algorithm>
#include <map>
#include <string>
#include <thread>

using histocnn::test::ScopedEnv;

TEST_CASE("configure_threads gives OpenBLAS one thread unless its own variables name a count", "[core]") {
  // The scripts install libopenblas0-pthread, the BLAS Debian's LibTorch calls: it must be loaded.
  REQUIRE(histocnn::blas_threads() > 0);
  // The test's own handle on OpenBLAS, looked up apart from the library's.
  auto set = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  REQUIRE(set != nullptr);
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));

  SECTION("no variable: one thread, whatever the pool had") {
    ScopedEnv env({{"OPENBLAS_NUM_THREADS", nullptr}, {"GOTO_NUM_THREADS", nullptr}});
    set(cores);
    histocnn::configure_threads();
    CHECK(histocnn::blas_threads() == 1);
  }
  SECTION("OMP_NUM_THREADS is LibTorch's, not OpenBLAS's: still one thread") {
    ScopedEnv env({{"OPENBLAS_NUM_THREADS", nullptr}, {"GOTO_NUM_THREADS", nullptr}, {"OMP_NUM_THREADS", "2"}});
    set(cores);
    histocnn::configure_threads();
    CHECK(histocnn::blas_threads() == 1);
  }
  for (const char* value : {"", "0"}) {
    DYNAMIC_SECTION("OPENBLAS_NUM_THREADS='" << value << "' names no count (OpenBLAS's reading): one thread") {
      ScopedEnv env({{"OPENBLAS_NUM_THREADS", value}, {"GOTO_NUM_THREADS", nullptr}});
      set(cores);
      histocnn::configure_threads();
      CHECK(histocnn::blas_threads() == 1);
    }
  }
  for (const char* name : {"OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS"}) {
    DYNAMIC_SECTION(name << " set: the pool is left as it is") {
      ScopedEnv env(std::map<std::string, const char*>{{name, "2"}});
      set(cores);
      const int pool = histocnn::blas_threads();
      if (pool == 1) WARN("one core: a pool left alone and one set to 1 look the same here");
      histocnn::configure_threads();
      CHECK(histocnn::blas_threads() == pool);
    }
  }
  histocnn::configure_threads();  // back to the library's setting for the tests after this one
}
