#include "histocnn/serve/model_manager.h"

#include "histocnn/core/error.h"
#include "histocnn/core/log.h"
#include "histocnn/io/bundle.h"
#include "histocnn/serve/errors.h"

#include <torch/torch.h>

#include <algorithm>
#include <set>

namespace histocnn::serve {

namespace fs = std::filesystem;

namespace {

template <typename Model>
int64_t label_of(const Model& m, const std::string& label) {
  auto l = m.config.labels.find(label);
  // TF Serving answers an unknown label with 400 (an invalid argument), not 404.
  HISTOCNN_CHECK(l != m.config.labels.end(), "Unrecognized servable version label: {}", label);
  return l->second;
}

}  // namespace

const char* state_name(VersionState state) {
  switch (state) {
    case VersionState::start: return "START";
    case VersionState::loading: return "LOADING";
    case VersionState::available: return "AVAILABLE";
    case VersionState::unloading: return "UNLOADING";
    case VersionState::end: return "END";
  }
  return "UNKNOWN";
}

torch::Tensor LoadedVersion::predict(const torch::Tensor& prepared) const {
  if (batcher) return batcher->submit(prepared).get();
  return predictor->predict_batch(prepared);
}

torch::Tensor LoadedVersion::explain(const torch::Tensor& prepared, inference::ExplainOptions options) const {
  options.upsample = false;
  auto run = [predictor = predictor, options](const torch::Tensor& x) {
    return inference::class_activation_maps(predictor->model(), x, options);
  };
  if (!batcher) return run(prepared);
  const auto kind = fmt::format("explain/{}/{}/{}", core::choice_name(options.method), options.target_class,
                                options.layer);
  return batcher->submit(prepared, kind, run).get();
}

ModelManager::ModelManager(ServingConfig config, ModelManagerOptions options) : options_(std::move(options)) {
  if (options_.batching) options_.batching->validate();
  set_config(std::move(config));
}

void ModelManager::set_config(ServingConfig config) {
  HISTOCNN_CHECK(!config.models.empty(), "the serving configuration names no model");
  std::lock_guard<std::mutex> lock(mutex_);
  pending_config_ = std::move(config);
}

std::shared_ptr<const LoadedVersion> ModelManager::load(const std::string& name, int64_t version,
                                                        const fs::path& dir) const {
  auto loaded = std::make_shared<LoadedVersion>();
  loaded->model = name;
  loaded->version = version;
  loaded->predictor = std::make_shared<const inference::Predictor>(dir, options_.device);
  HISTOCNN_CHECK(loaded->predictor->class_names().size() == 2,
                 "'{}' classifies {} classes; the server answers binary IDC models", dir.string(),
                 loaded->predictor->class_names().size());
  if (options_.batching) {
    auto predictor = loaded->predictor;
    loaded->batcher = std::make_unique<Batcher>([predictor](const torch::Tensor& x) { return predictor->predict_batch(x); },
                                                *options_.batching, options_.on_batch);
  }
  return loaded;
}

void ModelManager::poll_model(Model& model) {
  const auto& cfg = model.config;
  const auto on_disk = io::list_versions(cfg.base_path);
  const std::set<int64_t> present(on_disk.begin(), on_disk.end());

  // Which versions the policy wants, newest first; `latest` takes the newest that load.
  const auto candidates = policy_candidates(cfg.policy, on_disk);
  std::set<int64_t> keep;
  for (int64_t v : candidates.versions) {
    if (keep.size() >= candidates.wanted) break;
    Slot* slot = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      slot = &model.slots[v];
      slot->status.version = v;
    }
    if (!present.count(v)) {
      std::lock_guard<std::mutex> lock(mutex_);
      slot->status.state = VersionState::end;
      slot->status.error = fmt::format("version {} is not a complete bundle in '{}' (model.json and "
                                       "model.safetensors)", v, cfg.base_path.string());
      slot->loaded.reset();
      continue;
    }
    if (slot->loaded) {
      keep.insert(v);
      continue;
    }
    const fs::path dir = cfg.base_path / std::to_string(v);
    std::error_code ec;
    const auto stamp = fs::last_write_time(dir / "model.json", ec);
    if (slot->status.state == VersionState::end && !slot->status.error.empty() && stamp == slot->attempted) {
      continue;  // failed before and unchanged since: keep the error, try an older version
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      slot->status.state = VersionState::loading;
      slot->status.error.clear();
    }
    std::shared_ptr<const LoadedVersion> loaded;
    std::string error;
    try {
      loaded = load(cfg.name, v, dir);
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (options_.on_load) options_.on_load(cfg.name, v, loaded != nullptr, error);
    std::lock_guard<std::mutex> lock(mutex_);
    if (loaded) {
      slot->loaded = std::move(loaded);
      slot->status.state = VersionState::available;
      keep.insert(v);
      log_info("serve: model '{}' version {} is AVAILABLE", cfg.name, v);
    } else {
      slot->status.state = VersionState::end;
      slot->status.error = error;
      slot->attempted = stamp;
      log_warn("serve: model '{}' version {} failed to load; the versions already serving stay: {}", cfg.name, v,
               error);
    }
  }
  // Unload what the policy no longer wants; requests in flight keep their reference.
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = model.slots.begin(); it != model.slots.end();) {
    auto& slot = it->second;
    if (slot.loaded && !keep.count(it->first)) {
      slot.loaded.reset();
      slot.status.state = VersionState::end;
      log_info("serve: model '{}' version {} unloaded", cfg.name, it->first);
    }
    // Forget versions that are gone from disk and not asked for by name.
    const bool named = cfg.policy.kind == VersionPolicy::Kind::specific &&
                       std::count(cfg.policy.versions.begin(), cfg.policy.versions.end(), it->first) > 0;
    if (!slot.loaded && !present.count(it->first) && !named) {
      it = model.slots.erase(it);
    } else {
      ++it;
    }
  }
}

