#include "histocnn/train/options.h"

#include "histocnn/core/error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>

namespace histocnn::train {

namespace {

using json = nlohmann::json;

struct Entry {
  std::function<void(RunOptions&, const json&)> set;
  std::function<json(const RunOptions&)> get;
};

// An option that is one field: `access` is a generic lambda returning a reference to it, so the
// same lambda reads a const RunOptions and writes a mutable one.
template <typename T, typename Access>
Entry field(Access access) {
  return {[access](RunOptions& o, const json& v) { access(o) = v.get<T>(); },
          [access](const RunOptions& o) { return json(static_cast<T>(access(o))); }};
}

template <typename Access>
Entry path_field(Access access) {
  return {[access](RunOptions& o, const json& v) { access(o) = v.get<std::string>(); },
          [access](const RunOptions& o) { return json(access(o).string()); }};
}

// A list of paths: one is written as a string (as a single-path option), several as an array;
// either is read.
template <typename Access>
Entry paths_field(Access access) {
  return {[access](RunOptions& o, const json& v) {
            std::vector<std::filesystem::path> paths;
            if (v.is_array()) {
              for (const auto& item : v) paths.emplace_back(item.get<std::string>());
            } else if (!v.get<std::string>().empty()) {
              paths.emplace_back(v.get<std::string>());
            }
            access(o) = std::move(paths);
          },
          [access](const RunOptions& o) {
            const auto& paths = access(o);
            if (paths.size() == 1) return json(paths.front().string());
            if (paths.empty()) return json("");
            json list = json::array();
            for (const auto& p : paths) list.push_back(p.string());
            return list;
          }};
}

#define HISTOCNN_FIELD(type, expr) field<type>([](auto& o) -> auto& { return expr; })

// A field holding one of an enum's values (train/choices.h), read and written by its name.
template <typename E, typename Access>
Entry choice_field(const char* name, Access access) {
  return {[name, access](RunOptions& o, const json& v) { access(o) = parse_choice<E>(name, v.get<std::string>()); },
          [access](const RunOptions& o) { return json(choice_name(access(o))); }};
}

#define HISTOCNN_CHOICE(type, name, expr) choice_field<type>(name, [](auto& o) -> auto& { return expr; })

struct Option {
  RunOptionSpec spec;
  Entry entry;
};

Option opt(std::string name, RunOptionType type, std::string help, Entry entry, std::string flag = "",
           std::vector<std::string> choices = {}) {
  if (flag.empty()) {
    flag = "--" + name;
    for (auto& c : flag) c = c == '_' ? '-' : c;
  }
  return {RunOptionSpec{std::move(name), std::move(flag), std::move(help), type, std::move(choices)},
          std::move(entry)};
}

constexpr auto B = RunOptionType::boolean;
constexpr auto I = RunOptionType::integer;
constexpr auto F = RunOptionType::number;
constexpr auto S = RunOptionType::string;
constexpr auto P = RunOptionType::path;

// The one list of run options: their names (Python keywords, compare-config keys, options.json),
// command-line flags, help texts and allowed values. For a switch (boolean), the flag is the one that
// flips the default.
const std::vector<Option>& options_list() {
  static const std::vector<Option> list = {
      // data and run folder
      opt("data_dir", RunOptionType::paths, "Folders of patches in the Kaggle layout (scanned; several are joined, a patient in only one)",
          paths_field([](auto& o) -> auto& { return o.data_dirs; }), "--data-dir,--data"),
      opt("manifest", P, "Manifest CSV (paths relative to its folder, or to --data); its split column is honoured", path_field([](auto& o) -> auto& { return o.manifest; })),
      opt("output_dir", P, "Folder for run folders", path_field([](auto& o) -> auto& { return o.output_dir; }), "--output-dir,--out"),
      opt("name", S, "Run folder name (default: <backbone>-<head>-<hash of the options>)", HISTOCNN_FIELD(std::string, o.name)),
      // model
      opt("backbone", S, "Backbone name (see `histocnn models list`), or torchscript:<file>", HISTOCNN_FIELD(std::string, o.model.backbone())),
      opt("weights", S, "Pretrained backbone weights: 'imagenet', a .safetensors file, a Keras .h5 file, or '' for none",
          {[](RunOptions& o, const json& v) { o.weights = v.is_null() ? "" : v.get<std::string>(); },
           [](const RunOptions& o) { return json(o.weights); }}),
      opt("head", S, "dense, lstm (the feature map read as a sequence) or lstm_pooled (the study's drawing: pooled features -> embedding -> LSTM -> dense)", HISTOCNN_FIELD(std::string, o.model.head()), "", {"dense", "lstm", "lstm_pooled"}),
      opt("lstm_units", I, "LSTM units of the lstm head", HISTOCNN_FIELD(int64_t, o.model.lstm_units())),
      opt("tf_padding", B, "TensorFlow SAME padding (for TF-trained weights)", HISTOCNN_FIELD(bool, o.model.tf_padding())),
      opt("freeze_backbone", B, "Train the whole backbone too (default: frozen)", HISTOCNN_FIELD(bool, o.model.freeze_backbone()), "--unfreeze"),
      opt("unfreeze_last", I, "Train the last N backbone layers, counted as Keras counts them (the study: 4)", HISTOCNN_FIELD(int64_t, o.model.unfreeze_last())),
      opt("train_bn", B, "Let BatchNorm layers of an unfrozen backbone train", HISTOCNN_FIELD(bool, o.model.train_bn())),
      opt("hidden1", I, "First dense layer of the head", HISTOCNN_FIELD(int64_t, o.model.hidden1())),
      opt("hidden2", I, "Second dense layer of the head", HISTOCNN_FIELD(int64_t, o.model.hidden2())),
      opt("dropout", F, "Dropout of the dense head", HISTOCNN_FIELD(double, o.model.dropout())),
      opt("batch_norm", B, "BatchNorm before the last dense layer", HISTOCNN_FIELD(bool, o.model.batch_norm())),
      opt("num_classes", I, "Classes (IDC-negative, IDC-positive: everything downstream is binary)", HISTOCNN_FIELD(int64_t, o.model.num_classes())),
      opt("image_size", I, "Patches are resized to this square size", HISTOCNN_FIELD(int, o.image_size)),
      opt("normalisation", S, "Input normalisation ('' = what the backbone's weights expect)", HISTOCNN_FIELD(std::string, o.normalisation), "", {"", "imagenet", "inception", "caffe"}),
      // trainer
      opt("epochs", I, "Epochs", HISTOCNN_FIELD(int, o.trainer.epochs)),
      opt("batch_size", I, "Batch size", HISTOCNN_FIELD(int64_t, o.trainer.batch_size)),
      opt("optimizer", S, "Optimiser", HISTOCNN_CHOICE(OptimizerKind, "optimizer", o.trainer.optimizer), "", choice_names<OptimizerKind>()),
      opt("learning_rate", F, "Learning rate", HISTOCNN_FIELD(double, o.trainer.learning_rate), "--learning-rate,--lr"),
      opt("backbone_lr_multiplier", F, "Learning rate of unfrozen backbone layers relative to the head's", HISTOCNN_FIELD(double, o.trainer.backbone_lr_multiplier)),
      opt("weight_decay", F, "L2 weight decay", HISTOCNN_FIELD(double, o.trainer.weight_decay)),
      opt("momentum", F, "Momentum (sgd)", HISTOCNN_FIELD(double, o.trainer.momentum)),
      opt("schedule", S, "Learning-rate schedule per epoch", HISTOCNN_CHOICE(Schedule, "schedule", o.trainer.schedule), "", choice_names<Schedule>()),
      opt("warmup_epochs", I, "Linear warm-up epochs (cosine schedule)", HISTOCNN_FIELD(int, o.trainer.warmup_epochs)),
      opt("reduce_lr_patience", I, "ReduceLROnPlateau on val_loss after N epochs without improvement (0: off)", HISTOCNN_FIELD(int, o.trainer.reduce_lr_patience)),
      opt("reduce_lr_factor", F, "ReduceLROnPlateau factor", HISTOCNN_FIELD(double, o.trainer.reduce_lr_factor)),
      opt("min_lr", F, "ReduceLROnPlateau lower bound", HISTOCNN_FIELD(double, o.trainer.min_lr)),
      opt("early_stopping_patience", I, "Stop after N epochs without a better val_auc (0: off)", HISTOCNN_FIELD(int, o.trainer.early_stopping_patience), "--early-stopping-patience,--early-stopping"),
      opt("class_weight", S, "Loss weights inverse to class counts", HISTOCNN_CHOICE(ClassWeight, "class_weight", o.trainer.class_weight), "", choice_names<ClassWeight>()),
      opt("sampler", S, "shuffle, or balanced (equal classes per epoch)", HISTOCNN_CHOICE(Sampler, "sampler", o.trainer.sampler), "", choice_names<Sampler>()),
      opt("per_patient", I, "At most N patches of each patient per epoch, drawn afresh each epoch (0: all)", HISTOCNN_FIELD(int64_t, o.trainer.per_patient)),
      // One seed for the split, the initialisation and the shuffling.
      opt("seed", I, "Random seed for split, initialisation and shuffling",
          {[](RunOptions& o, const json& v) { o.trainer.seed = o.split.seed = v.get<uint64_t>(); },
           [](const RunOptions& o) { return json(o.trainer.seed); }}),
      opt("workers", I, "Threads preparing batches", HISTOCNN_FIELD(int, o.trainer.workers)),
      opt("threads", I, "LibTorch threads (0: all cores)", HISTOCNN_FIELD(int, o.trainer.threads)),
      opt("device", S, "auto, cpu, cuda or cuda:N", HISTOCNN_FIELD(std::string, o.trainer.device)),
      opt("mixed_precision", S, "auto (bfloat16 autocast on CUDA), off, or bf16 (on any device)", HISTOCNN_CHOICE(MixedPrecision, "mixed_precision", o.trainer.mixed_precision), "", choice_names<MixedPrecision>()),
      opt("augment", S, "none, flips, study (Keras' rotation 20, zoom out 1.0-1.2, flips, nearest fill), study-zoom-in "
          "(the same zooming in, reflected border), histology (flips, quarter turns, H&E stain jitter 0.05; "
          "histology:0.1 for stronger jitter), hsv-light or hsv-strong (flips, quarter turns, hue, saturation, "
          "value and contrast jitter after Tellez et al. 2019; hsv:<r> for hue and saturation range r)",
          {[](RunOptions& o, const json& v) { o.trainer.augment = data::AugmentOptions::preset(v.get<std::string>()); },
           [](const RunOptions& o) { return json(o.trainer.augment.preset_name()); }}),
      opt("cache_features", B, "Recompute frozen backbone features every epoch", HISTOCNN_FIELD(bool, o.trainer.cache_features), "--no-feature-cache"),
      opt("restore_best", B, "Keep the last epoch's weights, not the best validation AUC's", HISTOCNN_FIELD(bool, o.trainer.restore_best), "--no-restore-best"),
      opt("ema_decay", F, "Validate and keep an exponential moving average of the weights with this decay, "
          "updated every step (e.g. 0.999; 0: off, the last step's weights)", HISTOCNN_FIELD(double, o.trainer.ema_decay), "--ema-decay,--ema"),
      opt("mixup", F, "Mixup: train on blends of two patches, lambda x1 + (1 - lambda) x2, against the same blend of "
          "their labels, lambda ~ Beta(a, a) per batch (e.g. 0.2; 0: off)", HISTOCNN_FIELD(double, o.trainer.mixup)),
      opt("checkpoint_dir", S, "Checkpoint folder (default: <run>/checkpoint)", HISTOCNN_FIELD(std::string, o.trainer.checkpoint_dir)),
      opt("progress", B, "No progress bars", HISTOCNN_FIELD(bool, o.trainer.progress), "--no-progress"),
      // data-parallel training (train/distributed.h)
      opt("nproc", I, "Train data-parallel in N local processes on loopback (batch_size stays the global batch); "
          "under torchrun or a PyTorchJob (WORLD_SIZE set) each process is one rank and this is ignored", HISTOCNN_FIELD(int, o.trainer.nproc)),
      opt("dist_backend", S, "Collectives of a data-parallel job: auto (NCCL for CUDA devices when built with it, else Gloo)",
          HISTOCNN_FIELD(std::string, o.trainer.dist_backend), "", {"auto", "gloo", "nccl"}),
      opt("dist_timeout", F, "Seconds a rank of a data-parallel job waits for the others (to start, in each step of training)",
          HISTOCNN_FIELD(double, o.trainer.dist_timeout)),
      // evaluation and export
      opt("balance_per_class", I, "Down-sample each class to N patches (the study used 2500; 0: keep all)", HISTOCNN_FIELD(int64_t, o.balance_per_class), "--balance-per-class,--balance"),
      opt("threshold", F, "Decision threshold (with --threshold-method fixed)", HISTOCNN_FIELD(double, o.threshold)),
      opt("threshold_method", S, "fixed, or chosen on the validation split: youden or sensitivity", HISTOCNN_FIELD(std::string, o.threshold_method), "", {"fixed", "youden", "sensitivity"}),
      opt("target_sensitivity", F, "For --threshold-method sensitivity", HISTOCNN_FIELD(double, o.target_sensitivity)),
      opt("stain_shift", F, "Also evaluate the test split restained per patient with this H&E jitter sigma (0 = off)", HISTOCNN_FIELD(double, o.stain_shift)),
      opt("stain_normalise", S, "Stain normalisation saved with the model and applied wherever it predicts: none, "
          "reinhard (L*a*b* mean/std), macenko (stain vectors) or white-balance (each slide's glass made the "
          "reference's; use with --stain-fit slide), fitted to --stain-reference or the training split",
          HISTOCNN_FIELD(std::string, o.stain_normalise), "", {"none", "reinhard", "macenko", "white-balance"}),
      opt("stain_fit", S, "Stain statistics of each patch (patch) or of all patches of its slide, patient or request (slide)",
          HISTOCNN_FIELD(std::string, o.stain_fit), "", {"patch", "slide"}),
      opt("stain_reference", P, "Image whose stain is the normalisation target (default: patches of the training split)",
          path_field([](auto& o) -> auto& { return o.stain_reference; })),
      opt("stain_white_balance", B, "With macenko: estimate each slide's glass (1st percentile of optical density) and "
          "subtract it before fitting the stains, so a tint the whole slide shares cancels (use with --stain-fit slide)",
          HISTOCNN_FIELD(bool, o.stain_white_balance)),
      opt("colour", S, "What of the colour the model sees, saved with the model: rgb, grey (the grey level) or "
          "haematoxylin (colour deconvolution's haematoxylin channel: the nuclei, without eosin)",
          HISTOCNN_FIELD(std::string, o.colour), "", {"rgb", "grey", "haematoxylin"}),
      opt("tensorboard", B, "Do not write TensorBoard event files", HISTOCNN_FIELD(bool, o.tensorboard), "--no-tensorboard"),
      opt("wait_for_lock", B, "When another process is writing the same run folder, wait for it instead of stopping", HISTOCNN_FIELD(bool, o.wait_for_lock), "--wait"),
      // split
      opt("train_fraction", F, "Fraction of patches for training", HISTOCNN_FIELD(double, o.split.train)),
      opt("val_fraction", F, "Fraction for validation", HISTOCNN_FIELD(double, o.split.val)),
      opt("test_fraction", F, "Fraction for testing", HISTOCNN_FIELD(double, o.split.test)),
      opt("split_by_patch", B, "Split patches instead of patients (leaks; not recommended)", HISTOCNN_FIELD(bool, o.split.by_patch)),
  };
  return list;
}

#undef HISTOCNN_FIELD
#undef HISTOCNN_CHOICE

const Option& find_option(const std::string& name) {
  for (const auto& o : options_list()) {
    if (o.spec.name == name) return o;
  }
  std::string known;
  for (const auto& n : run_option_names()) known += (known.empty() ? "" : ", ") + n;
  HISTOCNN_FAIL("unknown option '{}'; known options: {}", name, known);
}

}  // namespace

void set_run_option(RunOptions& options, const std::string& name, const std::string& json_value) {
  const Option& o = find_option(name);
  json value;
  try {
    value = json::parse(json_value);
  } catch (const std::exception&) {
    HISTOCNN_FAIL("option '{}': '{}' is not a JSON value", name, json_value);
  }
  if (!o.spec.choices.empty()) {
    HISTOCNN_CHECK(value.is_string(), "option '{}' got {}; it takes a string", name, value.dump());
    check_run_option_choice(name, value.get<std::string>());
  }
  try {
    o.entry.set(options, value);
  } catch (const json::exception&) {
    HISTOCNN_FAIL("option '{}' got {} of the wrong type", name, value.dump());
  }
}

void check_run_option_choice(const std::string& name, const std::string& value) {
  const auto& choices = find_option(name).spec.choices;
  if (choices.empty() || std::find(choices.begin(), choices.end(), value) != choices.end()) return;
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + (c.empty() ? "''" : c);
  HISTOCNN_FAIL("option '{}' got \"{}\"; choose one of: {}", name, value, list);
}

std::string get_run_option(const RunOptions& options, const std::string& name) {
  return find_option(name).entry.get(options).dump();
}

std::string run_option_values(const RunOptions& options) {
  json j = json::object();
  for (const auto& o : options_list()) j[o.spec.name] = o.entry.get(options);
  return j.dump();
}

std::vector<std::string> run_option_names() {
  std::vector<std::string> names;
  for (const auto& o : options_list()) names.push_back(o.spec.name);
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<RunOptionSpec> run_option_specs() {
  std::vector<RunOptionSpec> specs;
  for (const auto& o : options_list()) specs.push_back(o.spec);
  return specs;
}

std::vector<std::string> run_option_arguments(const RunOptions& options) {
  const RunOptions defaults;
  std::vector<std::string> args;
  for (const auto& o : options_list()) {
    const auto& spec = o.spec;
    if (spec.name == "progress") continue;  // the environment's (HISTOCNN_PROGRESS)
    const json value = o.entry.get(options);
    if (value == o.entry.get(defaults)) continue;
    const std::string flag = spec.flag.substr(0, spec.flag.find(','));
    args.push_back(flag);
    if (spec.type == RunOptionType::boolean) continue;  // the flag flips the default
    if (value.is_array()) {
      for (const auto& item : value) args.push_back(item.is_string() ? item.get<std::string>() : item.dump());
    } else {
      args.push_back(value.is_string() ? value.get<std::string>() : value.dump());
    }
  }
  return args;
}

std::string run_option_json_value(const RunOptionSpec& spec, const std::string& text) {
  switch (spec.type) {
    case RunOptionType::boolean: {
      if (text == "true" || text == "1") return "true";
      if (text == "false" || text == "0") return "false";
      HISTOCNN_FAIL("option '{}' takes true or false, got '{}'", spec.name, text);
    }
    case RunOptionType::integer:
    case RunOptionType::number: {
      json v;
      try {
        v = json::parse(text);
      } catch (const std::exception&) {
        HISTOCNN_FAIL("option '{}' takes a number, got '{}'", spec.name, text);
      }
      HISTOCNN_CHECK(v.is_number() && (spec.type == RunOptionType::number || v.is_number_integer()),
                     "option '{}' takes {}, got '{}'", spec.name,
                     spec.type == RunOptionType::integer ? "a whole number" : "a number", text);
      return v.dump();
    }
    case RunOptionType::string:
    case RunOptionType::path:
    case RunOptionType::paths:  // one of the list
      return json(text).dump();
  }
  return json(text).dump();
}

std::vector<std::pair<std::string, std::string>> run_preset(const std::string& name) {
  if (name == "study") {
    return {{"backbone", "\"vgg16\""},        {"weights", "\"imagenet\""},   {"freeze_backbone", "true"},
            {"image_size", "50"},              {"head", "\"dense\""},          {"dropout", "0.2"},
            {"batch_norm", "false"},           {"balance_per_class", "2500"}, {"optimizer", "\"rmsprop\""},
            {"learning_rate", "0.001"},        {"batch_size", "32"},          {"epochs", "10"},
            {"reduce_lr_patience", "20"},      {"reduce_lr_factor", "0.2"},   {"min_lr", "0.0001"},
            {"augment", "\"none\""},            {"threshold_method", "\"fixed\""}};
  }
  if (name == "robust-cnn") {
    return {{"backbone", "\"simple_cnn\""}, {"weights", "\"\""},           {"freeze_backbone", "false"},
            {"unfreeze_last", "0"},           {"image_size", "50"},           {"normalisation", "\"\""},
            {"head", "\"dense\""},            {"dropout", "0.2"},             {"batch_norm", "false"},
            {"balance_per_class", "0"},       {"optimizer", "\"adam\""},      {"learning_rate", "0.001"},
            {"batch_size", "32"},             {"epochs", "8"},                {"schedule", "\"constant\""},
            {"reduce_lr_patience", "0"},      {"augment", "\"histology:0.1\""}, {"stain_normalise", "\"none\""},
            {"restore_best", "true"},         {"threshold_method", "\"youden\""},
            // At most 250 patches of a patient per epoch, drawn afresh: the complete idc_real
            // slides (up to 1,600 patches) no longer outweigh the sampled patients, and 8 such
            // epochs cost what 5 full ones did.
            {"per_patient", "250"},
            // Of the patients not tested, 90 % train and 10 % validate (cross-validation's inner
            // split is train : val): more training patients paid more than more validation ones.
            {"train_fraction", "0.72"},       {"val_fraction", "0.08"},       {"test_fraction", "0.2"}};
  }
  HISTOCNN_FAIL("unknown recipe '{}'; known recipes: {}", name, fmt::join(run_preset_names(), ", "));
}

std::vector<std::string> run_preset_names() { return {"study", "robust-cnn"}; }

void apply_run_preset(RunOptions& options, const std::string& name) {
  for (const auto& [option, value] : run_preset(name)) set_run_option(options, option, value);
}

}  // namespace histocnn::train
