#pragma once
// VGG16 (Simonyan and Zisserman, 2014) without its top, with torchvision's parameter names
// (features.0 ... features.28). 14,714,688 parameters, Keras' VGG16(include_top=False) count.
//
//   auto vgg = histocnn::models::make_backbone("vgg16");
//   torch::Tensor maps = vgg->forward_features(x);   // [N, 512, h/32, w/32], after the 5th pool
#include "histocnn/models/backbone.h"

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

namespace histocnn::models {

class VGGImpl : public BackboneImpl {
 public:
  /// depth 16 (torchvision's vgg16 configuration "D", without batch norm).
  explicit VGGImpl(int64_t depth = 16);
  torch::Tensor compute_features(torch::Tensor x) override;
  int64_t feature_channels() const override { return 512; }
  std::string name() const override { return "vgg" + std::to_string(depth_); }
  std::vector<std::string> top_prefixes() const override { return {"classifier."}; }
  bool activations_in_layers() const override { return true; }

  torch::nn::Sequential features{nullptr};

 private:
  int64_t depth_;
};
TORCH_MODULE(VGG);

}  // namespace histocnn::models
