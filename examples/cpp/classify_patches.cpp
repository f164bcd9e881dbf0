// Generates a few synthetic patches, trains the small CNN for one epoch, saves the model, loads
// it back and classifies the test split: the library's whole path in one short program.
//
//   classify_patches <work-folder>
#include <histocnn/core/log.h>
#include <histocnn/data/synthetic.h>
#include <histocnn/inference/evaluate.h>
#include <histocnn/train/run.h>

#include <cstdio>
#include <filesystem>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <work-folder>\n", argv[0]);
    return 2;
  }
  const std::filesystem::path work = argv[1];
  try {
    histocnn::data::SyntheticOptions synth;
    synth.patients = 6;
    synth.patches_per_patient = 30;
    histocnn::data::generate_synthetic(work / "data", synth);

    histocnn::train::RunOptions run;
    run.data_dirs = {work / "data"};
    run.output_dir = work / "runs";
    run.name = "example";
    run.image_size = 50;
    run.model.backbone("simple_cnn").freeze_backbone(false);
    run.trainer.epochs = 1;
    run.trainer.progress = false;
    auto result = histocnn::train::run_training(run);

    auto manifest = histocnn::data::Manifest::load_csv(result.run_dir / "manifest.csv").subset("test");
    histocnn::inference::EvaluateOptions options;
    options.progress = false;
    auto evaluation = histocnn::inference::evaluate_bundle(result.run_dir / "model", manifest, options);
    std::printf("%s", evaluation.report.c_str());
    std::printf("example: evaluated %lld test patches, accuracy %.3f\n",
                static_cast<long long>(evaluation.metrics.n), evaluation.metrics.accuracy);
    return evaluation.metrics.n == static_cast<int64_t>(manifest.size()) ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
