// The `histocnn` command-line interface: parses options and calls the library, nothing more.
// Shared by the `histocnn` executable and `python -m histocnn`.
#include "histocnn/core/device.h"
#include "histocnn/core/error.h"
#include "histocnn/core/version.h"
#include "histocnn/cli.h"
#include "commands.h"
#include "histocnn/core/log.h"
#include "histocnn/core/progress.h"
#include "histocnn/data/augment.h"
#include "histocnn/data/balance.h"
#include "histocnn/data/csv.h"
#include "histocnn/data/split.h"
#include "histocnn/data/synthetic.h"
#include "histocnn/inference/evaluate.h"
#include "histocnn/inference/explain.h"
#include "histocnn/inference/predictor.h"
#include "histocnn/inference/slide_maps.h"
#include "histocnn/inference/context_model.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/image.h"
#include "histocnn/io/npy.h"
#include "histocnn/io/safetensors.h"
#include "histocnn/models/backbone.h"
#include "histocnn/models/classifier.h"
#include "histocnn/models/complexity.h"
#include "histocnn/models/summary.h"
#include "histocnn/models/weights.h"
#include "histocnn/train/compare.h"
#include "histocnn/train/cv.h"
#include "histocnn/train/demo.h"
#include "histocnn/train/figures.h"
#include "histocnn/serve/server.h"
#include "histocnn/serve/versions.h"
#include "histocnn/train/options.h"
#include "histocnn/train/distributed.h"
#include "histocnn/train/run.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>

