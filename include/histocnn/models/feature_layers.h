#pragma once
// The layers inside a backbone whose outputs are feature maps, by module path, and a forward pass
// that hands back one of them with the rest of the pass computed from it: what Grad-CAM needs to
// map a layer other than the last (inference/explain.h).
//
//   auto backbone = histocnn::models::make_backbone("resnet18");
//   for (auto& l : histocnn::models::feature_layers(*backbone, 96)) ...
//   // conv1 [64, 48, 48], bn1 ..., layer1.0 [64, 24, 24], layer1.1, layer1, ..., layer4 [512, 3, 3]
//   auto f = histocnn::models::forward_from_layer(*backbone, x, "layer3");
//   // f.layer_output [N, 256, 6, 6] (a leaf that requires grad), f.features [N, 512, 3, 3] from it
//
// Names are module paths as named_modules() gives them (torchvision's where the backbone follows
// torchvision): the children of the backbone's sequential containers and their blocks
// ("features.14", "layer3.1", "repeat_1.7"), its stem layers, and the containers themselves. A
// module inside a block (a single convolution, a branch) is not one. The output a name stands for
// is that module's output, except for the layer whose output is the last feature map
// (BackboneImpl::feature_layer(): "features", "layer4", "post_bn", "cells", ...), which includes the
// activation the backbone applies after it without a module of its own (DenseNet's, NASNet's and
// ResNetV2's final ReLU). A TorchScript backbone, whose inside is compiled code, has that one
// layer only.
#include "histocnn/models/backbone.h"

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace histocnn::models {

struct FeatureLayer {
  std::string name;  ///< module path, e.g. "features.14"
  int64_t channels = 0, height = 0, width = 0;  ///< output shape for one input
};

/// The backbone's feature-map layers in forward order, with their output shapes for one
/// image_size x image_size input (one forward pass without gradient, on the backbone's device and
/// in inference mode; a backbone in training mode is put back). Throws std::invalid_argument when
/// image_size is not positive.
std::vector<FeatureLayer> feature_layers(BackboneImpl& backbone, int64_t image_size);

struct LayerForward {
  torch::Tensor layer_output;  ///< the layer's output [N, C, h, w], a leaf that requires grad
  torch::Tensor features;      ///< forward_features(x), computed from layer_output (with gradient)
};

/// forward_features(x) with the layer `layer` cut out: the pass up to it runs without gradient,
/// the rest with gradient from layer_output, whatever the grad mode of the caller. Throws
/// std::invalid_argument for a name that is not one of feature_layers(), listing close names.
LayerForward forward_from_layer(BackboneImpl& backbone, const torch::Tensor& x, const std::string& layer);

/// The names among `names` closest to `name` (edit distance), closest first: at most `limit`, none
/// further than half the length of `name` (at least 3 edits).
std::vector<std::string> close_names(const std::string& name, const std::vector<std::string>& names, size_t limit = 6);

}  // namespace histocnn::models
