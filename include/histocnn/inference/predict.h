#pragma once
// The one prediction path: a classifier and preprocessed batches in, class probabilities out, in
// inference mode, without gradient. Training (validation, test), evaluation of saved models, the
// Predictor, the command line, Python and the server all end here.
//
//   torch::Tensor p = histocnn::inference::class_probabilities(model, batch);   // [N, classes]
//   auto pred = histocnn::inference::predict_dataset(model, test_set, {});      // P(class 1) per patch
#include "histocnn/data/dataset.h"
#include "histocnn/models/classifier.h"

#include <torch/types.h>

#include <vector>

namespace histocnn::inference {

struct Predictions {
  std::vector<double> p_positive;  ///< P(class 1) per patch, in dataset order
  std::vector<int> labels;         ///< the dataset's labels, same order
};

struct PredictOptions {
  int64_t batch_size = 64;
  int workers = 2;        ///< threads decoding and preparing batches
  bool progress = false;  ///< a progress bar on stderr
  bool tta = false;       ///< test-time augmentation: the mean over the 8 flips and quarter turns
};

/// Softmax of the model's logits for a normalised batch [N, 3, S, S] (moved to the model's
/// device), in eval mode and without gradient; the model's training mode is restored afterwards.
/// Returns [N, classes] on the CPU. With `tta`, the mean of the probabilities of the batch's 8
/// dihedral transforms (quarter turns, each also mirrored): a patch has no upright.
torch::Tensor class_probabilities(models::Classifier model, const torch::Tensor& batch, bool tta = false);
/// P(class 1) per row from what the head reads (ClassifierImpl::features, e.g. cached
/// frozen-backbone features): only the head runs.
std::vector<double> predict_from_features(models::Classifier& model, const torch::Tensor& features);

/// P(class 1) for every patch of a dataset, in order.
Predictions predict_dataset(models::Classifier& model, const data::PatchDataset& dataset,
                            const PredictOptions& options = {});

}  // namespace histocnn::inference
