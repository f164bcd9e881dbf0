#include "bindings.h"

#include "histocnn/core/device.h"

#include <pybind11/stl.h>

namespace py = pybind11;

namespace histocnn::bindings {

void init_core(py::module_& m) {
  m.def("default_device", [] { return default_device().str(); },
        "'cuda:0' when LibTorch sees a GPU, otherwise 'cpu'.");
  m.def("configure_threads", &configure_threads, py::arg("threads") = 0,
        "Sets LibTorch's intra-op threads (0: all cores); returns the count in force.");
}

}  // namespace histocnn::bindings
