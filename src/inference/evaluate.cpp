#include "histocnn/inference/evaluate.h"

#include "histocnn/core/device.h"
#include "histocnn/core/error.h"
#include "histocnn/data/dataset.h"
#include "histocnn/inference/predictor.h"
#include "histocnn/metrics/report.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace histocnn::inference {

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
                                 const EvaluateOptions& options) {
  HISTOCNN_CHECK(manifest.size() > 0, "there are no patches to evaluate on");
  HISTOCNN_CHECK(options.stain_shift >= 0 && options.stain_shift <= 1,
                 "stain_shift must be in [0, 1] (0 = as stained, 0.1 = strong), got {}", options.stain_shift);
  configure_threads();
  const Predictor predictor(model_dir, options.device);
  EvaluationResult out;
  out.threshold = options.threshold.value_or(predictor.threshold());
  HISTOCNN_CHECK(out.threshold > 0 && out.threshold < 1, "threshold must be in (0, 1), got {}", out.threshold);
  out.model_directory = predictor.directory().string();
  data::Preprocessing preprocessing = predictor.preprocessing();
  if (preprocessing.stain && options.stain_fit) preprocessing.stain->set_fit_mode(*options.stain_fit);
  // Per-slide stain fits group the patches by patient (PatchDataset::stain_source).
  data::PatchDataset decoded(manifest, preprocessing);
  decoded.preload(options.workers, options.progress);
  const auto ds = decoded.with_stain_shift(options.stain_shift, options.seed);
  PredictOptions po;
  po.workers = options.workers;
  po.progress = options.progress;
  po.tta = options.tta;
  out.predictions = predictor.predict_dataset(ds, po);
  out.metrics = metrics::evaluate_binary(out.predictions.labels, out.predictions.p_positive, out.threshold);
  out.report = format_evaluation(
      out.predictions.labels, out.predictions.p_positive, out.threshold, predictor.class_names(),
      fmt::format("{} on {} patches{}{}", predictor.directory().string(), manifest.size(),
                  options.stain_shift > 0 ? fmt::format(", restained per patient (stain shift sigma {}, seed {})",
                                                        options.stain_shift, options.seed)
                                          : "",
                  preprocessing.stain ? fmt::format(", {} stain normalisation fitted per {}",
                                                    data::stain_method_name(preprocessing.stain->method()),
                                                    preprocessing.stain->fit_mode() == data::StainFit::slide
                                                        ? "patient" : "patch")
                                      : ""));
  return out;
}

std::string to_json(const EvaluationResult& result) {
  nlohmann::json j = nlohmann::json::parse(metrics::to_json(result.metrics));
  nlohmann::json out = {{"model", result.model_directory},
                        {"threshold", result.threshold},
                        {"patches", result.predictions.labels.size()},
                        {"metrics", j}};
  return out.dump(2);
}

}  // namespace histocnn::inference
