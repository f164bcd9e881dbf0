#pragma once
// A patch classifier: a backbone (optionally frozen) plus a head.
//
//   histocnn::models::ClassifierOptions opt;
//   opt.backbone("mobilenet_v2").freeze_backbone(true).dropout(0.2);
//   histocnn::models::Classifier model(opt);
//   model->load_backbone_weights("mobilenet_v2_1.0_224.torchvision.safetensors");
//   torch::Tensor logits = model(x);                          // [N, 2]
//   histocnn::models::save_classifier(model, "runs/x/model/1", extra_json);
//
// BatchNorm layers of the backbone stay in inference mode unless train_bn is set and the backbone
// is trainable: many published weights carry BatchNorm folded into the convolutions (identity BN
// holding the bias), and training those BN layers destroys the features at the first step.
#include "histocnn/models/backbone.h"
#include "histocnn/models/dense_head.h"
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
  TORCH_ARG(bool, tf_padding) = false;
  TORCH_ARG(bool, freeze_backbone) = true;
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
  /// Pooled backbone features, [N, C] (no gradient when the backbone is frozen).
  torch::Tensor features(torch::Tensor x);
  /// The head applied to pooled features.
  torch::Tensor head_forward(torch::Tensor features);
  /// Class probabilities (softmax), in inference mode, without gradient.
  torch::Tensor predict_proba(torch::Tensor x);

  void train(bool on = true) override;
  void set_backbone_frozen(bool frozen);
  bool backbone_frozen() const { return options_.freeze_backbone(); }

  /// Loads published backbone weights (torchvision names); the ImageNet top is ignored.
  LoadReport load_backbone_weights(const std::filesystem::path& file, bool strict = true);

  const ClassifierOptions& options() const { return options_; }
  const Backbone& backbone() const { return backbone_; }
  const DenseHead& head() const { return head_; }

 private:
  ClassifierOptions options_;
  Backbone backbone_;
  DenseHead head_{nullptr};
};
TORCH_MODULE(Classifier);

/// A saved model: the classifier plus everything recorded beside it in model.json.
struct LoadedClassifier {
  Classifier model{nullptr};
  std::string model_json;  ///< the whole model.json, for the preprocessing, class names, provenance
  std::filesystem::path directory;  ///< the version folder it was read from
};

/// Writes <dir>/model.safetensors and <dir>/model.json (atomically, json last). `extra_json` is an
/// object whose fields are merged into model.json (preprocessing, class names, metrics...).
void save_classifier(const Classifier& model, const std::filesystem::path& dir, const std::string& extra_json = "{}");
/// Reads a bundle written by save_classifier. `dir` may be a version folder or a model folder
/// with numeric versions, in which case the newest complete version is read.
LoadedClassifier load_classifier(const std::filesystem::path& dir, const torch::Device& device = torch::kCPU);

}  // namespace histocnn::models
