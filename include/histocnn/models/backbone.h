#pragma once
// Backbones: ImageNet-style CNNs without their top, registered by name.
//
//   auto backbone = histocnn::models::make_backbone("mobilenet_v2");
//   torch::Tensor maps = backbone->forward_features(x);   // [N, 1280, h, w]
//   torch::Tensor feats = backbone->forward(x);            // [N, 1280], global average pooled
//   for (auto& name : histocnn::models::backbone_names()) ...
//
// Parameter names follow torchvision, so published weights load by name (see weights.h).
#include <torch/nn/module.h>
#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace torch::nn {
class SequentialImpl;
}  // namespace torch::nn

namespace histocnn::models {

struct BackboneOptions {
  /// TensorFlow "SAME" padding (asymmetric for stride 2), so TF-trained weights reproduce exactly.
  bool tf_padding = false;
};

class BackboneImpl : public torch::nn::Module {
 public:
  /// The last feature map, [N, C, h, w]. On the CPU a 4-D input is first put in channels-last
  /// memory format when the backbone prefers it at that size, the layout oneDNN's convolutions
  /// mostly run faster in (same values; docs/benchmarks.md, "Channels-last on the CPU", has the
  /// measurements and the commands).
  torch::Tensor forward_features(torch::Tensor x);
  /// Whether channels-last input is faster for this backbone at this input size (default: yes).
  virtual bool prefers_channels_last(int64_t height, int64_t width) const { return true; }
  /// What each backbone implements: the last feature map of x.
  virtual torch::Tensor compute_features(torch::Tensor x) = 0;
  /// Global-average-pooled features, [N, C].
  torch::Tensor forward(torch::Tensor x);
  /// C, the number of feature channels.
  virtual int64_t feature_channels() const = 0;
  /// Registry name, e.g. "mobilenet_v2".
  virtual std::string name() const = 0;
  /// The input normalisation its published weights expect ("imagenet" or "inception").
  virtual std::string normalisation() const { return "imagenet"; }
  /// True where the Keras model this backbone reproduces has the activation inside its
  /// convolutions (VGG16's Conv2D(..., activation="relu")), so Keras counts the two as one layer
  /// (models/summary.h).
  virtual bool activations_in_layers() const { return false; }
  /// Key prefixes in published full-model weight files that belong to the ImageNet top, not to
  /// this backbone (ignored when importing, e.g. "classifier.").
  virtual std::vector<std::string> top_prefixes() const { return {}; }
  /// The module path of the layer whose output is the last feature map (forward_features): the
  /// layer Grad-CAM maps by default (models/feature_layers.h).
  virtual std::string feature_layer() const { return "features"; }

 protected:
  // What compute_features calls on its way so that a layer's output can be listed or cut out by
  // name (models/feature_layers.h); without a listing or a cut in progress on this thread they
  // cost nothing.
  /// True while a listing or a cut is in progress on this thread.
  static bool tapping();
  /// Marks `x` as the output of the layer at module path `path`; returns what the rest of the
  /// pass must use (`x` itself unless this is the layer being cut out).
  static torch::Tensor tap(const std::string& path, torch::Tensor x);
  /// seq->forward(x), child by child: each child's output is tapped as "<path>.<child name>"
  /// (nested Sequentials are entered), then the whole as `path` when tap_whole.
  static torch::Tensor forward_tapped(torch::nn::SequentialImpl& seq, const std::string& path, torch::Tensor x,
                                      bool tap_whole = true);
};

using Backbone = std::shared_ptr<BackboneImpl>;
using BackboneFactory = std::function<Backbone(const BackboneOptions&)>;

/// Builds a registered backbone with freshly initialised weights. Throws std::invalid_argument
/// listing the registered names when `name` is unknown.
Backbone make_backbone(const std::string& name, const BackboneOptions& options = {});
/// Registers a backbone factory under `name` (replacing one of the same name).
void register_backbone(const std::string& name, BackboneFactory factory);
/// The registered names, sorted.
std::vector<std::string> backbone_names();

/// A short name for run folders and logs: the backbone name itself, or "torchscript-<file stem>"
/// for a TorchScript backbone (whose name holds a path).
std::string backbone_label(const std::string& name);
/// True for backbones whose definition carries trained weights (TorchScript modules): without
/// separate weights such a backbone is not randomly initialised.
bool backbone_brings_weights(const std::string& name);

/// Number of parameters, and of parameters plus floating-point buffers (BatchNorm running
/// statistics, counted the way Keras counts its non-trainable weights).
int64_t count_parameters(const torch::nn::Module& module, bool include_buffers = false);

}  // namespace histocnn::models
