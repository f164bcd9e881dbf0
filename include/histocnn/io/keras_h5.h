#pragma once
// Reading Keras weight files (HDF5, the format of Keras Applications' downloads and of
// model.save_weights / model.save): every weight of every layer, in the file's layer order.
//
//   for (const auto& w : histocnn::io::read_keras_h5("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"))
//     std::cout << w.layer << " " << w.name << " " << w.value.sizes() << "\n";   // block1_conv1 kernel [3,3,3,64]
//
// The layout is Keras': a root (or "model_weights") attribute layer_names, and per layer a group
// with an attribute weight_names ("block1_conv1/kernel:0", ...) naming its datasets.
#include <torch/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace histocnn::io {

struct KerasWeight {
  std::string layer;   ///< Keras layer name, e.g. "conv2_block1_1_conv" or "conv1/bn"
  std::string name;    ///< the weight's own name without the ":0" suffix: kernel, bias, gamma, ...
  torch::Tensor value; ///< float32, in Keras' layout (a Conv2D kernel is [kh, kw, in, out])
};

/// Throws std::invalid_argument naming the file when it is missing, not HDF5, or not laid out as
/// Keras writes weights.
std::vector<KerasWeight> read_keras_h5(const std::filesystem::path& file);

}  // namespace histocnn::io
