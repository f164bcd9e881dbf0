#include "bindings.h"

#include "histocnn/core/error.h"

#include "histocnn/cli.h"
#include "histocnn/core/device.h"

#include <pybind11/stl.h>

namespace py = pybind11;

namespace histocnn::bindings {

void init_core(py::module_& m) {
  // The error rule: bad input -> ValueError (std::invalid_argument, pybind11's own mapping), a
  // missing file or folder -> FileNotFoundError, everything else -> RuntimeError.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const NotFoundError& e) {
      PyErr_SetString(PyExc_FileNotFoundError, e.what());
    }
  });
  m.def("default_device", [] { return default_device().str(); },
        "'cuda:0' when LibTorch sees a GPU, otherwise 'cpu'.");
  m.def("configure_threads", &configure_threads, py::arg("threads") = 0,
        "Sets LibTorch's intra-op threads (0: all cores) and, unless OPENBLAS_NUM_THREADS or "
        "GOTO_NUM_THREADS names a count above 0, OpenBLAS's own pool to one thread (process-wide); "
        "returns LibTorch's count.");
  m.def("blas_threads", &blas_threads,
        "OpenBLAS's thread count in force, or 0 when the process's BLAS is not OpenBLAS.");
  m.def(
      "cli_main",
      [](const std::vector<std::string>& args) {
        std::vector<const char*> argv;
        for (const auto& a : args) argv.push_back(a.c_str());
        py::gil_scoped_release release;
        return cli::run(static_cast<int>(argv.size()), argv.data());
      },
      py::arg("argv"), "Runs the histocnn command line (argv[0] is the program name); returns the exit status.");
}

}  // namespace histocnn::bindings