namespace {

using namespace histocnn;
namespace fs = std::filesystem;

void add_data_commands(CLI::App& app) {
  auto* data_cmd = app.add_subcommand("data", "Scan, split and synthesise patch folders");
  data_cmd->require_subcommand(1);

  struct Scan { fs::path dir, out; };
  auto sc = std::make_shared<Scan>();
  auto* scan = data_cmd->add_subcommand("scan", "Scan a folder in the Kaggle layout into a manifest CSV");
  scan->add_option("folder", sc->dir, "Folder of <patient>/<class>/<patient>_idx5_x<X>_y<Y>_class<C>.png")->required();
  scan->add_option("-o,--output", sc->out, "Manifest CSV to write (default: <folder>/manifest.csv)");
  scan->callback([sc] {
    auto report = data::scan_directory(sc->dir);
    const auto out = sc->out.empty() ? sc->dir / "manifest.csv" : sc->out;
    report.manifest.save_csv(out);
    const auto counts = report.manifest.class_counts();
    std::printf("%zu patches, %zu patients (%lld negative, %lld positive), %zu duplicate files dropped, %zu files "
                "rejected -> %s\n",
                report.manifest.size(), report.manifest.patients().size(), static_cast<long long>(counts[0]),
                static_cast<long long>(counts[1]), report.duplicates.size(), report.rejected.size(),
                out.string().c_str());
  });

  struct Split { fs::path in, out; data::SplitOptions opt; int64_t balance = 0; };
  auto sp = std::make_shared<Split>();
  auto& split_in = sp->in;
  auto& split_out = sp->out;
  auto& split_opt = sp->opt;
  auto& split_balance = sp->balance;
  auto* split = data_cmd->add_subcommand("split", "Split a manifest (or folder) by patient into train/val/test");
  split->add_option("input", split_in, "Manifest CSV or folder of patches")->required()->check(CLI::ExistingPath);
  split->add_option("-o,--output", split_out,
                    "Manifest CSV with a split column (default: split.csv beside an input manifest, or in the "
                    "working folder for a folder of patches, which is left as it is); the class distribution is "
                    "drawn beside it, to <name>_distribution.png");
  split->add_option("--train", split_opt.train, "Fraction of patches for training")->capture_default_str();
  split->add_option("--val", split_opt.val, "Fraction for validation")->capture_default_str();
  split->add_option("--test", split_opt.test, "Fraction for testing")->capture_default_str();
  split->add_option("--seed", split_opt.seed, "Random seed")->capture_default_str();
  split->add_flag("--by-patch", split_opt.by_patch, "Split patches, not patients (leaks patients between splits)");
  split->add_option("--balance", split_balance, "Down-sample each class to N patches first (the study used 2500)");
  split->callback([sp] {
    const auto& split_in = sp->in;
    const auto& split_out = sp->out;
    const auto& split_opt = sp->opt;
    const auto split_balance = sp->balance;
    const bool is_dir = fs::is_directory(split_in);
    const auto input = train::load_patch_manifest(is_dir ? split_in : fs::path(), is_dir ? fs::path() : split_in);
    auto m = split_balance > 0 ? data::balance_classes(input, split_balance, split_opt.seed) : input;
    m = data::split_manifest(m, split_opt);
    // A folder of patches may be shared or read-only: nothing is written into it unless asked.
    const auto out = !split_out.empty() ? split_out : is_dir ? fs::path("split.csv") : split_in.parent_path() / "split.csv";
    m.save_csv(out);
    std::cout << data::format_split_summary(data::summarize_splits(m)) << "-> " << out.string() << "\n";
    const auto figure = out.parent_path() / (out.stem().string() + "_distribution.png");
    std::cout << "class distribution (IDC-negative/IDC-positive):";
    for (const auto& g : train::plot_class_distribution(figure, input, m, split_balance > 0)) {
      std::cout << " " << g.group << " " << g.negatives << "/" << g.positives << ";";
    }
    std::cout << " -> " << figure.string() << "\n";
  });

  struct Synth { fs::path out; data::SyntheticOptions opt; };
  auto sy = std::make_shared<Synth>();
  auto& synth_out = sy->out;
  auto& synth_opt = sy->opt;
  auto* synth = data_cmd->add_subcommand("synth", "Write synthetic H&E-like patches in the Kaggle layout");
  synth->add_option("folder", synth_out, "Empty or new folder to write into")->required();
  synth->add_option("--patients", synth_opt.patients, "Number of patients")->capture_default_str();
  synth->add_option("--per-patient", synth_opt.patches_per_patient, "Patches per patient")->capture_default_str();
  synth->add_option("--positive-fraction", synth_opt.positive_fraction, "Fraction of IDC-positive patches")
      ->capture_default_str();
  synth->add_option("--difficulty", synth_opt.difficulty, "0 (easy) to 1 (hard): overlap of the classes")
      ->capture_default_str();
  synth->add_option("--seed", synth_opt.seed, "Random seed")->capture_default_str();
  synth->callback([sy] {
    const auto& synth_out = sy->out;
    auto s = data::generate_synthetic(synth_out, sy->opt);
    std::printf("wrote %lld patches (%lld positive) for %d patients to %s\n", static_cast<long long>(s.written),
                static_cast<long long>(s.positives), s.patients, synth_out.string().c_str());
  });
}

// Every run option, from the one table in train/options.cpp: flags, help, defaults and choices.
void add_run_options(CLI::App* cmd, const std::shared_ptr<train::RunOptions>& o) {
  const train::RunOptions defaults;
  // Defined first, so CLI11 applies it before the options below, which override it.
  cmd->add_option_function<std::string>(
         "--recipe,--preset", [o](const std::string& name) { train::apply_run_preset(*o, name); },
         "A named recipe, applied before the other options (which override it). robust-cnn: the small CNN from "
         "scratch at 50 px with H&E stain jitter 0.1, Adam 1e-3, 8 epochs of at most 250 patches per patient, patients split "
         "72/8/20, Youden threshold (chosen by "
         "cross-validation, docs/results.md); study: the published recipe (VGG16 ImageNet frozen, 50 px, dense head, "
         "dropout 0.2, 2500 per class, RMSprop 1e-3, batch 32, 10 epochs, ReduceLROnPlateau 20/0.2/1e-4)")
      ->check(CLI::IsMember(train::run_preset_names()));
  for (const auto& spec : train::run_option_specs()) {
    if (spec.name == "progress") continue;  // --no-progress is the environment's (HISTOCNN_PROGRESS=0)
    std::string help = spec.help;
    if (!spec.choices.empty()) {
      std::string list;
      for (const auto& c : spec.choices) list += (list.empty() ? "" : ", ") + (c.empty() ? std::string("''") : c);
      help += " (" + list + ")";
    }
    const std::string value = train::get_run_option(defaults, spec.name);
    if (spec.type == train::RunOptionType::boolean) {
      const std::string flipped = value == "true" ? "false" : "true";
      cmd->add_flag_callback(spec.flag, [o, spec, flipped] { train::set_run_option(*o, spec.name, flipped); }, help);
      continue;
    }
    if (spec.type == train::RunOptionType::paths) {
      auto* opt = cmd->add_option_function<std::vector<std::string>>(
          spec.flag, [o, spec](const std::vector<std::string>& v) { train::set_run_option(*o, spec.name, nlohmann::json(v).dump()); },
          help);
      opt->type_name("PATH")->expected(1, -1);
      continue;
    }
    auto* opt = cmd->add_option_function<std::string>(
        spec.flag, [o, spec](const std::string& v) { train::set_run_option(*o, spec.name, train::run_option_json_value(spec, v)); },
        help);
    static const char* const type_names[] = {"BOOLEAN", "INT", "FLOAT", "TEXT", "PATH", "PATH"};
    opt->type_name(type_names[static_cast<int>(spec.type)]);
    const std::string shown = nlohmann::json::parse(value).is_string() ? nlohmann::json::parse(value).get<std::string>() : value;
    if (!shown.empty()) opt->default_str(shown);
  }
}

void add_train_command(CLI::App& app) {
  auto o = std::make_shared<train::RunOptions>();
  auto push = std::make_shared<fs::path>();
  auto* cmd = app.add_subcommand("train", "Train a classifier and write a run folder (rerun to resume)");
  add_run_options(cmd, o);
  cmd->add_option("--push", *push, "Then copy the model into the next version folder of this serving base path");
  cmd->callback([o, push] {
    auto r = train::run_training(*o);
    if (!train::prints_run_report()) return;  // one process of a data-parallel job reports
    std::cout << r.test_report;
    std::printf("run folder: %s\nmodel: %s\n", r.run_dir.string().c_str(), r.model_dir.string().c_str());
    if (!push->empty() && !r.history.interrupted) {
      const auto v = serve::push_bundle(r.model_dir, *push);
      std::printf("pushed as version %lld of %s\n", static_cast<long long>(v), push->string().c_str());
    }
  });
}

void add_cv_command(CLI::App& app) {
  auto cv = std::make_shared<train::CrossValidationOptions>();
  auto* cmd = app.add_subcommand(
      "cv", "Leave-patients-out cross-validation: each fold trains on the other patients and tests on its own, as "
            "stained and restained; prints mean and spread (rerun to resume)");
  add_run_options(cmd, std::shared_ptr<train::RunOptions>(cv, &cv->run));
  cmd->add_option("--folds", cv->folds, "Number of folds (patients dealt to folds of about equal size)")
      ->capture_default_str();
  cmd->add_option("--fold-seed", cv->fold_seed, "Seed of the patient-to-fold assignment")->capture_default_str();
  cmd->add_option("--fold", cv->only_folds, "Run only these folds (1-based; repeat or list)");
  cmd->add_option("--restain", cv->stain_shifts, "Restaining sigmas the test patients are also scored at")
      ->capture_default_str();
  cmd->add_flag("--tta", cv->tta, "Test-time augmentation in the test evaluations");
  cmd->add_option("--context", cv->context_radius,
                  "Also score the test patients, as stained and restained, with each P averaged over their patches "
                  "within this many places on the slide, apart from the patch alone (0: not)")
      ->capture_default_str();
  cmd->add_flag("--rescore", cv->rescore,
                "Score folds finished before again from their saved models, with this run's --restain, --tta and "
                "--context (nothing retrains; without it their scores are read back as written)");
  cmd->add_option("--cv-name", cv->name, "Folder under --output-dir for the folds and the summary")->capture_default_str();
  cmd->callback([cv] {
    const auto r = train::cross_validate(*cv);
    std::cout << r.summary << "-> " << (r.output_dir / "cv.md").string() << "\n";
  });
}

void add_evaluate_command(CLI::App& app) {
  struct Evaluate {
    fs::path model_dir, manifest, output, maps;
    std::string context_model;
    std::vector<fs::path> data_dirs;
    std::string split = "test", stain_fit;
    std::optional<double> threshold;
    inference::EvaluateOptions options;
  };
  auto e = std::make_shared<Evaluate>();
  auto* cmd = app.add_subcommand("evaluate", "Evaluate a saved model on labelled patches and print the report");
  cmd->add_option("--model", e->model_dir, "Model folder (a run's model/ or model/<version>/)")->required();
  cmd->add_option("--data", e->data_dirs, "Folders of patches in the Kaggle layout (several are joined)");
  cmd->add_option("--manifest", e->manifest, "Manifest CSV, e.g. a run's manifest.csv (it records the split)");
  cmd->add_option("--split", e->split, "train, val or test (needs a manifest with a split column), or all")
      ->capture_default_str()->check(CLI::IsMember({"train", "val", "test", "all"}));
  cmd->add_option("--threshold", e->threshold, "Decision threshold (default: the one saved with the model)");
  cmd->add_option("--device", e->options.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--workers", e->options.workers, "Threads preparing batches")->capture_default_str();
  cmd->add_option("--stain-shift", e->options.stain_shift,
                  "Restain each patient one way (H&E jitter sigma, e.g. 0.1) before evaluating: a robustness check")
      ->capture_default_str();
  cmd->add_option("--seed", e->options.seed, "Seed of the restaining (a run's report used its training seed)")
      ->capture_default_str();
  cmd->add_option("-o,--output", e->output, "Also write the metrics as JSON to this file");
  cmd->add_flag("--tta", e->options.tta, "Test-time augmentation: the mean over the 8 flips and quarter turns");
  auto* maps = cmd->add_option("--maps", e->maps,
                               "Also draw the patients on their slides into this folder (as histocnn maps)");
  cmd->add_option("--context-model", e->context_model,
                  "With --maps: the learned context head (default: context_model.json of the model's run, when "
                  "there is one; none: without it)")
      ->needs(maps);
  cmd->add_option("--stain-fit", e->stain_fit,
                  "For a model that normalises stains: fit the source statistics per patch or per slide (patient) "
                  "instead of as the model records")
      ->check(CLI::IsMember({"patch", "slide"}));
  cmd->callback([e] {
    auto m = train::load_patch_manifest(e->data_dirs, e->manifest).select_split(e->split);
    e->options.threshold = e->threshold;
    if (!e->stain_fit.empty()) e->options.stain_fit = data::parse_stain_fit(e->stain_fit);
    auto r = inference::evaluate_bundle(e->model_dir, m, e->options);
    std::cout << r.report;
    if (!e->output.empty()) io::write_file_atomic(e->output, inference::to_json(r) + "\n");
    if (!e->maps.empty()) {
      const auto context = inference::context_model_for(e->model_dir, e->context_model);
      std::cout << inference::write_slide_maps(m, r.predictions.p_positive, r.threshold, e->maps, 1, 0, 8,
                                               context ? &*context : nullptr)
                       .text;
    }
  });
}

void add_explain_command(CLI::App& app) {
  struct Explain {
    fs::path model_dir, out = "explanations";
    std::vector<std::string> inputs;
    std::string method = "gradcam", device = "auto", layer;
    int64_t target_class = 1;
    bool list_layers = false;
  };
  auto e = std::make_shared<Explain>();
  auto* cmd = app.add_subcommand("explain", "Grad-CAM maps of what a saved model looks at: overlays and raw maps");
  cmd->add_option("--model", e->model_dir, "Model folder (a run's model/, a serving base path, or a version folder)")
      ->required();
  cmd->add_option("images", e->inputs, "Image files, folders (searched recursively) or globs");
  cmd->add_option("--out", e->out, "Folder for <name>_cam.png (overlay with colour bar) and <name>_cam.npy (map)")
      ->capture_default_str();
  cmd->add_option("--method", e->method, "gradcam or gradcam++")->capture_default_str();
  cmd->add_option("--class", e->target_class, "The class whose evidence is mapped (1: IDC-positive)")
      ->capture_default_str();
  cmd->add_option("--layer", e->layer, "The backbone layer mapped, by module path (see --list-layers); default: "
                                       "its last feature map");
  cmd->add_flag("--list-layers", e->list_layers, "List the layers that can be mapped, with their output sizes, and exit");
  cmd->add_option("--device", e->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->callback([e] {
    configure_threads();
    inference::ExplainOptions options;
    options.method = inference::parse_cam_method(e->method);
    options.target_class = e->target_class;
    options.layer = e->layer;
    inference::Predictor predictor(e->model_dir, e->device);
    if (e->list_layers) {
      const auto layers = inference::explain_layers(predictor);
      const auto fallback = predictor.model()->backbone()->feature_layer();
      size_t width = 5;
      for (const auto& l : layers) width = std::max(width, l.name.size());
      std::printf("%-*s  output at %d px (channels x height x width)\n", static_cast<int>(width), "layer",
                  predictor.preprocessing().image_size);
      for (const auto& l : layers) {
        std::printf("%-*s  %lld x %lld x %lld%s\n", static_cast<int>(width), l.name.c_str(),
                    static_cast<long long>(l.channels), static_cast<long long>(l.height),
                    static_cast<long long>(l.width), l.name == fallback ? "  (default)" : "");
      }
      return;
    }
    HISTOCNN_CHECK(!e->inputs.empty(), "explain needs image files, folders or globs (or --list-layers)");
    if (!options.layer.empty()) {  // a bad layer name is refused before any file is read
      const int64_t size = predictor.preprocessing().image_size;
      inference::class_activation_maps(predictor.model(), torch::zeros({1, 3, size, size}), options);
    }
    const auto files = io::expand_image_paths(e->inputs);
    ProgressBar bar(static_cast<int64_t>(files.size()), "explain", progress_enabled_by_default(), "img");
    for (const auto& file : files) {
      const cv::Mat rgb = io::read_image_rgb(file);
      const auto map = inference::explain(predictor, {rgb}, options)[0];
      const auto p = predictor.predict({rgb})[0];
      const auto stem = file.stem().string();
      // Under the map, the patch as the model saw it: padded with white when small.
      io::write_png(e->out / (stem + "_cam.png"), inference::cam_overlay(predictor.preprocessing().pad(rgb), map));
      io::write_npy(e->out / (stem + "_cam.npy"), map);
      std::printf("%s,%.6f,%s\n", file.string().c_str(), p, (e->out / (stem + "_cam.png")).string().c_str());
      bar.update(1);
    }
    bar.finish();
  });
}

void add_maps_command(CLI::App& app) {
  struct Maps {
    fs::path model_dir, manifest, out = "maps";
    std::vector<fs::path> data_dirs;
    std::string split = "all", device = "auto", context_model;
    int smooth = inference::kDefaultSmoothRadius, patients = 0, tile = 8;
  };
  auto mp = std::make_shared<Maps>();
  auto* cmd = app.add_subcommand("maps", "Slide maps from patch coordinates: tissue, true IDC, P(IDC) and errors per "
                                         "patient, tumour burden, and metrics with spatial context");
  cmd->add_option("--model", mp->model_dir, "Model folder (a run's model/, a serving base path, or a version folder)")
      ->required();
  cmd->add_option("--data", mp->data_dirs, "Folders of patches in the Kaggle layout (several are joined)");
  cmd->add_option("--manifest", mp->manifest, "Manifest CSV, e.g. a run's manifest.csv (it records the split)");
  cmd->add_option("--split", mp->split, "train, val or test (needs a manifest with a split column), or all")
      ->capture_default_str()->check(CLI::IsMember({"train", "val", "test", "all"}));
  cmd->add_option("--out", mp->out, "Folder for <patient>.png and burden.csv")->capture_default_str();
  cmd->add_option("--smooth", mp->smooth, "Context: average P over the (2r+1)^2 neighbourhood (0: off)")
      ->capture_default_str();
  cmd->add_option("--context-model", mp->context_model,
                  "Context by the learned head over the neighbourhood, from this context_model.json (default: the "
                  "one of the model's run, <run>/context_model.json, when there is one; none: without it)");
  cmd->add_option("--patients", mp->patients, "Draw at most this many patients (0: all)")->capture_default_str();
  cmd->add_option("--tile", mp->tile, "Pixels per patch in the drawings")->capture_default_str();
  cmd->add_option("--device", mp->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->callback([mp] {
    // Before the model predicts anything: a radius out of range fails now, not after the prediction.
    inference::check_smooth_radius(mp->smooth, "--smooth");
    configure_threads();
    const inference::Predictor predictor(mp->model_dir, mp->device);
    const auto context = inference::context_model_for(mp->model_dir, mp->context_model);
    const auto m = train::load_patch_manifest(mp->data_dirs, mp->manifest).select_split(mp->split);
    inference::PredictOptions po;
    po.progress = progress_enabled_by_default();
    const auto pred = predictor.predict_dataset(data::PatchDataset(m, predictor.preprocessing()), po);
    const auto report = inference::write_slide_maps(m, pred.p_positive, predictor.threshold(), mp->out, mp->smooth,
                                                    mp->patients, mp->tile, context ? &*context : nullptr);
    std::cout << report.text;
    std::printf("maps of %zu patients and burden.csv in %s (threshold %.3f)\n", report.images.size(),
                mp->out.string().c_str(), predictor.threshold());
  });
}

void add_predict_command(CLI::App& app) {
  struct Predict {
    fs::path model_dir, output;
    std::vector<std::string> inputs;
    std::string format = "csv", device = "auto";
    bool skip_unreadable = false, tta = false;
    int64_t batch_size = 64;
  };
  auto p = std::make_shared<Predict>();
  auto* cmd = app.add_subcommand("predict", "Classify unlabelled images (files, folders, globs) with a saved model");
  cmd->add_option("--model", p->model_dir, "Model folder (a run's model/, a serving base path, or a version folder)")
      ->required();
  cmd->add_option("images", p->inputs, "Image files (PNG, JPEG, TIFF, BMP), folders (searched recursively) or globs")
      ->required();
  cmd->add_option("--format", p->format, "csv, or jsonl (one JSON object per line)")
      ->capture_default_str()->check(CLI::IsMember({"csv", "jsonl"}));
  cmd->add_option("-o,--output", p->output, "Write here instead of standard output (atomically)");
  cmd->add_flag("--skip-unreadable", p->skip_unreadable, "List unreadable images at the end instead of stopping");
  cmd->add_option("--batch-size", p->batch_size, "Images per forward pass")->capture_default_str();
  cmd->add_option("--device", p->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_flag("--tta", p->tta, "Test-time augmentation: the mean over the 8 flips and quarter turns");
  cmd->callback([p] {
    configure_threads();
    inference::Predictor predictor(p->model_dir, p->device);
    predictor.set_tta(p->tta);
    const auto version = predictor.directory().filename().string();
    const auto files = io::expand_image_paths(p->inputs);
    const auto results = inference::predict_image_files(predictor, files, p->skip_unreadable, p->batch_size,
                                                        progress_enabled_by_default());
    std::string text = p->format == "csv" ? "path,p_positive,class,version\n" : "";
    std::vector<const inference::FilePrediction*> unreadable;
    for (const auto& r : results) {
      if (!r.error.empty()) {
        unreadable.push_back(&r);
        continue;
      }
      const auto& cls = predictor.class_names()[r.p_positive >= predictor.threshold() ? 1 : 0];
      if (p->format == "csv") {
        text += fmt::format("{},{:.6f},{},{}\n", data::csv_field(r.path.string()), r.p_positive, cls, version);
      } else {
        text += nlohmann::json{{"path", r.path.string()}, {"p_positive", r.p_positive}, {"class", cls},
                               {"threshold", predictor.threshold()}, {"version", version}}
                    .dump() + "\n";
      }
    }
    if (p->output.empty()) {
      std::cout << text << std::flush;
    } else {
      io::write_file_atomic(p->output, text);
    }
    if (!unreadable.empty()) {
      std::fprintf(stderr, "histocnn predict: %zu unreadable image(s) skipped:\n", unreadable.size());
      for (const auto* r : unreadable) std::fprintf(stderr, "  %s\n", r->error.c_str());
    }
  });
}

// The running server of `histocnn serve`, for the signal handlers.
std::atomic<serve::Server*> g_server{nullptr};

extern "C" void on_stop_signal(int) {
  if (auto* s = g_server.load()) s->request_stop();
}
extern "C" void on_reload_signal(int) {
  if (auto* s = g_server.load()) s->request_reload();
}

void add_serve_command(CLI::App& app) {
  struct Serve {
    serve::ServerOptions options;
    serve::BatchingOptions batching;
    bool enable_batching = false, no_access_log = false;
    fs::path api_key_file;
  };
  auto st = std::make_shared<Serve>();
  auto& o = st->options;
  auto* cmd = app.add_subcommand("serve", "Serve models over TensorFlow Serving's REST API, with an upload page at /");
  cmd->add_option("--model-base-path", o.model_base_path, "Folder of numeric version folders (1/, 2/, ...) of one model");
  cmd->add_option("--model-name", o.model_name, "The model's name in URLs: /v1/models/<name>")->capture_default_str();
  cmd->add_option("--model-config-file", o.model_config_file,
                  "Several models: TF Serving's ModelServerConfig as JSON (docs/serving.md); re-read when it changes");
  cmd->add_option("--host", o.host, "Address to listen on (0.0.0.0: every interface)")->capture_default_str();
  cmd->add_option("--port,--rest-api-port", o.port, "Port (0: any free port)")->capture_default_str();
  cmd->add_option("--file-system-poll-wait-seconds", o.file_system_poll_wait_seconds,
                  "How often base paths and the config are scanned for changes")->capture_default_str();
  cmd->add_flag("--enable-batching", st->enable_batching, "Queue requests from all clients into micro-batches");
  cmd->add_option("--max-batch-size", st->batching.max_batch_size, "Patches per batch")->capture_default_str();
  cmd->add_option("--batch-timeout-micros", st->batching.batch_timeout_micros,
                  "How long a batch waits to fill")->capture_default_str();
  cmd->add_option("--num-batch-threads", st->batching.num_batch_threads, "Batches run at once")->capture_default_str();
  cmd->add_option("--max-enqueued-batches", st->batching.max_enqueued_batches,
                  "Queue capacity in batches; beyond it requests get 503 at once")->capture_default_str();
  cmd->add_option("--max-body-bytes", o.limits.max_body_bytes, "Largest request body (413 above)")->capture_default_str();
  cmd->add_option("--max-instances", o.limits.max_instances, "Most images per request")->capture_default_str();
  cmd->add_option("--max-image-pixels", o.limits.max_image_pixels,
                  "Largest image (width x height, read from its header before decoding)")->capture_default_str();
  cmd->add_option("--request-timeout", o.request_timeout_seconds, "Seconds to read or write a request")
      ->capture_default_str();
  cmd->add_option("--api-key-file", st->api_key_file, "File holding a key that /v1/ requests must send as a bearer token")
      ->check(CLI::ExistingFile);
  cmd->add_option("--http-threads", o.http_threads, "Connections served at once")->capture_default_str();
  cmd->add_option("--device", o.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_flag("--no-access-log", st->no_access_log, "No line per request on standard error");
  cmd->callback([st] {
    auto options = st->options;
    if (st->enable_batching) options.batching = st->batching;
    options.access_log = !st->no_access_log;
    if (!st->api_key_file.empty()) {
      options.api_key = io::read_file(st->api_key_file);
      while (!options.api_key.empty() && std::isspace(static_cast<unsigned char>(options.api_key.back()))) {
        options.api_key.pop_back();
      }
      HISTOCNN_CHECK(!options.api_key.empty(), "the API key file '{}' is empty", st->api_key_file.string());
    }
    serve::Server server(options);
    server.start();
    g_server = &server;
    std::signal(SIGTERM, on_stop_signal);
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGHUP, on_reload_signal);
    std::printf("histocnn serve: listening on %s\n", server.url().c_str());
    std::fflush(stdout);
    server.wait();
    g_server = nullptr;
    std::signal(SIGTERM, SIG_DFL);
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGHUP, SIG_DFL);
    std::printf("histocnn serve: stopped\n");
  });
}

void add_push_command(CLI::App& app) {
  auto paths = std::make_shared<std::pair<fs::path, fs::path>>();
  auto* cmd = app.add_subcommand("push", "Copy a run's model into the next version folder of a serving base path");
  cmd->add_option("source", paths->first, "A run folder, a model folder or a version folder")->required();
  cmd->add_option("base_path", paths->second, "The serving base path (numeric version folders)")->required();
  cmd->callback([paths] {
    const auto v = serve::push_bundle(paths->first, paths->second);
    std::printf("pushed as version %lld of %s\n", static_cast<long long>(v), paths->second.string().c_str());
  });
}

void add_demo_command(CLI::App& app) {
  auto po = std::make_shared<train::DemoOptions>();
  auto& o = *po;
  auto* cmd = app.add_subcommand("demo", "Generate synthetic patches, train, evaluate and report");
  cmd->add_option("--out", o.output_dir, "Output folder")->capture_default_str();
  cmd->add_option("--backbone", o.backbone, "auto, mobilenet_v2 or simple_cnn")->capture_default_str();
  cmd->add_option("--patients", o.patients, "Synthetic patients")->capture_default_str();
  cmd->add_option("--per-patient", o.patches_per_patient, "Patches per patient")->capture_default_str();
  cmd->add_option("--epochs", o.epochs, "Epochs (0: the demo's default)")->capture_default_str();
  cmd->add_option("--seed", o.seed, "Random seed")->capture_default_str();
  cmd->callback([po] {
    auto r = train::run_demo(*po);
    std::cout << r.test_report;
  });
}

void add_compare_command(CLI::App& app) {
  auto config_file = std::make_shared<fs::path>();
  auto* cmd = app.add_subcommand("compare", "Run a grid of runs (or the study's ablation), tabulate and plot them, and name the best");
  cmd->add_option("config", *config_file, "Compare config (JSON): data_dir, output_dir, base, grid, ablation")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->callback([config_file] {
    auto config = train::load_compare_config(*config_file);
    auto rows = train::run_compare(config);
    std::cout << train::compare_table_markdown(rows) << "\n" << train::best_run_summary(rows);
    if (config.ablation) std::cout << "\n" << train::ablation_summary(rows);
    std::printf("results: %s (figures: test_*.png, size_vs_accuracy.png beside it)\n",
                (config.output_dir / "results.md").string().c_str());
  });
}

void add_models_command(CLI::App& app) {
  auto* models_cmd = app.add_subcommand(
      "models", "Backbones this build knows, model summaries, and the versions of a serving base path");
  models_cmd->require_subcommand(1);
  auto* list = models_cmd->add_subcommand(
      "list", "List backbones: parameters (without, with BatchNorm statistics), feature channels, and GMACs "
              "(multiply-accumulates of conv and linear layers, 1 MAC = 2 FLOPs) per image at 50x50 and 224x224");
  list->callback([] {
    std::printf("%-20s %12s %13s %9s %10s %10s\n", "backbone", "parameters", "with BN stats", "features", "GMACs@50",
                "GMACs@224");
    for (const auto& name : models::backbone_names()) {
      auto b = models::make_backbone(name);
      std::printf("%-20s %12lld %13lld %9lld %10.3f %10.3f\n", name.c_str(),
                  static_cast<long long>(models::count_parameters(*b)),
                  static_cast<long long>(models::count_parameters(*b, true)),
                  static_cast<long long>(b->feature_channels()), models::count_macs(*b, 50) / 1e9,
                  models::count_macs(*b, 224) / 1e9);
    }
  });

  struct Summary {
    std::string backbone, head = "dense";
    int64_t image_size = 224, unfreeze_last = 0, hidden1 = 512, hidden2 = 128, lstm_units = 512;
    bool unfreeze = false, batch_norm = false;
  };
  auto su = std::make_shared<Summary>();
  auto* summary = models_cmd->add_subcommand(
      "summary", "Print a backbone + head as Keras' model.summary() does: layers (type), output shapes, parameters, "
                 "and the total, trainable and non-trainable parameter counts");
  summary->add_option("--backbone", su->backbone, "Registered backbone name, or torchscript:<file>")->required();
  summary->add_option("--head", su->head, "dense, lstm (the feature map read as a sequence) or lstm_pooled (pooled "
                                         "features -> embedding -> LSTM)")
      ->check(CLI::IsMember({"dense", "lstm", "lstm_pooled"}))->capture_default_str();
  summary->add_option("--image-size", su->image_size, "Input size (square)")->capture_default_str();
  summary->add_option("--unfreeze-last", su->unfreeze_last,
                      "Train the last N backbone layers, counted as Keras counts them (the study: 4)")
      ->capture_default_str();
  summary->add_flag("--unfreeze", su->unfreeze, "Train the whole backbone too (default: frozen)");
  summary->add_flag("--batch-norm", su->batch_norm, "BatchNorm before the last dense layer (the study's head)");
  summary->add_option("--hidden1", su->hidden1, "First dense layer of the head")->capture_default_str();
  summary->add_option("--hidden2", su->hidden2, "Second dense layer of the head")->capture_default_str();
  summary->add_option("--lstm-units", su->lstm_units, "LSTM units of the lstm head")->capture_default_str();
  summary->callback([su] {
    HISTOCNN_CHECK(su->image_size >= 1, "--image-size must be positive, got {}", su->image_size);
    HISTOCNN_CHECK(su->unfreeze_last >= 0, "--unfreeze-last must be >= 0, got {}", su->unfreeze_last);
    HISTOCNN_CHECK(!(su->unfreeze && su->unfreeze_last > 0),
                   "--unfreeze trains the whole backbone; --unfreeze-last {} would have no effect: give one of them",
                   su->unfreeze_last);
    models::Classifier model(models::ClassifierOptions()
                                 .backbone(su->backbone)
                                 .head(su->head)
                                 .freeze_backbone(!su->unfreeze)
                                 .unfreeze_last(su->unfreeze_last)
                                 .batch_norm(su->batch_norm)
                                 .hidden1(su->hidden1)
                                 .hidden2(su->hidden2)
                                 .lstm_units(su->lstm_units));
    std::cout << models::format_summary(models::summarize(*model, su->image_size));
  });

  auto base = std::make_shared<fs::path>();
  auto* versions = models_cmd->add_subcommand("versions", "List the versions of a serving base path: test AUC, "
                                              "threshold, labels, and which one is live");
  versions->add_option("base_path", *base, "Serving base path (numeric version folders)")->required();
  versions->callback([base] { std::cout << serve::format_versions(serve::list_served_versions(*base)); });

  struct Pin {
    fs::path base;
    std::optional<int64_t> version;
    std::string label;
    bool latest = false;
  };
  auto pin = std::make_shared<Pin>();
  auto* promote = models_cmd->add_subcommand(
      "promote", "Serve a version (or point a label at it) without restarting the server; --latest: the newest again");
  promote->add_option("--model-base-path", pin->base, "Serving base path")->required();
  promote->add_option("--version", pin->version, "The version to serve");
  promote->add_option("--label", pin->label, "Point this label (e.g. stable, canary) at the version instead");
  promote->add_flag("--latest", pin->latest, "Serve the newest loadable version again (undo a pin)");
  promote->callback([pin] {
    HISTOCNN_CHECK(pin->latest != pin->version.has_value(), "give --version N, or --latest");
    if (pin->latest) {
      serve::unpin(pin->base);
    } else if (!pin->label.empty()) {
      serve::set_label(pin->base, pin->label, *pin->version);
    } else {
      serve::pin_version(pin->base, *pin->version);
    }
    std::cout << serve::format_versions(serve::list_served_versions(pin->base));
  });
  auto* rollback = models_cmd->add_subcommand(
      "rollback", "Serve an older version (default: the one before the live one) without restarting the server");
  rollback->add_option("--model-base-path", pin->base, "Serving base path")->required();
  rollback->add_option("--version", pin->version, "The version to go back to");
  rollback->callback([pin] {
    const int64_t target = pin->version ? *pin->version : serve::version_before_live(pin->base);
    serve::pin_version(pin->base, target);
    std::cout << serve::format_versions(serve::list_served_versions(pin->base));
  });

  // Runs a backbone on tensors from a file: for checking against another implementation, and for
  // extracting features from Python or shell without writing C++.
  struct Features { std::string backbone; fs::path weights, input, output; int threads = 0, repeat = 0; };
  auto fe = std::make_shared<Features>();
  auto& feat_backbone = fe->backbone;
  auto& feat_weights = fe->weights;
  auto& feat_input = fe->input;
  auto& feat_output = fe->output;
  auto& feat_threads = fe->threads;
  auto& feat_repeat = fe->repeat;
  auto* feat = models_cmd->add_subcommand(
      "features", "Run a backbone (eval mode) on the tensor 'input' [N,3,H,W] of a safetensors file and write "
                  "'features' [N,C,h,w] and 'pooled' [N,C]");
  feat->add_option("--backbone", feat_backbone, "Registered backbone name, or torchscript:<file>")->required();
  feat->add_option("--weights", feat_weights, "safetensors weights with this library's parameter names, or a Keras "
                   ".h5 file (an ImageNet top in the file is ignored); default: random initialisation")->check(CLI::ExistingFile);
  feat->add_option("--input", feat_input, "safetensors file with a float tensor 'input' [N,3,H,W]")
      ->required()->check(CLI::ExistingFile);
  feat->add_option("--output", feat_output, "safetensors file to write");
  feat->add_option("--threads", feat_threads, "LibTorch threads (0: all cores)")->capture_default_str();
  feat->add_option("--time", feat_repeat, "Also time N more forward passes and print images per second");
  feat->callback([fe] {
    const auto& feat_backbone = fe->backbone;
    const auto& feat_weights = fe->weights;
    const auto& feat_input = fe->input;
    const auto& feat_output = fe->output;
    const int feat_repeat = fe->repeat;
    configure_threads(fe->threads);
    auto backbone = models::make_backbone(feat_backbone);
    if (!feat_weights.empty()) {
      models::LoadOptions opt;
      opt.ignore_prefixes = backbone->top_prefixes();
      models::load_weights(*backbone, feat_weights, opt);
    }
    auto file = io::load_safetensors(feat_input);
    HISTOCNN_CHECK(file.tensors.count("input"), "'{}' has no tensor named 'input'", feat_input.string());
    auto x = file.tensors.at("input").to(torch::kFloat32);
    HISTOCNN_CHECK(x.dim() == 4 && x.size(1) == 3, "'input' in '{}' must be [N,3,H,W], got {}", feat_input.string(),
                   c10::str(x.sizes()));
    backbone->eval();
    torch::NoGradGuard no_grad;
    auto maps = backbone->forward_features(x);
    if (!feat_output.empty()) {
      io::save_safetensors(feat_output, {{"features", maps.contiguous()}, {"pooled", maps.mean({2, 3})}},
                           {{"backbone", feat_backbone}});
    }
    std::printf("%s: input [%lld,3,%lld,%lld] -> features [%lld,%lld,%lld,%lld]\n", feat_backbone.c_str(),
                static_cast<long long>(x.size(0)), static_cast<long long>(x.size(2)), static_cast<long long>(x.size(3)),
                static_cast<long long>(maps.size(0)), static_cast<long long>(maps.size(1)),
                static_cast<long long>(maps.size(2)), static_cast<long long>(maps.size(3)));
    if (feat_repeat > 0) {
      // The best pass is what the code can do; the mean includes whatever else the machine ran.
      double total = 0, best = 1e300;
      for (int i = 0; i < feat_repeat; ++i) {
        const auto start = std::chrono::steady_clock::now();
        backbone->forward_features(x);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        total += seconds;
        best = std::min(best, seconds);
      }
      std::printf("throughput: %.3f images/s mean, %.3f images/s best (%d passes of batch %lld, %d threads)\n",
                  feat_repeat * x.size(0) / total, x.size(0) / best, feat_repeat, static_cast<long long>(x.size(0)),
                  torch::get_num_threads());
    }
  });
}

}  // namespace

namespace histocnn::cli {

int run(int argc, const char* const* argv) {
  CLI::App app{"histocnn: deep transfer learning on histopathology patches"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("histocnn ") + histocnn::version());
  add_data_commands(app);
  add_train_command(app);
  add_cv_command(app);
  add_evaluate_command(app);
  add_predict_command(app);
  add_explain_command(app);
  add_maps_command(app);
  add_serve_command(app);
  add_push_command(app);
  add_demo_command(app);
  add_compare_command(app);
  add_models_command(app);
  cli::add_pipeline_commands(app);
  cli::add_slide_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "histocnn: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "histocnn: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace histocnn::cli
