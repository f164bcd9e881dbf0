// The one Python extension module; each library module binds itself in bind_<module>.cpp.
#include "bindings.h"

#include "histocnn/core/version.h"

PYBIND11_MODULE(_histocnn, m) {
  m.doc() = "histocnn: deep transfer learning on histopathology patches (C++ core)";
  m.attr("__version__") = histocnn::version();
  m.def("torch_version", &histocnn::torch_version, "The LibTorch version this extension was built against.");
  histocnn::bindings::init_core(m);
  histocnn::bindings::init_io(m);
  histocnn::bindings::init_data(m);
  histocnn::bindings::init_models(m);
  histocnn::bindings::init_metrics(m);
  histocnn::bindings::init_train(m);
  histocnn::bindings::init_inference(m);
  histocnn::bindings::init_serve(m);
  histocnn::bindings::init_pipeline(m);
}