void ModelManager::poll() {
  std::lock_guard<std::mutex> poll_lock(poll_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (pending_config_) {
      std::map<std::string, Model> next;
      for (auto& cfg : pending_config_->models) {
        auto it = models_.find(cfg.name);
        Model m;
        if (it != models_.end() && it->second.config.base_path == cfg.base_path) m.slots = std::move(it->second.slots);
        m.config = cfg;
        next[cfg.name] = std::move(m);
      }
      models_ = std::move(next);
      pending_config_.reset();
    }
  }
  // models_ only changes shape under poll_mutex_, which this thread holds.
  for (auto& [name, model] : models_) poll_model(model);
}

std::shared_ptr<const LoadedVersion> ModelManager::resolve(const std::string& model, std::optional<int64_t> version,
                                                           const std::optional<std::string>& label) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = models_.find(model);
  if (it == models_.end()) throw NotFound(fmt::format("Servable not found for request: Latest({})", model));
  const Model& m = it->second;
  if (label) version = label_of(m, *label);
  if (version) {
    auto s = m.slots.find(*version);
    if (s == m.slots.end() || !s->second.loaded) {
      throw NotFound(fmt::format("Servable not found for request: Specific({}, {})", model, *version));
    }
    return s->second.loaded;
  }
  for (auto s = m.slots.rbegin(); s != m.slots.rend(); ++s) {
    if (s->second.loaded) return s->second.loaded;
  }
  throw NotFound(fmt::format("Servable not found for request: Latest({})", model));
}

int64_t ModelManager::label_version(const std::string& model, const std::string& label) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = models_.find(model);
  if (it == models_.end()) throw NotFound(fmt::format("Could not find any versions of model {}", model));
  return label_of(it->second, label);
}

std::vector<VersionStatus> ModelManager::status(const std::string& model) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = models_.find(model);
  if (it == models_.end()) throw NotFound(fmt::format("Could not find any versions of model {}", model));
  std::vector<VersionStatus> out;
  for (const auto& [v, slot] : it->second.slots) out.push_back(slot.status);
  return out;
}

std::vector<std::string> ModelManager::model_names() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> names;
  for (const auto& kv : models_) names.push_back(kv.first);
  return names;
}

std::map<std::string, int64_t> ModelManager::labels(const std::string& model) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = models_.find(model);
  if (it == models_.end()) throw NotFound(fmt::format("Could not find any versions of model {}", model));
  return it->second.config.labels;
}

bool ModelManager::ready() const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [name, m] : models_) {
    for (const auto& [v, slot] : m.slots) {
      if (slot.loaded) return true;
    }
  }
  return false;
}

int64_t ModelManager::queued_rows() const {
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t n = 0;
  for (const auto& [name, m] : models_) {
    for (const auto& [v, slot] : m.slots) {
      if (slot.loaded && slot.loaded->batcher) n += slot.loaded->batcher->queued_rows();
    }
  }
  return n;
}

}  // namespace histocnn::serve
