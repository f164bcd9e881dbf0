#pragma once
// Xception (Chollet, 2017) without its top, exactly Keras Applications' graph (20,861,480
// parameters with BatchNorm statistics; TF "same" max pooling; BatchNorm eps 1e-3), under the
// parameter names of timm's `legacy_xception` port of the Keras weights: conv1, bn1, conv2, bn2,
// block1..block12 (skip, skipbn, rep.N.conv1 depthwise / rep.N.pointwise / rep.N BatchNorm),
// conv3, bn3, conv4, bn4. Keras' block2..block13 are block1..block12 here; block14 is conv3..bn4.
//
//   auto net = histocnn::models::make_backbone("xception");
//   torch::Tensor maps = net->forward_features(x);   // [N, 2048, 10, 10] at 299x299
#include "histocnn/models/backbone.h"

#include <torch/nn/modules/container/any.h>
#include <torch/nn/pimpl.h>

#include <vector>

namespace histocnn::models {

class XceptionImpl : public BackboneImpl {
 public:
  XceptionImpl();
  torch::Tensor compute_features(torch::Tensor x) override;
  int64_t feature_channels() const override { return 2048; }
  std::string name() const override { return "xception"; }
  std::string feature_layer() const override { return "act4"; }
  /// Keras' Xception weights expect x / 127.5 - 1.
  std::string normalisation() const override { return "inception"; }
  std::vector<std::string> top_prefixes() const override { return {"fc.", "head."}; }

 private:
  std::vector<torch::nn::AnyModule> order_;  // the submodules in forward order
};
TORCH_MODULE(Xception);

}  // namespace histocnn::models
