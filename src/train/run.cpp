#include "histocnn/train/run.h"

#include "histocnn/train/options.h"

#include "histocnn/core/error.h"
#include "histocnn/core/hash.h"
#include "histocnn/core/log.h"
#include "histocnn/data/balance.h"
#include "histocnn/data/csv.h"
#include "histocnn/data/dataset.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/folder_lock.h"
#include "histocnn/io/image.h"
#include "histocnn/metrics/plots.h"
#include "histocnn/metrics/report.h"
#include "histocnn/models/pretrained.h"
#include "histocnn/train/callbacks.h"
#include "histocnn/train/distributed.h"
#include "histocnn/train/figures.h"
#include "histocnn/inference/context_model.h"
#include "histocnn/inference/evaluate.h"
#include "histocnn/inference/saved_model.h"
#include "histocnn/inference/slide_maps.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <ctime>
#include <map>
#include <optional>
#include <set>

namespace histocnn::train {

namespace fs = std::filesystem;

namespace {

std::string timestamp(const char* format) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

nlohmann::json metrics_json(const metrics::BinaryMetrics& m) { return nlohmann::json::parse(metrics::to_json(m)); }

}  // namespace

std::string RunOptions::to_json() const {
  nlohmann::json j = {
      {"data_dir", nlohmann::json::parse(get_run_option(*this, "data_dir"))},
      {"manifest", manifest.string()},
      {"output_dir", output_dir.string()},
      {"name", name},
      {"model", nlohmann::json::parse(model.to_json())},
      {"weights", weights},
      {"image_size", image_size},
      {"normalisation", normalisation},
      {"split", {{"train", split.train}, {"val", split.val}, {"test", split.test}, {"seed", split.seed},
                 {"by_patch", split.by_patch}}},
      {"balance_per_class", balance_per_class},
      {"trainer", nlohmann::json::parse(trainer.to_json())},
      {"threshold", threshold},
      {"threshold_method", threshold_method},
      {"target_sensitivity", target_sensitivity},
      {"stain_shift", stain_shift},
      {"tensorboard", tensorboard},
  };
  // Written only when set, so runs without normalisation keep their names.
  if (stain_normalise != "none") j["stain_normalise"] = stain_normalise;
  if (stain_fit != "patch") j["stain_fit"] = stain_fit;
  if (!stain_reference.empty()) j["stain_reference"] = stain_reference.string();
  if (colour != "rgb") j["colour"] = colour;
  if (stain_white_balance) j["stain_white_balance"] = true;
  return j.dump(2);
}

std::string default_run_name(const RunOptions& options) {
  // The options that define the run, without where it is written or how fast it runs.
  auto j = nlohmann::json::parse(options.to_json());
  j.erase("name");
  j.erase("output_dir");
  j.erase("stain_shift");  // evaluation only: the same model
  j["trainer"] = nlohmann::json::parse(options.trainer.learning_json());
  j["trainer"]["epochs"] = options.trainer.epochs;
  return fmt::format("{}-{}-{:08x}", models::backbone_label(options.model.backbone()), options.model.head(),
                     fnv1a64(j.dump()) & 0xffffffffULL);
}

data::Manifest load_patch_manifest(const std::vector<fs::path>& data_dirs, const fs::path& manifest) {
  HISTOCNN_CHECK(!data_dirs.empty() || !manifest.empty(),
                 "no data given: pass a folder of patches in the Kaggle layout (data_dir) or a manifest CSV");
  if (!manifest.empty()) {
    HISTOCNN_CHECK(data_dirs.size() <= 1,
                       "a manifest's paths are relative to one folder; got {} data folders with manifest '{}'",
                       data_dirs.size(), manifest.string());
    return data::Manifest::load_csv(manifest, data_dirs.empty() ? std::optional<fs::path>{}
                                                                 : std::optional<fs::path>{data_dirs.front()});
  }
  std::vector<data::Manifest> parts;
  for (const auto& dir : data_dirs) parts.push_back(data::scan_directory(dir).manifest);
  auto joined = data::join_manifests(parts);
  if (parts.size() > 1) {
    log_info("joined {} data folders: {} patches of {} patients", parts.size(), joined.size(), joined.patients().size());
  }
  return joined;
}

data::Manifest load_patch_manifest(const fs::path& data_dir, const fs::path& manifest) {
  return load_patch_manifest(data_dir.empty() ? std::vector<fs::path>{} : std::vector<fs::path>{data_dir}, manifest);
}

void RunOptions::validate() const {
  trainer.validate();
  HISTOCNN_CHECK(!data_dirs.empty() || !manifest.empty(),
                 "no data given: pass a folder of patches in the Kaggle layout (data_dir) or a manifest CSV");
  HISTOCNN_CHECK(image_size >= 16 && image_size <= 1024, "image_size must be in [16, 1024], got {}", image_size);
  check_run_option_choice("normalisation", normalisation);
  check_run_option_choice("head", model.head());
  check_run_option_choice("threshold_method", threshold_method);
  check_run_option_choice("stain_normalise", stain_normalise);
  check_run_option_choice("stain_fit", stain_fit);
  check_run_option_choice("colour", colour);
  HISTOCNN_CHECK(!stain_white_balance || stain_normalise == "macenko",
                 "stain_white_balance is part of Macenko normalisation; set stain_normalise to macenko, or to "
                 "white-balance for the white balance alone (got {})",
                 stain_normalise);
  HISTOCNN_CHECK(stain_normalise != "none" || stain_reference.empty(),
                 "stain_reference '{}' is given but stain_normalise is none; choose reinhard, macenko or white-balance",
                 stain_reference.string());
  HISTOCNN_CHECK(model.num_classes() == 2,
                 "num_classes must be 2 (IDC-negative, IDC-positive): evaluation, thresholds and serving are binary; "
                 "got {}", model.num_classes());
  HISTOCNN_CHECK(model.dropout() >= 0 && model.dropout() < 1, "dropout must be in [0, 1), got {}", model.dropout());
  HISTOCNN_CHECK(model.unfreeze_last() >= 0, "unfreeze_last must be >= 0, got {}", model.unfreeze_last());
  HISTOCNN_CHECK(balance_per_class >= 0, "balance_per_class must be >= 0 (0 keeps every patch), got {}",
                 balance_per_class);
  HISTOCNN_CHECK(threshold > 0 && threshold < 1, "threshold must be in (0, 1), got {}", threshold);
  HISTOCNN_CHECK(target_sensitivity > 0 && target_sensitivity <= 1, "target_sensitivity must be in (0, 1], got {}",
                 target_sensitivity);
  HISTOCNN_CHECK(stain_shift >= 0 && stain_shift <= 1,
                 "stain_shift must be in [0, 1] (0 = no robustness evaluation, 0.1 = strong), got {}", stain_shift);
  HISTOCNN_CHECK(!(trainer.schedule == Schedule::cosine && trainer.reduce_lr_patience > 0),
                 "a cosine schedule and ReduceLROnPlateau (reduce_lr_patience {}) both set the learning rate; "
                 "choose one", trainer.reduce_lr_patience);
  HISTOCNN_CHECK(!(trainer.schedule == Schedule::constant && trainer.warmup_epochs > 0),
                 "warmup_epochs {} needs a schedule to warm up into; use --schedule cosine or drop the warm-up",
                 trainer.warmup_epochs);
  split.validate();
}

RunData prepare_run_data(const RunOptions& options) {
  RunData d;
  d.manifest = load_patch_manifest(options.data_dirs, options.manifest);
  if (options.balance_per_class > 0) {
    d.manifest = data::balance_classes(d.manifest, options.balance_per_class, options.split.seed);
    log_info("balanced to at most {} patches per class: {} patches", options.balance_per_class, d.manifest.size());
  }
  // A manifest that records its split (a run's manifest.csv) is honoured; a partly assigned one is
  // refused, as evaluate refuses it.
  HISTOCNN_CHECK(d.manifest.split_state() != data::Manifest::SplitState::partial,
                 "only some rows of the manifest have a split; fill the split column of every row, or clear it "
                 "to split by patient");
  if (d.manifest.split_state() == data::Manifest::SplitState::none) {
    d.manifest = data::split_manifest(d.manifest, options.split);
  }
  log_info("splits:\n{}", data::format_split_summary(data::summarize_splits(d.manifest)));
  d.train = d.manifest.subset("train");
  d.val = d.manifest.subset("val");
  d.test = d.manifest.subset("test");
  HISTOCNN_CHECK(d.train.size() > 0, "the training split is empty; check the split fractions");
  return d;
}

RunModel build_run_model(const RunOptions& options) {
  torch::manual_seed(options.trainer.seed);
  const auto weights = models::resolve_weights(options.weights, options.model.backbone());
  auto model_options = options.model;
  if (weights.path.empty() && !model_options.freeze_backbone() && !model_options.train_bn() &&
      !models::backbone_brings_weights(model_options.backbone())) {
    // BatchNorm kept in inference mode protects pretrained (often folded) statistics; a randomly
    // initialised network has none, and deep ones stop learning without batch statistics.
    model_options.train_bn(true);
    log_info("training the backbone from scratch: its BatchNorm layers train too (train_bn)");
  }
  RunModel m;
  m.model = models::Classifier(model_options);
  m.weights = weights.path;
  std::string normalisation = options.normalisation;
  if (normalisation.empty()) normalisation = weights.normalisation;
  if (normalisation.empty()) normalisation = m.model->backbone()->normalisation();
  m.preprocessing = data::preprocessing_for(normalisation, options.image_size);
  m.preprocessing.colour = data::parse_colour(options.colour);
  if (!weights.path.empty()) {
    auto report = m.model->load_backbone_weights(weights.path);
    log_info("backbone weights from {}: {}", weights.path.string(), report.summary());
  } else if (options.model.freeze_backbone() && !models::backbone_brings_weights(options.model.backbone())) {
    log_warn("the backbone is frozen but no pretrained weights were given: only the head will learn, on random "
             "features. Pass weights, or train the backbone (freeze_backbone = false)");
  }
  return m;
}

std::optional<data::StainNormaliser> fit_run_stain_reference(const RunOptions& options, const data::Manifest& train) {
  if (options.stain_normalise == "none") return std::nullopt;
  auto normaliser = data::fit_stain_reference(data::parse_stain_method(options.stain_normalise),
                                              data::parse_stain_fit(options.stain_fit), options.stain_white_balance,
                                              train, options.stain_reference);
  log_info("stain normalisation: {} fitted per {}{}, reference {}", options.stain_normalise, options.stain_fit,
           options.stain_white_balance ? ", white-balanced to the glass" : "",
           options.stain_reference.empty() ? "from the training split" : options.stain_reference.string());
  return normaliser;
}

namespace {

// What the evaluation steps produce: metrics.json's content and report.txt's text.
struct Evaluation {
  nlohmann::json metrics;
  std::string report;
  double threshold = 0.5;
};

// Each split's predictions, also written as predictions_<split>.csv.
Predictions predict_split(Trainer& trainer, const data::PatchDataset& ds, const fs::path& run_dir,
                          const std::string& split) {
  auto pred = trainer.predict(ds);
  std::string csv = "path,patient,label,p_positive\n";
  const auto& rows = ds.manifest().rows();
  for (size_t i = 0; i < rows.size(); ++i) {
    csv += fmt::format("{},{},{},{}\n", data::csv_field(rows[i].path), data::csv_field(rows[i].patient), rows[i].label,
                       pred.p_positive[i]);
  }
  io::write_file_atomic(run_dir / fmt::format("predictions_{}.csv", split), csv);
  return pred;
}

// Validation: the decision threshold (chosen here unless fixed) and the validation metrics.
void evaluate_validation(const RunOptions& options, Trainer& trainer, const data::PatchDataset& val_ds,
                         RunResult& result, metrics::EvaluationOptions& eval_options, Evaluation& e) {
  if (val_ds.size() == 0) {
    if (options.threshold_method != "fixed") {
      log_warn("no validation split to choose the threshold on ({}): using the fixed threshold {}",
               options.threshold_method, options.threshold);
    }
    e.threshold = options.threshold;
    return;
  }
  auto pred = predict_split(trainer, val_ds, result.run_dir, "validation");
  if (options.threshold_method != "fixed") {
    eval_options.validation_choice =
        metrics::choose_threshold(pred.labels, pred.p_positive, options.threshold_method, options.target_sensitivity);
  }
  e.threshold = eval_options.validation_choice ? eval_options.validation_choice->threshold : options.threshold;
  result.validation = metrics::evaluate_binary(pred.labels, pred.p_positive, e.threshold);
  e.metrics["validation"] = metrics_json(result.validation);
  e.report += inference::format_evaluation(pred.labels, pred.p_positive, e.threshold, eval_options.class_names,
                                           "validation split") + "\n";
}

// The learned spatial context head reads each patch's neighbours on its slide, so it is fitted on
// the validation patients' complete slides: a class-balanced sample keeps positives and negatives
// at different rates, and its neighbourhoods (which neighbours are there) would teach the head the
// sampling instead of the tissue. When the run balanced its classes, those slides are predicted
// here (whole patients, up to kContextSlidePatches patches, as predictions_validation_slides.csv);
// otherwise the validation split is already complete. The head is written as
// <run>/context_model.json. A fit that cannot be made (no validation split, one class, too few
// patches) is logged and skipped: the run does not depend on it.
constexpr size_t kContextSlidePatches = 10000;

struct RunContext {
  std::optional<inference::ContextModel> model;
  bool test_slides_complete = true;  ///< the test split holds every patch of its patients
};

RunContext fit_run_context_model(const RunOptions& options, Trainer& trainer, const RunData& data,
                                 const data::Preprocessing& preprocessing, const fs::path& run_dir) {
  RunContext out;
  const auto file = run_dir / "context_model.json", slides_csv = run_dir / "predictions_validation_slides.csv";
  std::error_code ec;
  fs::remove(file, ec);  // one from an earlier run would describe another model
  fs::remove(slides_csv, ec);
  if (data.val.size() == 0) {
    log_info("no validation split: no learned context head (context_model.json) for this run");
    return out;
  }
  if (options.split.by_patch) {
    log_info("split by patch: the validation patches are scattered over slides shared with training, so there is "
             "no learned context head (context_model.json) for this run");
    out.test_slides_complete = false;
    return out;
  }
  try {
    // Each patient's patches before class balancing: their complete slides.
    const auto all = options.balance_per_class > 0 ? load_patch_manifest(options.data_dirs, options.manifest)
                                                   : data.manifest;
    const auto patches_of = [&](const std::vector<std::string>& patients) {
      const std::set<std::string> wanted(patients.begin(), patients.end());
      return all.filter([&](const data::PatchRecord& r) { return wanted.count(r.patient) > 0; });
    };
    out.test_slides_complete = data.test.size() == patches_of(data.test.patients()).size();
    inference::ContextFitOptions fit;
    fit.threshold_method = options.threshold_method;
    fit.target_sensitivity = options.target_sensitivity;
    fit.fixed_threshold = options.threshold;
    const auto val_slides = patches_of(data.val.patients());
    if (val_slides.size() > data.val.size()) {
      std::vector<std::string> patients;
      size_t patches = 0;
      std::map<std::string, size_t> count;
      for (const auto& r : val_slides.rows()) ++count[r.patient];
      for (const auto& patient : data.val.patients()) {
        if (!patients.empty() && patches + count[patient] > kContextSlidePatches) break;
        patients.push_back(patient);
        patches += count[patient];
      }
      log_info("context head: predicting the complete slides of {} validation patients ({} patches; the balanced "
               "split holds {} of their patches)", patients.size(), patches, data.val.size());
      predict_split(trainer, data::PatchDataset(patches_of(patients), preprocessing), run_dir, "validation_slides");
    }
    auto model = inference::fit_context_model(run_dir, fit);
    model.save(file);
    log_info("context_model.json: {}", model.summary());
    out.model = std::move(model);
  } catch (const std::exception& ex) {
    fs::remove(file, ec);
    log_warn("no learned context head for this run: {}", ex.what());
  }
  return out;
}

// Test, in full (intervals by patient, PR-AUC, calibration, patient-level results, plots, the
// error gallery), then the same patients restained.
void evaluate_test(const RunOptions& options, Trainer& trainer, const data::PatchDataset& test_ds, RunResult& result,
                   const metrics::EvaluationOptions& eval_options, const RunContext& context, Evaluation& e) {
  if (test_ds.size() == 0) return;
  const auto& class_names = eval_options.class_names;
  auto pred = predict_split(trainer, test_ds, result.run_dir, "test");
  result.test_predictions = pred;
  std::vector<std::string> patients;
  for (const auto& r : test_ds.manifest().rows()) patients.push_back(r.patient);
  auto full = metrics::evaluate_full(pred.labels, pred.p_positive, patients, eval_options);
  result.test = full.metrics;
  e.metrics["test"] = metrics_json(full.metrics);
  e.metrics["test_full"] = nlohmann::json::parse(full.to_json());
  if (full.intervals) {
    e.metrics["test_auc_ci"] = {{"low", full.intervals->roc_auc.lower},
                                {"high", full.intervals->roc_auc.upper},
                                {"unit", full.intervals->unit}};
  }
  e.report += inference::format_evaluation(pred.labels, pred.p_positive, e.threshold, class_names, "test split") +
              "\n" + full.to_text() + "\n";
  metrics::write_evaluation_plots(result.run_dir / "plots", full, "test_");
  // Error gallery: the most confident false positives and negatives, drawn and listed.
  e.report += write_error_gallery(result.run_dir / "plots" / "test_errors.png", test_ds.manifest(), pred, e.threshold);
  // Slide maps of (up to four) test patients, and the metrics with spatial context (smoothing and
  // the learned head) beside the patch-alone ones. The head weighs complete neighbourhoods: on a
  // class-balanced sample of the test slides its numbers would measure the sampling.
  const auto* head = context.model && context.test_slides_complete ? &*context.model : nullptr;
  if (const auto problem = inference::slide_grid_problem(test_ds.manifest()); problem.empty()) {
    const auto maps = inference::write_slide_maps(test_ds.manifest(), pred.p_positive, e.threshold,
                                                  result.run_dir / "maps", inference::kDefaultSmoothRadius, 4, 8, head);
    e.report += "Test patients on their slides (maps/<patient>.png; tumour burden = fraction of patches positive):\n" +
                maps.text;
  } else {  // e.g. two patches of a patient at one place: no slide to draw
    log_warn("the test patients' slide maps are not drawn: {}", problem);
    e.report += fmt::format("Test patients on their slides: not drawn: {}\n", problem);
  }
  if (context.model && !head) {
    e.report += "The learned context head (context_model.json) is not applied to this class-balanced sample of\n"
                "the test slides; `histocnn maps --model <run>/model --data <the test patients' folders>` applies\n"
                "it to their complete slides.\n";
  }
  e.report += "\n";
  if (options.stain_shift <= 0) return;
  // The same patients restained as another lab would: same-source validation flatters, and how
  // far the test AUC falls here is the cheapest hint of how the model travels.
  const auto shifted_ds = test_ds.with_stain_shift(options.stain_shift, options.trainer.seed);
  auto shifted = predict_split(trainer, shifted_ds, result.run_dir, "test_stain_shift");
  result.test_stain_shift = metrics::evaluate_binary(shifted.labels, shifted.p_positive, e.threshold);
  e.metrics["test_stain_shift"] = metrics_json(result.test_stain_shift);
  e.metrics["test_stain_shift"]["sigma"] = options.stain_shift;
  e.report += inference::format_evaluation(shifted.labels, shifted.p_positive, e.threshold, class_names,
                                           fmt::format("test split restained per patient (stain shift sigma {})",
                                                       options.stain_shift)) +
              fmt::format("AUC {:.3f} as stained, {:.3f} restained ({:+.3f})\n\n", result.test.roc_auc,
                          result.test_stain_shift.roc_auc, result.test_stain_shift.roc_auc - result.test.roc_auc);
  // What the restaining did: one patch per test patient, as stained and restained.
  const auto examples = data::paired_examples(test_ds, shifted_ds);
  if (!examples.empty()) io::write_png(result.run_dir / "plots" / "stain_shift_examples.png", examples);
}

void plot_history(const History& history, bool with_validation, const fs::path& run_dir) {
  if (history.epochs.empty()) return;
  metrics::TrainingCurves curves;
  for (const auto& e : history.epochs) {
    curves.train_loss.push_back(e.train_loss);
    curves.train_accuracy.push_back(e.train_accuracy);
    if (with_validation) {
      curves.val_loss.push_back(e.val_loss);
      curves.val_accuracy.push_back(e.val_accuracy);
      curves.val_auc.push_back(e.val_auc);
    }
  }
  metrics::plot_training_curves(run_dir / "plots" / "training.png", curves);
}

// The model with everything needed to use it: preprocessing, classes, threshold, metrics, provenance.
fs::path export_model(const RunOptions& options, const RunModel& m, const RunData& d, const Evaluation& e,
                      const History& history, const fs::path& run_dir) {
  inference::ModelCard card;
  card.preprocessing = m.preprocessing;
  card.class_names = inference::idc_class_names();
  card.threshold = e.threshold;
  card.metrics_json = e.metrics.dump();
  card.provenance.created = timestamp("%Y-%m-%dT%H:%M:%SZ");
  if (options.manifest.empty()) {
    for (const auto& dir : options.data_dirs) card.provenance.data += (card.provenance.data.empty() ? "" : ", ") + dir.string();
  } else {
    card.provenance.data = options.manifest.string();
  }
  card.provenance.pretrained_weights = m.weights.string();
  card.provenance.patches = {static_cast<int64_t>(d.train.size()), static_cast<int64_t>(d.val.size()),
                             static_cast<int64_t>(d.test.size())};
  card.provenance.patients = {static_cast<int64_t>(d.train.patients().size()),
                              static_cast<int64_t>(d.val.patients().size()),
                              static_cast<int64_t>(d.test.patients().size())};
  card.provenance.seed = options.trainer.seed;
  card.provenance.best_epoch = history.best_epoch;
  const fs::path dir = run_dir / "model" / "1";
  inference::save_model(m.model, card, dir);
  return dir;
}

}  // namespace

RunResult run_training(const RunOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  options.validate();
  // --nproc N: this process starts N local workers (which find WORLD_SIZE set) and waits for them.
  if (options.trainer.nproc > 1 && !DistributedEnvironment::from_environment()) {
    return run_training_on_local_workers(options);
  }
  // In a data-parallel job every rank trains; rank 0 alone writes the run folder and evaluates.
  ProcessGroup* dist = default_process_group({options.trainer.dist_backend, options.trainer.dist_timeout,
                                              options.trainer.device});
  const bool writes = !dist || dist->is_main();
  const RunData data = prepare_run_data(options);
  RunModel m = build_run_model(options);
  m.preprocessing.stain = fit_run_stain_reference(options, data.train);

  // The run folder is named after what the run learns, so the same command finds (and resumes) it.
  RunResult result;
  result.run_dir = options.output_dir / (options.name.empty() ? default_run_name(options) : options.name);
  // One writer per run folder: a second process with the same options stops here (or waits).
  std::optional<io::FolderLock> lock;
  if (writes) {
    lock.emplace(result.run_dir, "run folder", options.wait_for_lock);
    io::write_file_atomic(result.run_dir / "options.json", options.to_json());
    data.manifest.save_csv(result.run_dir / "manifest.csv");
    log_info("run folder: {}", result.run_dir.string());
  }

  // Train (resuming from the run's checkpoint when there is one).
  data::PatchDataset train_ds(data.train, m.preprocessing), val_ds(data.val, m.preprocessing),
      test_ds(data.test, m.preprocessing);
  TrainerOptions trainer_options = options.trainer;
  if (trainer_options.checkpoint_dir.empty()) trainer_options.checkpoint_dir = (result.run_dir / "checkpoint").string();
  Trainer trainer(m.model, trainer_options);
  if (writes) {
    trainer.add_callback(std::make_shared<CSVLogger>(result.run_dir / "history.csv"));
    if (options.tensorboard) trainer.add_callback(std::make_shared<TensorBoard>(result.run_dir / "tensorboard"));
    for (const auto& cb : options.callbacks) trainer.add_callback(cb);
  }
  result.history = trainer.fit(train_ds, data.val.size() > 0 ? &val_ds : nullptr);
  if (!writes) {
    wait_for_main_rank(*dist);  // while rank 0 evaluates and writes the bundle
    return result;
  }
  const MainRankDone done(dist);  // tells the other ranks when rank 0 has finished, or failed
  // CSVLogger wrote it after each epoch; this covers a rerun of a finished run, where no epoch ends.
  io::write_file_atomic(result.run_dir / "history.csv", result.history.to_csv());
  if (result.history.interrupted) {
    log_warn("training was interrupted; the checkpoint in {} is kept and the same command resumes from it",
             trainer_options.checkpoint_dir);
    return result;
  }

  // Evaluate: the threshold on validation, then the test split as stained and restained.
  Evaluation e;
  e.metrics = {{"best_epoch", result.history.best_epoch},
               {"epochs_run", result.history.epochs.size()},
               {"feature_cache_seconds", result.history.feature_cache_seconds},
               {"fit_seconds", result.history.fit_seconds}};
  metrics::EvaluationOptions eval_options;
  eval_options.threshold = options.threshold;
  eval_options.class_names = inference::idc_class_names();
  eval_options.seed = options.trainer.seed;
  evaluate_validation(options, trainer, val_ds, result, eval_options, e);
  e.metrics["threshold"] = e.threshold;
  const auto context = fit_run_context_model(options, trainer, data, m.preprocessing, result.run_dir);
  evaluate_test(options, trainer, test_ds, result, eval_options, context, e);
  plot_history(result.history, val_ds.size() > 0, result.run_dir);
  result.test_report = e.report;
  io::write_file_atomic(result.run_dir / "report.txt", e.report);

  result.model_dir = export_model(options, m, data, e, result.history, result.run_dir);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  e.metrics["seconds"] = result.seconds;
  io::write_file_atomic(result.run_dir / "metrics.json", e.metrics.dump(2));
  return result;
}

}  // namespace histocnn::train
