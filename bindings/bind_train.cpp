#include "bindings.h"

#include "histocnn/train/demo.h"
#include "histocnn/inference/evaluate.h"
#include "histocnn/train/options.h"
#include "histocnn/train/run.h"
#include "histocnn/train/cv.h"

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

namespace py = pybind11;

namespace histocnn::bindings {

namespace {

// Lets Python subclasses override the C++ callback hooks. The hooks are exposed under
// underscore names; histocnn.Callback (Python) turns them into Keras-style methods.
class PyCallback : public train::Callback {
 public:
  void on_train_begin(train::TrainContext& c) override {
    PYBIND11_OVERRIDE_NAME(void, train::Callback, "_on_train_begin", on_train_begin, std::ref(c));
  }
  void on_epoch_begin(train::TrainContext& c, int epoch) override {
    PYBIND11_OVERRIDE_NAME(void, train::Callback, "_on_epoch_begin", on_epoch_begin, std::ref(c), epoch);
  }
  void on_batch_end(train::TrainContext& c, int64_t batch, double loss) override {
    PYBIND11_OVERRIDE_NAME(void, train::Callback, "_on_batch_end", on_batch_end, std::ref(c), batch, loss);
  }
  void on_epoch_end(train::TrainContext& c, const train::EpochRecord& r) override {
    PYBIND11_OVERRIDE_NAME(void, train::Callback, "_on_epoch_end", on_epoch_end, std::ref(c), r);
  }
  void on_train_end(train::TrainContext& c) override {
    PYBIND11_OVERRIDE_NAME(void, train::Callback, "_on_train_end", on_train_end, std::ref(c));
  }
};

// The trainer's enums (train/choices.h) as their names in Python: parsed where they come in.
template <typename E>
auto choice_property_get(E train::TrainerOptions::*field) {
  return [field](const train::TrainerOptions& o) { return train::choice_name(o.*field); };
}
template <typename E>
auto choice_property_set(const char* name, E train::TrainerOptions::*field) {
  return [name, field](train::TrainerOptions& o, const std::string& text) {
    o.*field = train::parse_choice<E>(name, text);
  };
}

}  // namespace

void init_train(py::module_& root) {
  auto m = root.def_submodule("train", "Training runs and evaluation (the Python Trainer wraps these)");

  py::class_<train::TrainContext>(m, "TrainContext")
      .def_readonly("epochs", &train::TrainContext::epochs)
      .def_readonly("batches_per_epoch", &train::TrainContext::batches_per_epoch)
      .def_readwrite("stop_training", &train::TrainContext::stop_training)
      .def_property("learning_rate", &train::TrainContext::learning_rate, &train::TrainContext::set_learning_rate);

  py::class_<train::Callback, PyCallback, std::shared_ptr<train::Callback>>(m, "CallbackBase")
      .def(py::init<>());
  py::class_<train::StopSignal, train::Callback, std::shared_ptr<train::StopSignal>>(m, "StopSignal")
      .def(py::init<>())
      .def("request", &train::StopSignal::request, "Stop at the next batch (thread-safe).")
      .def_property_readonly("requested", &train::StopSignal::requested);

  py::class_<train::TrainerOptions>(m, "TrainerOptions")
      .def(py::init<>())
      .def_readwrite("epochs", &train::TrainerOptions::epochs)
      .def_readwrite("batch_size", &train::TrainerOptions::batch_size)
      .def_property("optimizer", choice_property_get(&train::TrainerOptions::optimizer),
                    choice_property_set<train::OptimizerKind>("optimizer", &train::TrainerOptions::optimizer))
      .def_readwrite("learning_rate", &train::TrainerOptions::learning_rate)
      .def_readwrite("backbone_lr_multiplier", &train::TrainerOptions::backbone_lr_multiplier)
      .def_property("mixed_precision", choice_property_get(&train::TrainerOptions::mixed_precision),
                    choice_property_set<train::MixedPrecision>("mixed_precision", &train::TrainerOptions::mixed_precision))
      .def_readwrite("weight_decay", &train::TrainerOptions::weight_decay)
      .def_readwrite("ema_decay", &train::TrainerOptions::ema_decay)
      .def_readwrite("mixup", &train::TrainerOptions::mixup)
      .def_readwrite("seed", &train::TrainerOptions::seed)
      .def_readwrite("workers", &train::TrainerOptions::workers)
      .def_readwrite("threads", &train::TrainerOptions::threads)
      .def_readwrite("device", &train::TrainerOptions::device)
      .def_property(
          "augment", [](const train::TrainerOptions& o) { return o.augment.to_json(); },
          [](train::TrainerOptions& o, const std::string& preset) { o.augment = data::AugmentOptions::preset(preset); },
          "An augmentation preset name when set (none, flips, study, histology); its JSON when read.")
      .def_readwrite("momentum", &train::TrainerOptions::momentum)
      .def_property("schedule", choice_property_get(&train::TrainerOptions::schedule),
                    choice_property_set<train::Schedule>("schedule", &train::TrainerOptions::schedule))
      .def_readwrite("warmup_epochs", &train::TrainerOptions::warmup_epochs)
      .def_readwrite("reduce_lr_patience", &train::TrainerOptions::reduce_lr_patience)
      .def_readwrite("reduce_lr_factor", &train::TrainerOptions::reduce_lr_factor)
      .def_readwrite("min_lr", &train::TrainerOptions::min_lr)
      .def_readwrite("early_stopping_patience", &train::TrainerOptions::early_stopping_patience)
      .def_property("class_weight", choice_property_get(&train::TrainerOptions::class_weight),
                    choice_property_set<train::ClassWeight>("class_weight", &train::TrainerOptions::class_weight))
      .def_property("sampler", choice_property_get(&train::TrainerOptions::sampler),
                    choice_property_set<train::Sampler>("sampler", &train::TrainerOptions::sampler))
      .def_readwrite("checkpoint_dir", &train::TrainerOptions::checkpoint_dir)
      .def_readwrite("cache_features", &train::TrainerOptions::cache_features)
      .def_readwrite("restore_best", &train::TrainerOptions::restore_best)
      .def_readwrite("progress", &train::TrainerOptions::progress);

  py::class_<models::ClassifierOptions>(m, "ClassifierOptions")
      .def(py::init<>())
#define HISTOCNN_BIND_ARG(name) \
  .def_property(#name, [](const models::ClassifierOptions& o) { return o.name(); }, \
                [](models::ClassifierOptions& o, decltype(o.name()) v) { o.name(v); })
      HISTOCNN_BIND_ARG(backbone) HISTOCNN_BIND_ARG(head) HISTOCNN_BIND_ARG(lstm_units) HISTOCNN_BIND_ARG(tf_padding) HISTOCNN_BIND_ARG(freeze_backbone)
      HISTOCNN_BIND_ARG(train_bn) HISTOCNN_BIND_ARG(hidden1) HISTOCNN_BIND_ARG(hidden2) HISTOCNN_BIND_ARG(dropout)
      HISTOCNN_BIND_ARG(batch_norm) HISTOCNN_BIND_ARG(num_classes);
#undef HISTOCNN_BIND_ARG

  py::class_<train::RunOptions>(m, "RunOptions")
      .def(py::init<>())
      .def_readwrite("data_dirs", &train::RunOptions::data_dirs)
      .def_readwrite("manifest", &train::RunOptions::manifest)
      .def_readwrite("output_dir", &train::RunOptions::output_dir)
      .def_readwrite("name", &train::RunOptions::name)
      .def_readwrite("model", &train::RunOptions::model)
      .def_readwrite("weights", &train::RunOptions::weights)
      .def_readwrite("image_size", &train::RunOptions::image_size)
      .def_readwrite("normalisation", &train::RunOptions::normalisation)
      .def_readwrite("split", &train::RunOptions::split)
      .def_readwrite("balance_per_class", &train::RunOptions::balance_per_class)
      .def_readwrite("trainer", &train::RunOptions::trainer)
      .def_readwrite("threshold", &train::RunOptions::threshold)
      .def_readwrite("tensorboard", &train::RunOptions::tensorboard)
      .def_readwrite("callbacks", &train::RunOptions::callbacks)
      .def("to_json", &train::RunOptions::to_json);

  py::class_<train::EpochRecord>(m, "EpochRecord")
      .def_readonly("epoch", &train::EpochRecord::epoch)
      .def_readonly("train_loss", &train::EpochRecord::train_loss)
      .def_readonly("train_accuracy", &train::EpochRecord::train_accuracy)
      .def_readonly("val_loss", &train::EpochRecord::val_loss)
      .def_readonly("val_accuracy", &train::EpochRecord::val_accuracy)
      .def_readonly("val_auc", &train::EpochRecord::val_auc)
      .def_readonly("learning_rate", &train::EpochRecord::learning_rate)
      .def_readonly("seconds", &train::EpochRecord::seconds)
      .def_readonly("images_per_second", &train::EpochRecord::images_per_second);

  py::class_<train::History>(m, "History")
      .def_readonly("epochs", &train::History::epochs)
      .def_readonly("best_epoch", &train::History::best_epoch)
      .def_readonly("best_val_auc", &train::History::best_val_auc)
      .def_readonly("feature_cache_seconds", &train::History::feature_cache_seconds)
      .def_readonly("fit_seconds", &train::History::fit_seconds)
      .def_readonly("stopped_early", &train::History::stopped_early)
      .def_readonly("resumed_from_epoch", &train::History::resumed_from_epoch)
      .def_readonly("interrupted", &train::History::interrupted)
      .def("to_csv", &train::History::to_csv);

  py::class_<train::RunResult>(m, "RunResult")
      .def_readonly("history", &train::RunResult::history)
      .def_readonly("validation", &train::RunResult::validation)
      .def_readonly("test", &train::RunResult::test)
      .def_readonly("test_stain_shift", &train::RunResult::test_stain_shift)
      .def_readonly("test_predictions", &train::RunResult::test_predictions,
                    "The test split as stained (labels, p_positive), in manifest order")
      .def_readonly("test_report", &train::RunResult::test_report)
      .def_readonly("run_dir", &train::RunResult::run_dir)
      .def_readonly("model_dir", &train::RunResult::model_dir)
      .def_readonly("seconds", &train::RunResult::seconds);

  m.def("set_run_option", &train::set_run_option, py::arg("options"), py::arg("name"), py::arg("json_value"),
        "Sets one option of RunOptions by its flat name; the value is JSON text.");
  m.def("get_run_option", &train::get_run_option, py::arg("options"), py::arg("name"),
        "One option of RunOptions by its flat name, as JSON text.");
  m.def("run_option_values", &train::run_option_values, py::arg("options"),
        "Every option as a JSON object of name -> value (of RunOptions() these are the defaults).");
  m.def("run_option_names", &train::run_option_names);
  m.def("run_preset_names", &train::run_preset_names, "Named recipes for Trainer(preset=...) and --preset.");
  m.def("apply_run_preset", &train::apply_run_preset, py::arg("options"), py::arg("name"),
        "Sets every option of a named recipe (e.g. 'study'); options set afterwards override it.");
  py::class_<train::CrossValidationOptions>(m, "CrossValidationOptions")
      .def(py::init<>())
      .def_readwrite("run", &train::CrossValidationOptions::run)
      .def_readwrite("folds", &train::CrossValidationOptions::folds)
      .def_readwrite("fold_seed", &train::CrossValidationOptions::fold_seed)
      .def_readwrite("only_folds", &train::CrossValidationOptions::only_folds)
      .def_readwrite("stain_shifts", &train::CrossValidationOptions::stain_shifts)
      .def_readwrite("tta", &train::CrossValidationOptions::tta)
      .def_readwrite("context_radius", &train::CrossValidationOptions::context_radius)
      .def_readwrite("rescore", &train::CrossValidationOptions::rescore)
      .def_readwrite("name", &train::CrossValidationOptions::name);
  py::class_<train::FoldScore>(m, "FoldScore")
      .def_readonly("stain_shift", &train::FoldScore::stain_shift)
      .def_readonly("group", &train::FoldScore::group)
      .def_readonly("patches", &train::FoldScore::patches)
      .def_readonly("patients", &train::FoldScore::patients)
      .def_readonly("roc_auc", &train::FoldScore::roc_auc)
      .def_readonly("balanced_accuracy", &train::FoldScore::balanced_accuracy)
      .def_readonly("sensitivity", &train::FoldScore::sensitivity)
      .def_readonly("specificity", &train::FoldScore::specificity)
      .def_readonly("median_patient_auc", &train::FoldScore::median_patient_auc);
  py::class_<train::FoldResult>(m, "FoldResult")
      .def_readonly("fold", &train::FoldResult::fold)
      .def_readonly("run_dir", &train::FoldResult::run_dir)
      .def_readonly("threshold", &train::FoldResult::threshold)
      .def_readonly("seconds", &train::FoldResult::seconds)
      .def_readonly("scores", &train::FoldResult::scores)
      .def_readonly("context_radius", &train::FoldResult::context_radius)
      .def_readonly("context_scores", &train::FoldResult::context_scores);
  py::class_<train::CrossValidationResult>(m, "CrossValidationResult")
      .def_readonly("output_dir", &train::CrossValidationResult::output_dir)
      .def_readonly("folds", &train::CrossValidationResult::folds)
      .def_readonly("summary", &train::CrossValidationResult::summary);
  m.def("assign_patient_folds", &train::assign_patient_folds, py::arg("manifest"), py::arg("folds"), py::arg("seed"));
  m.def("cross_validate", &train::cross_validate, py::arg("options"), py::call_guard<py::gil_scoped_release>());
  m.def("run_training", &train::run_training, py::arg("options"), py::call_guard<py::gil_scoped_release>(),
        "Splits, trains, evaluates and writes a run folder (the job behind `histocnn train`).");

  m.def("load_patch_manifest",
        py::overload_cast<const std::vector<std::filesystem::path>&, const std::filesystem::path&>(&train::load_patch_manifest),
        py::arg("data_dirs"), py::arg("manifest"));
  m.def("load_patch_manifest",
        py::overload_cast<const std::filesystem::path&, const std::filesystem::path&>(&train::load_patch_manifest),
        py::arg("data_dir"), py::arg("manifest"));

  py::class_<train::DemoOptions>(m, "DemoOptions")
      .def(py::init<>())
      .def_readwrite("output_dir", &train::DemoOptions::output_dir)
      .def_readwrite("patients", &train::DemoOptions::patients)
      .def_readwrite("patches_per_patient", &train::DemoOptions::patches_per_patient)
      .def_readwrite("epochs", &train::DemoOptions::epochs)
      .def_readwrite("backbone", &train::DemoOptions::backbone)
      .def_readwrite("seed", &train::DemoOptions::seed)
      .def_readwrite("progress", &train::DemoOptions::progress);
  m.def("run_demo", &train::run_demo, py::arg("options"), py::call_guard<py::gil_scoped_release>());
}

}  // namespace histocnn::bindings
