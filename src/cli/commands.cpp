// The `histocnn` command-line interface: parses options and calls the library, nothing more.
// Shared by the `histocnn` executable and `python -m histocnn`.
#include "histocnn/core/device.h"
#include "histocnn/core/error.h"
#include "histocnn/core/version.h"
#include "histocnn/cli.h"
#include "histocnn/core/log.h"
#include "histocnn/data/augment.h"
#include "histocnn/data/balance.h"
#include "histocnn/data/split.h"
#include "histocnn/data/synthetic.h"
#include "histocnn/io/safetensors.h"
#include "histocnn/models/backbone.h"
#include "histocnn/models/complexity.h"
#include "histocnn/models/weights.h"
#include "histocnn/train/compare.h"
#include "histocnn/train/demo.h"
#include "histocnn/train/evaluate.h"
#include "histocnn/train/run.h"

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <iostream>

namespace {

using namespace histocnn;
namespace fs = std::filesystem;

void add_data_commands(CLI::App& app) {
  auto* data_cmd = app.add_subcommand("data", "Scan, split and synthesise patch folders");
  data_cmd->require_subcommand(1);

  static fs::path scan_dir, scan_out;
  auto* scan = data_cmd->add_subcommand("scan", "Scan a folder in the Kaggle layout into a manifest CSV");
  scan->add_option("folder", scan_dir, "Folder of <patient>/<class>/<patient>_idx5_x<X>_y<Y>_class<C>.png")->required();
  scan->add_option("-o,--output", scan_out, "Manifest CSV to write (default: <folder>/manifest.csv)");
  scan->callback([] {
    auto report = data::scan_directory(scan_dir);
    const auto out = scan_out.empty() ? scan_dir / "manifest.csv" : scan_out;
    report.manifest.save_csv(out);
    const auto counts = report.manifest.class_counts();
    std::printf("%zu patches, %zu patients (%lld negative, %lld positive), %zu files rejected -> %s\n",
                report.manifest.size(), report.manifest.patients().size(), static_cast<long long>(counts[0]),
                static_cast<long long>(counts[1]), report.rejected.size(), out.string().c_str());
  });

  static fs::path split_in, split_out;
  static data::SplitOptions split_opt;
  static int64_t split_balance = 0;
  auto* split = data_cmd->add_subcommand("split", "Split a manifest (or folder) by patient into train/val/test");
  split->add_option("input", split_in, "Manifest CSV or folder of patches")->required()->check(CLI::ExistingPath);
  split->add_option("-o,--output", split_out, "Manifest CSV with a split column (default: split.csv beside the input)");
  split->add_option("--train", split_opt.train, "Fraction of patches for training")->capture_default_str();
  split->add_option("--val", split_opt.val, "Fraction for validation")->capture_default_str();
  split->add_option("--test", split_opt.test, "Fraction for testing")->capture_default_str();
  split->add_option("--seed", split_opt.seed, "Random seed")->capture_default_str();
  split->add_flag("--by-patch", split_opt.by_patch, "Split patches, not patients (leaks patients between splits)");
  split->add_option("--balance", split_balance, "Down-sample each class to N patches first (the study used 2500)");
  split->callback([] {
    const bool is_dir = fs::is_directory(split_in);
    auto m = train::load_patch_manifest(is_dir ? split_in : fs::path(), is_dir ? fs::path() : split_in);
    if (split_balance > 0) m = data::balance_classes(m, split_balance, split_opt.seed);
    m = data::split_manifest(m, split_opt);
    const auto out = !split_out.empty() ? split_out : (is_dir ? split_in / "split.csv" : split_in.parent_path() / "split.csv");
    m.save_csv(out);
    std::cout << data::format_split_summary(data::summarize_splits(m)) << "-> " << out.string() << "\n";
  });

  static fs::path synth_out;
  static data::SyntheticOptions synth_opt;
  auto* synth = data_cmd->add_subcommand("synth", "Write synthetic H&E-like patches in the Kaggle layout");
  synth->add_option("folder", synth_out, "Empty or new folder to write into")->required();
  synth->add_option("--patients", synth_opt.patients, "Number of patients")->capture_default_str();
  synth->add_option("--per-patient", synth_opt.patches_per_patient, "Patches per patient")->capture_default_str();
  synth->add_option("--positive-fraction", synth_opt.positive_fraction, "Fraction of IDC-positive patches")
      ->capture_default_str();
  synth->add_option("--difficulty", synth_opt.difficulty, "0 (easy) to 1 (hard): overlap of the classes")
      ->capture_default_str();
  synth->add_option("--seed", synth_opt.seed, "Random seed")->capture_default_str();
  synth->callback([] {
    auto s = data::generate_synthetic(synth_out, synth_opt);
    std::printf("wrote %lld patches (%lld positive) for %d patients to %s\n", static_cast<long long>(s.written),
                static_cast<long long>(s.positives), s.patients, synth_out.string().c_str());
  });
}

void add_model_options(CLI::App* cmd, train::RunOptions& o, std::string& weights) {
  static bool unfreeze = false;
  cmd->add_option("--backbone", o.model.backbone(), "Backbone name (see `histocnn models list`)")->capture_default_str();
  cmd->add_option("--weights", weights, "Pretrained backbone weights: 'imagenet', a .safetensors file, a Keras .h5 file, or none");
  cmd->add_option("--unfreeze-last", o.model.unfreeze_last(), "Train the last N backbone blocks (the study: 4)")
      ->capture_default_str();
  cmd->add_flag("--unfreeze", unfreeze, "Train the whole backbone too (default: frozen)")
      ->each([&o](const std::string&) { o.model.freeze_backbone(false); });
  cmd->add_flag("--train-bn", o.model.train_bn(), "Let BatchNorm layers of an unfrozen backbone train");
  cmd->add_option("--head", o.model.head(), "dense, or lstm (the feature map read as a sequence)")
      ->capture_default_str();
  cmd->add_option("--lstm-units", o.model.lstm_units(), "LSTM units of the lstm head")->capture_default_str();
  cmd->add_option("--hidden1", o.model.hidden1(), "First dense layer of the head")->capture_default_str();
  cmd->add_option("--hidden2", o.model.hidden2(), "Second dense layer of the head")->capture_default_str();
  cmd->add_option("--dropout", o.model.dropout(), "Dropout of the dense head")->capture_default_str();
  cmd->add_flag("--batch-norm", o.model.batch_norm(), "BatchNorm before the last dense layer");
  cmd->add_flag("--tf-padding", o.model.tf_padding(), "TensorFlow SAME padding (for TF-trained weights)");
  cmd->add_option("--image-size", o.image_size, "Patches are resized to this square size")->capture_default_str();
}

void add_train_command(CLI::App& app) {
  static train::RunOptions o;
  static std::string weights, augment = "none";
  auto* cmd = app.add_subcommand("train", "Train a classifier and write a run folder (rerun to resume)");
  cmd->add_option("--data", o.data_dir, "Folder of patches in the Kaggle layout");
  cmd->add_option("--manifest", o.manifest, "Manifest CSV (paths relative to its folder, or to --data)");
  cmd->add_option("--out", o.output_dir, "Folder for run folders")->capture_default_str();
  cmd->add_option("--name", o.name, "Run folder name (default: <backbone>-<head>-<hash of the options>)");
  add_model_options(cmd, o, weights);
  cmd->add_option("--epochs", o.trainer.epochs, "Epochs")->capture_default_str();
  cmd->add_option("--batch-size", o.trainer.batch_size, "Batch size")->capture_default_str();
  cmd->add_option("--optimizer", o.trainer.optimizer, "rmsprop, adam, adamw or sgd")->capture_default_str();
  cmd->add_option("--lr", o.trainer.learning_rate, "Learning rate")->capture_default_str();
  cmd->add_option("--backbone-lr-multiplier", o.trainer.backbone_lr_multiplier,
                  "Learning rate of unfrozen backbone layers relative to the head's")
      ->capture_default_str();
  cmd->add_option("--weight-decay", o.trainer.weight_decay, "L2 weight decay")->capture_default_str();
  cmd->add_option("--momentum", o.trainer.momentum, "Momentum (sgd)")->capture_default_str();
  cmd->add_option("--schedule", o.trainer.schedule, "constant or cosine")->capture_default_str();
  cmd->add_option("--warmup-epochs", o.trainer.warmup_epochs, "Linear warm-up epochs (cosine)")->capture_default_str();
  cmd->add_option("--reduce-lr-patience", o.trainer.reduce_lr_patience,
                  "ReduceLROnPlateau on val_loss after N epochs without improvement (0: off)")
      ->capture_default_str();
  cmd->add_option("--reduce-lr-factor", o.trainer.reduce_lr_factor, "ReduceLROnPlateau factor")->capture_default_str();
  cmd->add_option("--min-lr", o.trainer.min_lr, "ReduceLROnPlateau lower bound")->capture_default_str();
  cmd->add_option("--early-stopping", o.trainer.early_stopping_patience,
                  "Stop after N epochs without a better val_auc (0: off)")
      ->capture_default_str();
  cmd->add_option("--class-weight", o.trainer.class_weight, "none or balanced")->capture_default_str();
  cmd->add_option("--sampler", o.trainer.sampler, "shuffle or balanced (equal classes per epoch)")
      ->capture_default_str();
  cmd->add_option("--augment", augment, "none, flips, study (rotation 20, zoom 1.2, flips) or histology "
                  "(flips, quarter turns, H&E stain jitter 0.05; histology:0.1 for stronger jitter)")
      ->capture_default_str();
  cmd->add_flag("!--no-tensorboard", o.tensorboard, "Do not write TensorBoard event files");
  cmd->add_flag("!--no-feature-cache", o.trainer.cache_features, "Recompute frozen backbone features every epoch");
  cmd->add_option("--balance", o.balance_per_class, "Down-sample each class to N patches (the study used 2500)");
  cmd->add_option("--train-fraction", o.split.train, "Fraction of patches for training")->capture_default_str();
  cmd->add_option("--val-fraction", o.split.val, "Fraction for validation")->capture_default_str();
  cmd->add_option("--test-fraction", o.split.test, "Fraction for testing")->capture_default_str();
  cmd->add_flag("--split-by-patch", o.split.by_patch, "Split patches instead of patients (leaks; not recommended)");
  cmd->add_option("--seed", o.trainer.seed, "Random seed for split, initialisation and shuffling")->capture_default_str();
  cmd->add_option("--threshold", o.threshold, "Decision threshold (with --threshold-method fixed)")
      ->capture_default_str();
  cmd->add_option("--threshold-method", o.threshold_method,
                  "fixed, youden or sensitivity: choose the threshold on the validation split")
      ->capture_default_str();
  cmd->add_option("--target-sensitivity", o.target_sensitivity, "For --threshold-method sensitivity")
      ->capture_default_str();
  cmd->add_option("--stain-shift", o.stain_shift,
                  "Also evaluate the test split restained per patient with this H&E jitter sigma (0 = off)")
      ->capture_default_str();
  cmd->add_option("--device", o.trainer.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--mixed-precision", o.trainer.mixed_precision,
                  "auto (bfloat16 autocast on CUDA), off, or bf16 (on any device)")
      ->capture_default_str();
  cmd->add_option("--workers", o.trainer.workers, "Threads preparing batches")->capture_default_str();
  cmd->add_option("--threads", o.trainer.threads, "LibTorch threads (0: all cores)")->capture_default_str();
  cmd->callback([] {
    o.weights = weights;
    o.trainer.augment = data::AugmentOptions::preset(augment);
    o.split.seed = o.trainer.seed;
    auto r = train::run_training(o);
    std::cout << r.test_report;
    std::printf("run folder: %s\nmodel: %s\n", r.run_dir.string().c_str(), r.model_dir.string().c_str());
  });
}

void add_evaluate_command(CLI::App& app) {
  static fs::path model_dir, data_dir, manifest;
  static std::string split = "test", device = "auto";
  static double threshold = -1, stain_shift = 0;
  static uint64_t seed = 42;
  static int workers = 2;
  auto* cmd = app.add_subcommand("evaluate", "Evaluate a saved model on patches and print the report");
  cmd->add_option("--model", model_dir, "Model folder (a run's model/ or model/<version>/)")->required();
  cmd->add_option("--data", data_dir, "Folder of patches in the Kaggle layout");
  cmd->add_option("--manifest", manifest, "Manifest CSV, e.g. a run's manifest.csv");
  cmd->add_option("--split", split, "Which split of the manifest to use (train, val, test, or all)")
      ->capture_default_str();
  cmd->add_option("--threshold", threshold, "Decision threshold (default: the one saved with the model)");
  cmd->add_option("--device", device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--workers", workers, "Threads preparing batches")->capture_default_str();
  cmd->add_option("--stain-shift", stain_shift,
                  "Restain each patient one way (H&E jitter sigma, e.g. 0.1) before evaluating: a robustness check")
      ->capture_default_str();
  cmd->add_option("--seed", seed, "Seed of the restaining (a run's report used its training seed)")
      ->capture_default_str();
  cmd->callback([] {
    auto m = train::load_patch_manifest(data_dir, manifest);
    bool has_split = false;
    for (const auto& r : m.rows()) has_split = has_split || !r.split.empty();
    if (split != "all" && has_split) {
      m = m.subset(split);
      HISTOCNN_CHECK(m.size() > 0, "the manifest has no rows in split '{}'; use --split train|val|test|all", split);
    }
    auto r = train::evaluate_bundle(model_dir, m, threshold, device, workers, true, stain_shift, seed);
    std::cout << r.report;
  });
}

void add_demo_command(CLI::App& app) {
  static train::DemoOptions o;
  auto* cmd = app.add_subcommand("demo", "Generate synthetic patches, train, evaluate and report");
  cmd->add_option("--out", o.output_dir, "Output folder")->capture_default_str();
  cmd->add_option("--backbone", o.backbone, "auto, mobilenet_v2 or simple_cnn")->capture_default_str();
  cmd->add_option("--patients", o.patients, "Synthetic patients")->capture_default_str();
  cmd->add_option("--per-patient", o.patches_per_patient, "Patches per patient")->capture_default_str();
  cmd->add_option("--epochs", o.epochs, "Epochs (0: the demo's default)")->capture_default_str();
  cmd->add_option("--seed", o.seed, "Random seed")->capture_default_str();
  cmd->callback([] {
    auto r = train::run_demo(o);
    std::cout << r.test_report;
  });
}

void add_compare_command(CLI::App& app) {
  static fs::path config_file;
  auto* cmd = app.add_subcommand("compare", "Run a grid of runs (or the study's ablation) and tabulate them");
  cmd->add_option("config", config_file, "Compare config (JSON): data_dir, output_dir, base, grid, ablation")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->callback([] {
    auto config = train::load_compare_config(config_file);
    auto rows = train::run_compare(config);
    std::cout << train::compare_table_markdown(rows);
    if (config.ablation) std::cout << "\n" << train::ablation_summary(rows);
    std::printf("results: %s\n", (config.output_dir / "results.md").string().c_str());
  });
}

void add_models_command(CLI::App& app) {
  auto* models_cmd = app.add_subcommand("models", "Backbones this build knows");
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

  // Runs a backbone on tensors from a file: for checking against another implementation, and for
  // extracting features from Python or shell without writing C++.
  static std::string feat_backbone;
  static fs::path feat_weights, feat_input, feat_output;
  static int feat_threads = 0;
  static int feat_repeat = 0;
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
  feat->callback([] {
    configure_threads(feat_threads);
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
  add_evaluate_command(app);
  add_demo_command(app);
  add_compare_command(app);
  add_models_command(app);
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
