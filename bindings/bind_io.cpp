#include "bindings.h"

#include "histocnn/core/error.h"
#include "histocnn/io/image.h"
#include "histocnn/io/safetensors.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>
#include <torch/torch.h>

namespace py = pybind11;

namespace histocnn::bindings {

namespace {

// numpy has no bfloat16: those tensors come out as float32.
py::array tensor_to_numpy(torch::Tensor t) {
  t = t.to(torch::kCPU).contiguous();
  if (t.scalar_type() == torch::kBFloat16) t = t.to(torch::kFloat32);
  py::dtype dtype;
  switch (t.scalar_type()) {
    case torch::kFloat32: dtype = py::dtype::of<float>(); break;
    case torch::kFloat64: dtype = py::dtype::of<double>(); break;
    case torch::kFloat16: dtype = py::dtype("float16"); break;
    case torch::kInt64: dtype = py::dtype::of<int64_t>(); break;
    case torch::kInt32: dtype = py::dtype::of<int32_t>(); break;
    case torch::kInt16: dtype = py::dtype::of<int16_t>(); break;
    case torch::kInt8: dtype = py::dtype::of<int8_t>(); break;
    case torch::kUInt8: dtype = py::dtype::of<uint8_t>(); break;
    case torch::kBool: dtype = py::dtype::of<bool>(); break;
    default: HISTOCNN_FAIL("tensor dtype {} has no numpy equivalent", c10::toString(t.scalar_type()));
  }
  std::vector<py::ssize_t> shape(t.sizes().begin(), t.sizes().end());
  py::array out(dtype, shape);
  std::memcpy(out.mutable_data(), t.data_ptr(), t.nbytes());
  return out;
}

torch::Tensor numpy_to_tensor(const std::string& name, const py::array& input) {
  py::array a = py::array::ensure(input, py::array::c_style);
  HISTOCNN_CHECK(a, "tensor '{}' is not an array", name);
  const char kind = a.dtype().kind();
  const auto size = a.itemsize();
  torch::ScalarType type;
  if (kind == 'f' && size == 4) type = torch::kFloat32;
  else if (kind == 'f' && size == 8) type = torch::kFloat64;
  else if (kind == 'f' && size == 2) type = torch::kFloat16;
  else if (kind == 'i' && size == 8) type = torch::kInt64;
  else if (kind == 'i' && size == 4) type = torch::kInt32;
  else if (kind == 'i' && size == 2) type = torch::kInt16;
  else if (kind == 'i' && size == 1) type = torch::kInt8;
  else if (kind == 'u' && size == 1) type = torch::kUInt8;
  else if (kind == 'b') type = torch::kBool;
  else HISTOCNN_FAIL("tensor '{}' has numpy dtype {}, which safetensors cannot hold here", name,
                     std::string(py::str(a.dtype())));
  std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
  return torch::from_blob(const_cast<void*>(a.data()), shape, type).clone();
}

}  // namespace

void init_io(py::module_& root) {
  auto m = root.def_submodule("io", "safetensors files and validated image decoding");
  m.def(
      "load_safetensors",
      [](const std::filesystem::path& path) {
        io::SafetensorsFile file;
        {
          py::gil_scoped_release release;
          file = io::load_safetensors(path);
        }
        py::dict tensors;
        for (const auto& kv : file.tensors) tensors[py::str(kv.first)] = tensor_to_numpy(kv.second);
        return py::make_tuple(tensors, file.metadata);
      },
      py::arg("path"),
      "(tensors, metadata): numpy arrays by name (BF16 as float32) and the header's __metadata__. The header is "
      "validated; a malformed file raises ValueError naming it.");
  m.def(
      "save_safetensors",
      [](const std::filesystem::path& path, const py::dict& tensors,
         const std::map<std::string, std::string>& metadata) {
        io::TensorMap map;
        for (const auto& item : tensors) {
          const auto name = py::cast<std::string>(item.first);
          map[name] = numpy_to_tensor(name, py::array::ensure(item.second));
        }
        py::gil_scoped_release release;
        io::save_safetensors(path, map, metadata);
      },
      py::arg("path"), py::arg("tensors"), py::arg("metadata") = std::map<std::string, std::string>{},
      "Writes numpy arrays (by name) as a safetensors file, atomically.");
  m.def(
      "read_image",
      [](const std::filesystem::path& path) {
        cv::Mat rgb;
        {
          py::gil_scoped_release release;
          rgb = io::read_image_rgb(path);
        }
        py::array_t<uint8_t> out({rgb.rows, rgb.cols, 3});
        for (int y = 0; y < rgb.rows; ++y) std::memcpy(out.mutable_data(y), rgb.ptr(y), static_cast<size_t>(rgb.cols) * 3);
        return out;
      },
      py::arg("path"), "An image file as an HxWx3 uint8 RGB array; unreadable or truncated files raise an error naming them.");
}

}  // namespace histocnn::bindings
