#pragma once
// NASNet-A Mobile (Zoph et al., 2018) without its top, exactly Keras Applications' NASNetMobile
// graph (4,269,716 parameters with BatchNorm statistics; 1056 feature channels). Module names
// mirror Keras' layer names, so that a mapping from Keras weights is mechanical:
//   stem_conv1, stem_bn1;
//   cells.<cell>.{conv_1, bn_1}                 <- {reduction,normal}_conv_1_<id>, ..._bn_1_<id>
//   cells.<cell>.adjust_{conv_1,conv_2,bn,conv_projection}   <- adjust_*_<id>
//   cells.<cell>.<branch>.separable_conv_{1,2}{.depthwise,.pointwise}, separable_conv_{1,2}_bn
//                                               <- separable_conv_{1,2}[_bn]_<type>_<branch>_<id>
// with <cell> one of reduction_stem_1, reduction_stem_2, normal_0..3, reduction_reduce_4,
// normal_5..8, reduction_reduce_8, normal_9..12, and <branch> left1, right1, ... as in Keras.
//
//   auto net = histocnn::models::make_backbone("nasnet_mobile");
//   torch::Tensor maps = net->forward_features(x);   // [N, 1056, 7, 7] at 224x224
#include "histocnn/models/backbone.h"

#include <torch/nn/pimpl.h>

namespace histocnn::models {

class NASNetMobileImpl : public BackboneImpl {
 public:
  NASNetMobileImpl();
  torch::Tensor compute_features(torch::Tensor x) override;
  int64_t feature_channels() const override { return 1056; }
  std::string name() const override { return "nasnet_mobile"; }
  std::string feature_layer() const override { return "cells"; }
  /// Keras' NASNet weights expect x / 127.5 - 1.
  std::string normalisation() const override { return "inception"; }

 private:
  std::vector<std::shared_ptr<torch::nn::Module>> cells_;
};
TORCH_MODULE(NASNetMobile);

}  // namespace histocnn::models
