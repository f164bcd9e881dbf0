#include "histocnn/io/keras_h5.h"

#include "histocnn/core/error.h"

#include <hdf5.h>
#include <torch/torch.h>

#include <functional>

namespace histocnn::io {

namespace {

// Closes an HDF5 handle on scope exit.
struct Handle {
  hid_t id;
  std::function<herr_t(hid_t)> close;
  Handle(hid_t i, std::function<herr_t(hid_t)> c) : id(i), close(std::move(c)) {}
  ~Handle() {
    if (id >= 0) close(id);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
};

// A string-array attribute (fixed-length or variable-length strings, as h5py and Keras write them).
std::vector<std::string> read_string_attribute(hid_t object, const char* name, const std::string& where) {
  HISTOCNN_CHECK(H5Aexists(object, name) > 0, "{} has no '{}' attribute: it is not a Keras weight file", where, name);
  Handle attr(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
  Handle type(H5Aget_type(attr.id), H5Tclose);
  Handle space(H5Aget_space(attr.id), H5Sclose);
  HISTOCNN_CHECK(H5Tget_class(type.id) == H5T_STRING, "{}: attribute '{}' is not a list of strings", where, name);
  const hssize_t n = H5Sget_simple_extent_npoints(space.id);
  std::vector<std::string> out;
  if (n <= 0) return out;
  if (H5Tis_variable_str(type.id) > 0) {
    std::vector<char*> buffer(static_cast<size_t>(n), nullptr);
    Handle memtype(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(memtype.id, H5T_VARIABLE);
    HISTOCNN_CHECK(H5Aread(attr.id, memtype.id, buffer.data()) >= 0, "{}: cannot read attribute '{}'", where, name);
    for (char* s : buffer) out.emplace_back(s ? s : "");
    H5Dvlen_reclaim(memtype.id, space.id, H5P_DEFAULT, buffer.data());
  } else {
    const size_t width = H5Tget_size(type.id);
    std::vector<char> buffer(width * static_cast<size_t>(n), '\0');
    HISTOCNN_CHECK(H5Aread(attr.id, type.id, buffer.data()) >= 0, "{}: cannot read attribute '{}'", where, name);
    for (hssize_t i = 0; i < n; ++i) {
      const char* s = buffer.data() + i * width;
      out.emplace_back(s, strnlen(s, width));
    }
  }
  return out;
}

torch::Tensor read_dataset(hid_t file, const std::string& path, const std::string& where) {
  HISTOCNN_CHECK(H5Lexists(file, path.c_str(), H5P_DEFAULT) > 0, "{}: weight '{}' is listed but missing", where, path);
  Handle dataset(H5Dopen2(file, path.c_str(), H5P_DEFAULT), H5Dclose);
  HISTOCNN_CHECK(dataset.id >= 0, "{}: '{}' is not a dataset", where, path);
  Handle space(H5Dget_space(dataset.id), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.id);
  HISTOCNN_CHECK(rank >= 0 && rank <= 8, "{}: '{}' has an unsupported rank", where, path);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
  std::vector<int64_t> sizes(dims.begin(), dims.end());
  auto out = torch::empty(sizes, torch::kFloat32);
  HISTOCNN_CHECK(H5Dread(dataset.id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr<float>()) >= 0,
                 "{}: cannot read '{}' as floating-point numbers", where, path);
  return out;
}

}  // namespace

std::vector<KerasWeight> read_keras_h5(const std::filesystem::path& file) {
  const std::string where = file.string();
  HISTOCNN_CHECK_FOUND(std::filesystem::is_regular_file(file), "Keras weight file '{}' does not exist", where);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors become exceptions, not stderr dumps
  HISTOCNN_CHECK(H5Fis_hdf5(where.c_str()) > 0, "'{}' is not an HDF5 file (Keras .h5 weights)", where);
  Handle f(H5Fopen(where.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  HISTOCNN_CHECK(f.id >= 0, "cannot open '{}' as HDF5", where);
  // model.save() files keep the weights under "model_weights"; save_weights() files at the root.
  const bool full_model = H5Lexists(f.id, "model_weights", H5P_DEFAULT) > 0;
  Handle root(H5Gopen2(f.id, full_model ? "model_weights" : "/", H5P_DEFAULT), H5Gclose);
  const std::string prefix = full_model ? "model_weights/" : "";
  std::vector<KerasWeight> out;
  for (const auto& layer : read_string_attribute(root.id, "layer_names", where)) {
    const std::string group_path = prefix + layer;
    HISTOCNN_CHECK(H5Lexists(f.id, group_path.c_str(), H5P_DEFAULT) > 0, "{}: layer '{}' is listed but missing",
                   where, layer);
    Handle group(H5Gopen2(f.id, group_path.c_str(), H5P_DEFAULT), H5Gclose);
    for (const auto& weight : read_string_attribute(group.id, "weight_names", where + ": layer " + layer)) {
      KerasWeight w;
      w.layer = layer;
      w.name = weight.substr(weight.rfind('/') == std::string::npos ? 0 : weight.rfind('/') + 1);
      if (auto colon = w.name.rfind(':'); colon != std::string::npos) w.name.resize(colon);
      w.value = read_dataset(f.id, group_path + "/" + weight, where);
      out.push_back(std::move(w));
    }
  }
  return out;
}

}  // namespace histocnn::io
