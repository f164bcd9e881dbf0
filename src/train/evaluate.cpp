#include "histocnn/train/evaluate.h"

#include "histocnn/core/device.h"
#include "histocnn/core/error.h"
#include "histocnn/data/dataset.h"
#include "histocnn/inference/predictor.h"

#include <torch/torch.h>

namespace histocnn::train {

std::string format_evaluation(const std::vector<int>& labels, const std::vector<double>& p_positive, double threshold,
                              const std::vector<std::string>& class_names, const std::string& title) {
  auto m = metrics::evaluate_binary(labels, p_positive, threshold);
  auto predicted = metrics::threshold_scores(p_positive, threshold);
  std::string s = fmt::format("== {} ({} patches, threshold {:.3f}) ==\n\n", title, labels.size(), threshold);
  s += metrics::classification_report(labels, predicted, class_names, 4);
  s += "\nConfusion matrix (rows: true class, columns: predicted)\n";
  s += metrics::confusion_matrix_table(m.cm, class_names);
  s += fmt::format("\nROC-AUC {:.4f}  accuracy {:.4f}  precision {:.4f}  recall {:.4f}  specificity {:.4f}  "
                   "F1 {:.4f}  log-loss {:.4f}\n",
                   m.roc_auc, m.accuracy, m.precision, m.recall, m.specificity, m.f1, m.log_loss);
  return s;
}

EvaluationResult evaluate_bundle(const std::filesystem::path& model_dir, const data::Manifest& manifest,
                                 double threshold, const std::string& device, int workers, bool progress,
                                 double stain_shift, uint64_t seed) {
  HISTOCNN_CHECK(manifest.size() > 0, "there are no patches to evaluate on");
  configure_threads();
  inference::Predictor predictor(model_dir, device);
  if (threshold < 0) threshold = predictor.threshold();
  data::PatchDataset decoded(manifest, predictor.preprocessing());
  decoded.preload(workers, progress);
  const auto ds = decoded.with_stain_shift(stain_shift, seed);
  EvaluationResult out;
  out.predictions = predict_dataset(predictor.model(), ds, 64, workers, progress);
  out.metrics = metrics::evaluate_binary(out.predictions.labels, out.predictions.p_positive, threshold);
  out.report = format_evaluation(out.predictions.labels, out.predictions.p_positive, threshold,
                                 predictor.class_names(),
                                 fmt::format("{} on {} patches{}", predictor.directory().string(), manifest.size(),
                                             stain_shift > 0 ? fmt::format(", restained per patient (stain shift sigma "
                                                                           "{}, seed {})", stain_shift, seed)
                                                             : ""));
  return out;
}

}  // namespace histocnn::train
