#pragma once
// The versions a server holds: it scans each model's base path for numeric version folders, loads
// what the version policy asks for, unloads what it no longer asks for, and resolves a request's
// model, version or label to a loaded model.
//
//   histocnn::serve::ModelManager manager(config, {});
//   manager.poll();                                           // load what is new; call periodically
//   auto v = manager.resolve("idc", std::nullopt, std::nullopt);  // newest AVAILABLE version
//   v->predictor->predict_batch(x);
//
// A version that fails to load (corrupt weights, wrong format, a missing file) never replaces a
// working one: with the `latest` policy the newest version that loads is served, and the failed
// one shows its error in status() until its model.json changes. A version is unloaded by dropping
// the manager's reference: requests in flight keep theirs until they finish.
#include "histocnn/inference/explain.h"
#include "histocnn/inference/predictor.h"
#include "histocnn/serve/batcher.h"
#include "histocnn/serve/model_config.h"

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace histocnn::serve {

/// TensorFlow Serving's version states.
enum class VersionState { start, loading, available, unloading, end };
const char* state_name(VersionState state);

/// A loaded version: immutable, shared by the requests using it.
struct LoadedVersion {
  std::string model;
  int64_t version = 0;
  std::shared_ptr<const inference::Predictor> predictor;
  std::unique_ptr<Batcher> batcher;  ///< null when batching is off
  /// Probabilities [n, classes] for a prepared batch, through the batcher when there is one.
  torch::Tensor predict(const torch::Tensor& prepared) const;
  /// Class activation maps [n, h, w] at the layer's resolution (inference::class_activation_maps
  /// without upsample) for a prepared batch, through the batcher when there is one: explanations
  /// share its queue, capacity and threads with predictions, batched with those of the same
  /// method, class and layer.
  torch::Tensor explain(const torch::Tensor& prepared, inference::ExplainOptions options) const;
};

struct VersionStatus {
  int64_t version = 0;
  VersionState state = VersionState::start;
  std::string error;  ///< why it failed to load ("" when OK)
};

struct ModelManagerOptions {
  std::string device = "auto";
  std::optional<BatchingOptions> batching;  ///< none: each request runs on its own
  /// Called for every load attempt: model, version, whether it succeeded (for metrics and logs).
  std::function<void(const std::string&, int64_t, bool, const std::string&)> on_load;
  std::function<void(int64_t rows)> on_batch;
};

class ModelManager {
 public:
  ModelManager(ServingConfig config, ModelManagerOptions options);

  /// Applies a new configuration (policies, labels, models) at the next poll().
  void set_config(ServingConfig config);
  /// Scans every base path once: loads new versions, retries changed failed ones, unloads those the
  /// policy drops. Never throws for a bad version (its status says why).
  void poll();

  /// The loaded version for a request: `version` or `label` (at most one), or the newest available.
  /// Throws NotFound naming what is missing.
  std::shared_ptr<const LoadedVersion> resolve(const std::string& model, std::optional<int64_t> version,
                                               const std::optional<std::string>& label) const;
  /// Every version known for a model, ascending. Throws NotFound for an unknown model.
  std::vector<VersionStatus> status(const std::string& model) const;
  std::vector<std::string> model_names() const;
  /// The version a label points at. Throws NotFound for an unknown model and std::invalid_argument
  /// (TF Serving's 400) for an unknown label.
  int64_t label_version(const std::string& model, const std::string& label) const;
  /// Labels of a model (label -> version). Throws NotFound for an unknown model.
  std::map<std::string, int64_t> labels(const std::string& model) const;
  /// True when some model has an AVAILABLE version.
  bool ready() const;
  /// Rows waiting in all batch queues.
  int64_t queued_rows() const;

 private:
  struct Slot {
    VersionStatus status;
    std::shared_ptr<const LoadedVersion> loaded;
    std::filesystem::file_time_type attempted;  ///< model.json's time when a load last failed
  };
  struct Model {
    ModelConfig config;
    std::map<int64_t, Slot> slots;
  };
  void poll_model(Model& model);
  std::shared_ptr<const LoadedVersion> load(const std::string& name, int64_t version,
                                            const std::filesystem::path& dir) const;

  ModelManagerOptions options_;
  mutable std::mutex mutex_;       ///< guards models_ and pending_config_
  std::mutex poll_mutex_;          ///< one poll at a time
  std::map<std::string, Model> models_;
  std::optional<ServingConfig> pending_config_;
};

}  // namespace histocnn::serve
