#pragma once
// Keras Applications weights (.h5) for the study's seven backbones and DenseNet-121: vgg16,
// resnet50v2, resnet152v2, densenet121, densenet201, xception, inception_resnet_v2 and
// nasnet_mobile. Keras layer names are mapped onto histocnn's modules; layers Keras named itself
// ("conv2d_17", "batch_normalization_17": Xception's residual convolutions, nearly all of
// InceptionResNetV2) are matched by the order their numbers give, which is the order Keras' source
// creates them in. Kernels are transposed from Keras' layout ([kh, kw, in, out]; depthwise
// [kh, kw, in, 1]; Dense [in, out]) to LibTorch's, BatchNorm's gamma, beta, moving_mean and
// moving_variance become weight, bias, running_mean and running_var, and the ImageNet top (fc1,
// fc2, predictions, ...) is ignored.
//
//   histocnn::models::load_weights(*make_backbone("vgg16"), "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5");
//   histocnn train --backbone xception --weights xception_weights_tf_dim_ordering_tf_kernels_notop.h5 ...
//
// load_weights() takes .h5 files this way for any backbone; for the others it says so.
#include "histocnn/io/keras_h5.h"
#include "histocnn/models/backbone.h"
#include "histocnn/models/weights.h"

#include <filesystem>
#include <string>
#include <vector>

namespace histocnn::models {

/// The backbones with a Keras layer-name mapping.
std::vector<std::string> keras_h5_backbones();

/// Keras weights renamed and transposed for `backbone`. Weights of layers the mapping does not know
/// keep the name "keras:<layer>/<weight>" (a strict load lists them as unexpected); those of the
/// ImageNet top are named "keras-top:<layer>/<weight>".
io::TensorMap keras_to_state_dict(const std::string& backbone, const std::vector<io::KerasWeight>& weights);

/// Reads a Keras .h5 file and loads it into the backbone (see load_state_dict for strictness).
LoadReport load_keras_weights(BackboneImpl& backbone, const std::filesystem::path& file, LoadOptions options = {});

/// The input normalisation Keras Applications' weights for `backbone` expect: "caffe" for VGG16
/// (whose first kernel is flipped from BGR to RGB on import), "imagenet" for DenseNet ("torch"
/// mode), "inception" for the others ("tf" mode).
std::string keras_h5_normalisation(const std::string& backbone);

/// True for .h5 / .hdf5 file names.
bool is_keras_h5(const std::filesystem::path& file);

}  // namespace histocnn::models
