#include "histocnn/train/checkpoint.h"

#include "histocnn/core/error.h"
#include "histocnn/io/atomic_file.h"

#include <nlohmann/json.hpp>

#include <random>

namespace histocnn::train {

namespace fs = std::filesystem;

void save_checkpoint(const fs::path& dir, const TrainingCheckpoint& ck) {
  fs::create_directories(dir);
  const int epoch = ck.history.epochs.empty() ? 0 : ck.history.epochs.back().epoch;
  const std::string name = fmt::format("epoch-{}", epoch);
  const fs::path staging = dir / fmt::format(".{}.tmp-{}", name, std::random_device{}());
  fs::create_directories(staging);
  nlohmann::json state = {{"format", "histocnn.checkpoint"},
                          {"format_version", 1},
                          {"epoch", epoch},
                          {"history", ck.history.to_csv()},
                          {"best_epoch", ck.history.best_epoch},
                          {"best_val_auc", ck.history.best_epoch > 0 ? nlohmann::json(ck.history.best_val_auc) : nlohmann::json()},
                          {"stopped_early", ck.history.stopped_early},
                          {"average_updates", ck.average_updates},
                          {"fingerprint", ck.fingerprint}};
  io::save_safetensors(staging / "model.safetensors", ck.model);
  io::save_safetensors(staging / "best.safetensors", ck.best_model);
  io::save_safetensors(staging / "rng.safetensors", ck.rng);
  if (!ck.average.empty()) io::save_safetensors(staging / "average.safetensors", ck.average);
  io::write_file_atomic(staging / "optimizer.pt", ck.optimizer);
  io::write_file_atomic(staging / "state.json", state.dump(2));
  const fs::path target = dir / name;
  std::error_code ec;
  fs::remove_all(target, ec);  // a leftover from a run killed after the rename, before `latest`
  fs::rename(staging, target);
  io::write_file_atomic(dir / "latest", name + "\n");
  // Older epochs are no longer needed once `latest` points past them.
  for (const auto& entry : fs::directory_iterator(dir)) {
    const auto n = entry.path().filename().string();
    if (entry.is_directory() && n != name && (n.rfind("epoch-", 0) == 0 || n.rfind(".epoch-", 0) == 0)) {
      fs::remove_all(entry.path(), ec);
    }
  }
}

std::optional<TrainingCheckpoint> load_checkpoint(const fs::path& dir) {
  if (!fs::exists(dir / "latest")) return std::nullopt;
  std::string name = io::read_file(dir / "latest");
  while (!name.empty() && (name.back() == '\n' || name.back() == '\r')) name.pop_back();
  const fs::path folder = dir / name;
  HISTOCNN_CHECK_IO(fs::is_directory(folder), "checkpoint '{}' names '{}', which is missing; delete the checkpoint "
                    "folder to start over", (dir / "latest").string(), name);
  TrainingCheckpoint ck;
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(io::read_file(folder / "state.json"));
    ck.history = History::from_csv(state.at("history").get<std::string>());
    ck.history.best_epoch = state.at("best_epoch").get<int>();
    if (!state.at("best_val_auc").is_null()) ck.history.best_val_auc = state.at("best_val_auc").get<double>();
    ck.history.stopped_early = state.at("stopped_early").get<bool>();
    ck.fingerprint = state.at("fingerprint").get<std::string>();
    ck.average_updates = state.value("average_updates", int64_t{0});  // absent before weight averages
  } catch (const nlohmann::json::exception& e) {
    HISTOCNN_FAIL("checkpoint state '{}' is damaged ({}); delete the checkpoint folder to start over",
                  (folder / "state.json").string(), e.what());
  }
  ck.model = io::load_safetensors(folder / "model.safetensors").tensors;
  ck.best_model = io::load_safetensors(folder / "best.safetensors").tensors;
  ck.rng = io::load_safetensors(folder / "rng.safetensors").tensors;
  if (fs::exists(folder / "average.safetensors")) ck.average = io::load_safetensors(folder / "average.safetensors").tensors;
  ck.optimizer = io::read_file(folder / "optimizer.pt");
  return ck;
}

}  // namespace histocnn::train
