// Transform and Trainer: the preprocessing fitted on the training split, and the training run.
#include "histocnn/core/error.h"
#include "histocnn/core/log.h"
#include "histocnn/inference/saved_model.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/train/distributed.h"
#include "histocnn/train/options.h"
#include "histocnn/train/run.h"

#include "component_impl.h"

namespace histocnn::pipeline::detail {

namespace {

train::RunOptions run_options(const ComponentCall& call, const json& config) {
  train::RunOptions o;
  for (const auto& [key, value] : config.items()) {
    try {
      train::set_run_option(o, key, value.dump());
    } catch (const std::invalid_argument& e) {
      HISTOCNN_FAIL("{}: {}", component_name(call.component), e.what());
    }
  }
  o.data_dirs.clear();
  o.manifest = manifest_of_examples(input_dir(call, "examples"));
  return o;
}

}  // namespace

ComponentResult run_transform(const ComponentCall& call, const json& config) {
  train::RunOptions o = run_options(call, config);
  // Only the preprocessing is wanted: how the backbone trains does not change it (and a frozen,
  // randomly initialised backbone would draw a warning meant for training).
  o.model.freeze_backbone(false).train_bn(true);
  // The Trainer's own steps, so the preprocessing is the one training will use and save: the size
  // and normalisation its backbone's weights expect, and a stain reference fitted to the training
  // split only.
  const auto data = train::prepare_run_data(o);
  auto model = train::build_run_model(o);
  model.preprocessing.stain = train::fit_run_stain_reference(o, data.train);
  const fs::path out = output_dir(call, "transform_graph");
  io::write_file_atomic(out / "preprocessing.json", model.preprocessing.to_json());
  write_json_file(out / "transform.json", {{"fitted_on", "train"},
                                           {"train_patches", data.train.size()},
                                           {"train_patients", data.train.patients().size()},
                                           {"options", config},
                                           {"weights", model.weights.string()}});
  ComponentResult r;
  const auto& p = model.preprocessing;
  r.summary = fmt::format("{} px, pad to {}, mean ({:.3f}, {:.3f}, {:.3f}), std ({:.3f}, {:.3f}, {:.3f}){}; fitted on {} "
                          "training patches",
                          p.image_size, p.pad_to, p.mean[0], p.mean[1], p.mean[2], p.std[0], p.std[1], p.std[2],
                          p.stain ? ", stain " + o.stain_normalise : "", data.train.size());
  r.properties["transform_graph"] = {{"image_size", std::to_string(p.image_size)}};
  return r;
}

ComponentResult run_trainer(const ComponentCall& call, const json& config) {
  train::RunOptions o = run_options(call, config);
  const fs::path model = output_dir(call, "model");
  o.output_dir = model.parent_path();
  o.name = model.filename().string();
  o.trainer.progress = call.progress;
  const auto result = train::run_training(o);
  if (!train::is_main_process()) {
    // A rank above 0 of a data-parallel job (a PyTorchJob Worker): rank 0 writes and checks the model.
    ComponentResult r;
    r.summary = "a worker of the data-parallel job; rank 0 wrote the model";
    return r;
  }
  HISTOCNN_CHECK_IO(!result.history.interrupted,
                    "Trainer: training was interrupted; its checkpoint in '{}' is kept and running the pipeline again "
                    "resumes it", (result.run_dir / "checkpoint").string());
  // Serving must apply exactly what the Transform fitted: the bundle's preprocessing is compared.
  const auto card = inference::read_model_card(result.model_dir);
  const fs::path fitted = input_dir(call, "transform_graph") / "preprocessing.json";
  const json expected = json::parse(io::read_file(fitted));
  const json saved = json::parse(card.preprocessing.to_json());
  HISTOCNN_CHECK_IO(expected == saved,
                    "Trainer: the model's preprocessing {} differs from the Transform's {} ('{}'); rerun the pipeline "
                    "with --no-cache", saved.dump(), expected.dump(), fitted.string());
  ComponentResult r;
  r.summary = fmt::format("{} epochs (best {}): validation AUC {:.3f}, test AUC {:.3f}, threshold {:.3f}",
                          result.history.epochs.size(), result.history.best_epoch, result.validation.roc_auc,
                          result.test.roc_auc, card.threshold);
  r.properties["model"] = {{"bundle", result.model_dir.string()},
                           {"threshold", fmt::format("{}", card.threshold)},
                           {"test_roc_auc", fmt::format("{}", result.test.roc_auc)},
                           {"epochs", std::to_string(result.history.epochs.size())}};
  return r;
}

}  // namespace histocnn::pipeline::detail
