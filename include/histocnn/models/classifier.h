#pragma once
// A patch classifier: a backbone (optionally frozen) plus a head.
//
//   histocnn::models::ClassifierOptions opt;
//   opt.backbone("mobilenet_v2").freeze_backbone(true).dropout(0.2);
//   histocnn::models::Classifier model(opt);
//   model->load_backbone_weights("mobilenet_v2_1.0_224.torchvision.safetensors");
//   torch::Tensor logits = model(x);                          // [N, 2]
//   // saving and loading with the model card: inference/saved_model.h
//
// BatchNorm layers of the backbone stay in inference mode unless train_bn is set and the backbone
// is trainable: many published weights carry BatchNorm folded into the convolutions (identity BN
// holding the bias), and training those BN layers destroys the features at the first step.
#include "histocnn/models/backbone.h"
#include "histocnn/models/dense_head.h"
#include "histocnn/models/lstm_head.h"
#include "histocnn/models/summary.h"
#include "histocnn/models/weights.h"

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <filesystem>
#include <string>
#include <vector>

namespace histocnn::models {

struct ClassifierOptions {
  std::string to_json() const;
  static ClassifierOptions from_json(const std::string& json);

  TORCH_ARG(std::string, backbone) = "mobilenet_v2";
  /// "dense" (pooled features -> dense layers), "lstm" (feature map as a sequence -> LSTM -> dense)
  /// or "lstm_pooled" (the study's drawing: pooled features -> embedding -> LSTM -> dense).
  TORCH_ARG(std::string, head) = "dense";
  TORCH_ARG(int64_t, lstm_units) = 512;
  TORCH_ARG(bool, tf_padding) = false;
  TORCH_ARG(bool, freeze_backbone) = true;
  /// With freeze_backbone: the last N layers of the backbone still train, counted as Keras counts
  /// `base_model.layers[-N:]` (every layer, pooling and activation layers included; see
  /// models/summary.h). The study's "last 4 layers" of VGG16 are block5_conv1..3 and block5_pool.
  TORCH_ARG(int64_t, unfreeze_last) = 0;
  TORCH_ARG(bool, train_bn) = false;
  TORCH_ARG(int64_t, hidden1) = 512;
  TORCH_ARG(int64_t, hidden2) = 128;
  TORCH_ARG(double, dropout) = 0.2;
  TORCH_ARG(bool, batch_norm) = false;
  TORCH_ARG(int64_t, num_classes) = 2;
};

class ClassifierImpl : public torch::nn::Module {
 public:
  explicit ClassifierImpl(ClassifierOptions options = {});

  torch::Tensor forward(torch::Tensor x);
  /// What the head reads: pooled features [N, C] for the dense head, the feature map as a
  /// sequence [N, h*w, C] for the LSTM head (no gradient when the backbone is frozen).
  torch::Tensor features(torch::Tensor x);
  /// The head applied to features().
  torch::Tensor head_forward(torch::Tensor features);
  /// What the head reads, from the backbone's feature map [N, C, h, w] (forward_features): pooled,
  /// or the positions as a sequence. features(x) is feature_map_to_head_input(forward_features(x)).
  torch::Tensor feature_map_to_head_input(const torch::Tensor& maps) const;

  void train(bool on = true) override;
  /// Freezes (or unfreezes) the backbone; with `frozen`, the last unfreeze_last layers stay trainable.
  void set_backbone_frozen(bool frozen);
  /// True when no backbone parameter trains, so backbone features can be computed once and cached.
  bool backbone_frozen() const { return options_.freeze_backbone() && options_.unfreeze_last() == 0; }

  /// Loads published backbone weights (torchvision names); the ImageNet top is ignored.
  LoadReport load_backbone_weights(const std::filesystem::path& file, bool strict = true);

  const ClassifierOptions& options() const { return options_; }
  const Backbone& backbone() const { return backbone_; }
  /// The head module (DenseHead or LSTMHead).
  const std::shared_ptr<torch::nn::Module>& head() const { return head_; }

 private:
  torch::Tensor backbone_features(torch::Tensor x);
  // The input size the backbone's layers are listed at: Keras Applications' default, which every
  // backbone accepts.
  static constexpr int64_t kLayerTraceSize = 224;
  ClassifierOptions options_;
  Backbone backbone_;
  std::shared_ptr<torch::nn::Module> head_;
  DenseHead dense_head_{nullptr};
  LSTMHead lstm_head_{nullptr};
  std::vector<LayerInfo> backbone_layers_;  // filled when unfreeze_last first needs it
};
TORCH_MODULE(Classifier);

}  // namespace histocnn::models
