#pragma once
// How much arithmetic a backbone costs: multiply-accumulates (MACs) of its convolutions and
// linear layers for one image, measured on a real forward pass.
//
//   auto b = histocnn::models::make_backbone("resnet50");
//   double gmacs = histocnn::models::count_macs(*b, 224) / 1e9;   // 4.09 (torchvision's "GFLOPS")
//   double gflops = 2 * gmacs;                                      // 1 MAC = 2 FLOPs
//
// Convention: one multiply-accumulate per weight per output element (conv: N*Cout*H*W*Cin/groups
// *kh*kw; linear: out_features*in_features per row); biases, BatchNorm, activations and pooling are
// not counted. This is the convention of the torchvision model tables and most papers, which call
// the number "FLOPs"; true floating-point operations are twice as many.
#include "histocnn/models/backbone.h"

#include <cstdint>

namespace histocnn::models {

/// MACs of one forward pass of `module->forward_features` on a 1x3xSxS input (eval mode, no
/// gradient; the module's training flag is restored). Counts every aten::convolution and
/// aten::linear the pass calls, so it follows the real graph, branches and all.
int64_t count_macs(BackboneImpl& backbone, int64_t image_size);

}  // namespace histocnn::models
