#pragma once
// Layers as Keras counts them, and a Keras-style model summary.
//
//   auto layers = histocnn::models::backbone_layers(*histocnn::models::make_backbone("vgg16"));
//   // 18 layers: features.0 (Conv2D; Keras' block1_conv1) ... features.28 (block5_conv3),
//   // max_pooling2d_4 (block5_pool)
//
//   histocnn::models::Classifier model(histocnn::models::ClassifierOptions()
//       .backbone("vgg16").batch_norm(true).unfreeze_last(4));
//   auto summary = histocnn::models::summarize(*model, 224);
//   std::cout << histocnn::models::format_summary(summary);
//   // ... Total params: 15,043,778 / Trainable params: 7,408,258 / Non-trainable params: 7,635,520
//
// A backbone's layers are found on a real forward pass (eval mode, no gradient): every outermost
// ATen call that Keras would make a layer of becomes one, in the order the pass makes them:
// convolutions (Conv2D, DepthwiseConv2D; a depthwise and a 1x1 convolution that are the only two
// children of one module make one SeparableConv2D), BatchNormalization, Dense, pooling
// (MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D for a spatial mean; the -inf padding of
// a "same" max pool is part of the pool), Activation, Add, Multiply, Concatenate, ZeroPadding2D and
// Dropout. Calls that Keras has no layer for (memory format changes, views, slicing) are left out,
// and so is the input layer. A layer holds the parameters and BatchNorm statistics its call read,
// under their names in the backbone. Where the Keras model a backbone reproduces puts the
// activation inside its convolutions (VGG16: Conv2D(..., activation="relu")), the activation is
// part of the layer before it (BackboneImpl::activations_in_layers).
// The list is what Keras' `model.layers` holds for VGG16 exactly, and ends as Keras' list does for
// ResNet50V2, DenseNet201, Xception, InceptionResNetV2 and MobileNetV2. Where parallel branches
// meet, Keras orders layers by graph depth rather than by execution, writes some paddings as layers
// of their own, and has Lambda layers that are two calls here (InceptionResNetV2's scaled residual:
// Multiply and Add), so there the count can differ from Keras' by a few layers. NASNetMobile is
// the case at the very end: Keras' last four are two of the last cell's Add layers, its
// Concatenate and the final Activation; here the fourth is the BatchNorm before the last Add.
#include "histocnn/models/backbone.h"

#include <cstdint>
#include <string>
#include <vector>

namespace histocnn::models {

class ClassifierImpl;

struct LayerInfo {
  /// The module path of its weights ("features.28", "head.fc1"), or Keras' name for a layer
  /// without weights: the type in snake case, then "_1", "_2", ... for the later ones of that type
  /// ("max_pooling2d", ..., "max_pooling2d_4").
  std::string name;
  /// Keras' class name: "Conv2D", "BatchNormalization", "Dense", "MaxPooling2D", ...
  std::string type;
  /// Output shape of one example in Keras' channels-last order: {h, w, c}, {t, c} or {c}.
  std::vector<int64_t> output_shape;
  /// Parameters plus floating-point buffers (BatchNorm moving mean and variance), as Keras counts.
  int64_t params = 0;
  /// Of these, the parameters that train (requires_grad).
  int64_t trainable_params = 0;
  /// Names of the parameters and buffers it holds, relative to the module it was listed from.
  std::vector<std::string> weights{};
};

/// The backbone's layers in forward order, found on one forward pass of a 1x3xSxS input on the
/// backbone's device (S = image_size; its training mode is restored). The list does not depend on
/// S except where TensorFlow "same" padding pads only some sizes. Throws std::invalid_argument when
/// S is not positive.
std::vector<LayerInfo> backbone_layers(BackboneImpl& backbone, int64_t image_size = 224);

struct ModelSummary {
  std::string backbone, head;
  int64_t image_size = 0;
  /// The input, the backbone's layers, then the head's (whose names start with "head.").
  std::vector<LayerInfo> layers;
  int64_t total_params = 0;          ///< parameters + floating-point buffers of the whole model
  int64_t trainable_params = 0;      ///< parameters with requires_grad
  int64_t non_trainable_params = 0;  ///< frozen parameters + BatchNorm moving statistics
};

/// The classifier's layers and Keras' three totals at the given input size.
ModelSummary summarize(ClassifierImpl& model, int64_t image_size = 224);

/// Keras' model.summary() layout: a table of layer (type), output shape and param #, then
/// "Total params: 15,043,778", "Trainable params: ..." and "Non-trainable params: ...".
std::string format_summary(const ModelSummary& summary);

}  // namespace histocnn::models
