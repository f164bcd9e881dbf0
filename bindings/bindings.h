#pragma once
#include <pybind11/pybind11.h>

namespace histocnn::bindings {

void init_core(pybind11::module_& m);
void init_data(pybind11::module_& m);
void init_models(pybind11::module_& m);
void init_metrics(pybind11::module_& m);
void init_train(pybind11::module_& m);
void init_inference(pybind11::module_& m);
void init_io(pybind11::module_& m);
void init_serve(pybind11::module_& m);
void init_pipeline(pybind11::module_& m);

}  // namespace histocnn::bindings
