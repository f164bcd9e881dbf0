#pragma once
// The main job on the embedded default data: generate synthetic H&E patches, train, evaluate,
// and say where everything is. docs/benchmarks.md ("The demo") has its measured run time.
//
//   histocnn::train::DemoOptions opt;           // output folder "histocnn-demo"
//   auto result = histocnn::train::run_demo(opt);
//
// With ImageNet MobileNetV2 weights available (see models/pretrained.h) it trains the study's
// dense head on a frozen MobileNetV2 at 96 px; without them, the small CNN from scratch at 50 px.
#include "histocnn/core/progress.h"
#include "histocnn/train/run.h"

#include <filesystem>

namespace histocnn::train {

struct DemoOptions {
  std::filesystem::path output_dir = "histocnn-demo";
  int patients = 16;
  int patches_per_patient = 120;
  int epochs = 0;              ///< 0: the demo's default for the chosen backbone
  std::string backbone = "auto";  ///< auto | mobilenet_v2 | simple_cnn
  uint64_t seed = 42;
  bool progress = progress_enabled_by_default();
};

RunResult run_demo(const DemoOptions& options);

}  // namespace histocnn::train
