#include "histocnn/train/demo.h"

#include "histocnn/core/error.h"
#include "histocnn/core/log.h"
#include "histocnn/data/synthetic.h"
#include "histocnn/models/pretrained.h"

namespace histocnn::train {

namespace fs = std::filesystem;

RunResult run_demo(const DemoOptions& options) {
  const fs::path data_dir = options.output_dir / "data";
  if (fs::exists(data_dir) && !fs::is_empty(data_dir)) {
    log_info("using the synthetic patches already in {}", data_dir.string());
  } else {
    data::SyntheticOptions so;
    so.patients = options.patients;
    so.patches_per_patient = options.patches_per_patient;
    so.seed = options.seed;
    data::generate_synthetic(data_dir, so);  // logs what it wrote
  }

  std::string backbone = options.backbone;
  std::string weights;
  if (backbone == "auto" || backbone == "mobilenet_v2") {
    try {
      weights = models::resolve_weights("imagenet", "mobilenet_v2").path.string();
      backbone = "mobilenet_v2";
    } catch (const std::invalid_argument& e) {
      HISTOCNN_CHECK(backbone == "auto", "{}", e.what());
      log_info("no ImageNet MobileNetV2 weights found (set HISTOCNN_WEIGHTS_DIR to use them); training the small "
               "CNN from scratch instead");
      backbone = "simple_cnn";
    }
  }
  HISTOCNN_CHECK(backbone == "mobilenet_v2" || backbone == "simple_cnn",
                 "demo backbone must be auto, mobilenet_v2 or simple_cnn, got '{}'", options.backbone);

  RunOptions run;
  run.data_dirs = {data_dir};
  run.output_dir = options.output_dir / "runs";
  run.name = backbone;
  run.model.backbone(backbone);
  run.trainer.seed = options.seed;
  run.trainer.progress = options.progress;
  run.split.seed = options.seed;
  if (backbone == "mobilenet_v2") {
    // Frozen pretrained features at 96 px: the backbone runs once, the head trains on cached features.
    run.weights = weights;
    run.image_size = 96;
    run.model.freeze_backbone(true);
    run.trainer.epochs = options.epochs > 0 ? options.epochs : 15;
    run.trainer.optimizer = OptimizerKind::adam;
  } else {
    run.image_size = 50;
    run.model.freeze_backbone(false).hidden1(128).hidden2(64);
    run.trainer.epochs = options.epochs > 0 ? options.epochs : 8;
    run.trainer.optimizer = OptimizerKind::adam;
    run.trainer.augment = data::AugmentOptions::preset("histology");
  }
  auto result = run_training(run);
  log_info("demo finished in {:.0f} s. Test ROC-AUC {:.3f}, accuracy {:.3f}. Results in {} (report.txt, "
           "metrics.json, history.csv, model/1/)",
           result.seconds, result.test.roc_auc, result.test.accuracy, result.run_dir.string());
  return result;
}

}  // namespace histocnn::train
