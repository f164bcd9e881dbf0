#pragma once
// Resumable training state, written atomically after every epoch.
//
//   histocnn::train::TrainingCheckpoint ck = ...;
//   histocnn::train::save_checkpoint("runs/x/checkpoint", ck);
//   if (auto back = histocnn::train::load_checkpoint("runs/x/checkpoint")) { ... }
//
// Layout: <dir>/epoch-<N>/{state.json, model.safetensors, best.safetensors, optimizer.pt,
// rng.safetensors, and average.safetensors with a moving average of the weights} and <dir>/latest
// naming the newest complete epoch folder. A new epoch folder is filled under a temporary name and
// renamed into place before `latest` is switched (both atomic), so a process killed at any moment
// leaves the previous checkpoint intact.
#include "histocnn/io/safetensors.h"
#include "histocnn/train/history.h"

#include <filesystem>
#include <optional>
#include <string>

namespace histocnn::train {

struct TrainingCheckpoint {
  History history;
  io::TensorMap model;        ///< weights after the last completed epoch
  io::TensorMap best_model;   ///< weights of the best epoch so far (may be empty)
  io::TensorMap average;      ///< the moving average of the weights (empty unless ema_decay is set)
  int64_t average_updates = 0;  ///< steps the average has taken
  std::string optimizer;      ///< the optimizer's serialized state (LibTorch archive bytes)
  io::TensorMap rng;          ///< random generator states ("cpu", and "cuda" when used)
  std::string fingerprint;    ///< what the run was (options, data); a resume must match it
};

void save_checkpoint(const std::filesystem::path& dir, const TrainingCheckpoint& checkpoint);
/// The newest complete checkpoint, or nullopt when the folder holds none.
std::optional<TrainingCheckpoint> load_checkpoint(const std::filesystem::path& dir);

}  // namespace histocnn::train
