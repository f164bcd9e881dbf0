#pragma once
// Setting RunOptions by flat option names: the same names for a compare config, the Python
// Trainer's keyword arguments and (with dashes) the command line.
//
//   histocnn::train::RunOptions o;
//   histocnn::train::set_run_option(o, "backbone", "\"mobilenet_v2\"");   // values are JSON text
//   histocnn::train::set_run_option(o, "learning_rate", "1e-4");
//   histocnn::train::set_run_option(o, "augment", "\"histology\"");
#include "histocnn/train/run.h"

#include <string>
#include <vector>

namespace histocnn::train {

enum class RunOptionType { boolean, integer, number, string, path, paths };

/// One run option as the command line, Python and compare configs see it: the table in
/// options.cpp is the one source of names, flags, help texts, defaults (RunOptions{}) and choices.
struct RunOptionSpec {
  std::string name;                  ///< snake_case: Python keyword, config key
  std::string flag;                  ///< command-line flag(s), e.g. "--learning-rate,--lr"; a switch's flag flips the default
  std::string help;
  RunOptionType type = RunOptionType::string;
  std::vector<std::string> choices;  ///< the allowed values of a string option (empty: any)
};

/// Every option, in the table's order (grouped by topic).
std::vector<RunOptionSpec> run_option_specs();
/// A command-line value as the JSON text set_run_option takes ("5" -> 5, "adam" -> "adam").
std::string run_option_json_value(const RunOptionSpec& spec, const std::string& text);
/// The `histocnn train` arguments that give `options` (each option that differs from its default,
/// by its first flag), e.g. {"--epochs", "5", "--unfreeze"}. progress is left out: the environment
/// gives it to a worker process (HISTOCNN_PROGRESS), and a worker that finds WORLD_SIZE set is one
/// rank whatever its nproc.
std::vector<std::string> run_option_arguments(const RunOptions& options);

/// Throws std::invalid_argument naming the option and its allowed values when the table lists
/// choices for `name` and `value` is not one of them.
void check_run_option_choice(const std::string& name, const std::string& value);

/// Sets one option; throws std::invalid_argument naming the option when the name is unknown (with
/// the known names) or the value has the wrong type.
void set_run_option(RunOptions& options, const std::string& name, const std::string& json_value);
/// One option's value as JSON text (the inverse of set_run_option).
std::string get_run_option(const RunOptions& options, const std::string& name);
/// Every option as one JSON object of name -> value; run_option_values(RunOptions{}) are the defaults.
std::string run_option_values(const RunOptions& options);
/// All option names set_run_option accepts, sorted.
std::vector<std::string> run_option_names();

/// Named recipes: the options they set, by name, as JSON text. "study" is the published recipe
/// as written: VGG16 (ImageNet, frozen) at 50 px with the dense head (dropout 0.2, no batch norm),
/// 2,500 patches per class, RMSprop at 1e-3, batch 32, 10 epochs, ReduceLROnPlateau patience 20,
/// factor 0.2, min 1e-4, no augmentation. The split stays by patient (the study's split by patch
/// leaks patients between training and test: add split_by_patch to reproduce that too).
/// "robust-cnn" is the recipe chosen by leave-patients-out cross-validation over both real folders
/// (docs/results.md): the small CNN from scratch at the patches' own 50 px, Adam at 1e-3, flips,
/// quarter turns and H&E stain jitter 0.1, 8 epochs that each draw at most 250 patches of every
/// patient, keeping the best validation AUC, patients split 72/8/20, the decision threshold by
/// Youden's J on validation.
std::vector<std::pair<std::string, std::string>> run_preset(const std::string& name);
/// The preset names run_preset knows.
std::vector<std::string> run_preset_names();
/// Sets every option of the preset; options set afterwards override it.
void apply_run_preset(RunOptions& options, const std::string& name);

}  // namespace histocnn::train
