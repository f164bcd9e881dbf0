#include "histocnn/models/weights.h"

#include "histocnn/core/error.h"
#include "histocnn/models/keras_weights.h"

#include <torch/torch.h>

#include <set>

namespace histocnn::models {

io::TensorMap state_dict(const torch::nn::Module& module) {
  io::TensorMap out;
  for (const auto& p : module.named_parameters()) out[p.key()] = p.value().detach();
  for (const auto& b : module.named_buffers()) out[b.key()] = b.value().detach();
  return out;
}

namespace {
std::string shape_str(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? "," : "") + std::to_string(t.size(i));
  return s + "]";
}

std::string join_limited(const std::vector<std::string>& items, size_t limit = 12) {
  std::string s;
  for (size_t i = 0; i < items.size() && i < limit; ++i) s += (i ? ", " : "") + items[i];
  if (items.size() > limit) s += fmt::format(", ... ({} more)", items.size() - limit);
  return s;
}
}  // namespace

std::string LoadReport::summary() const {
  std::string s = fmt::format("loaded {} tensors", loaded.size());
  if (!ignored.empty()) s += fmt::format("; ignored {} (ImageNet top): {}", ignored.size(), join_limited(ignored, 4));
  if (!missing.empty()) s += fmt::format("; missing {}: {}", missing.size(), join_limited(missing));
  if (!unexpected.empty()) s += fmt::format("; unexpected {}: {}", unexpected.size(), join_limited(unexpected));
  if (!mismatched.empty()) s += fmt::format("; shape mismatches {}: {}", mismatched.size(), join_limited(mismatched));
  return s;
}

LoadReport load_state_dict(torch::nn::Module& module, const io::TensorMap& tensors, const LoadOptions& options) {
  LoadReport report;
  auto targets = state_dict(module);
  std::set<std::string> used;
  for (const auto& kv : tensors) {
    const auto& key = kv.first;
    bool ignore = false;
    for (const auto& prefix : options.ignore_prefixes) ignore = ignore || key.rfind(prefix, 0) == 0;
    if (ignore) {
      report.ignored.push_back(key);
      continue;
    }
    auto it = targets.find(key);
    if (it == targets.end()) {
      report.unexpected.push_back(key);
      continue;
    }
    used.insert(key);
    if (it->second.sizes() != kv.second.sizes()) {
      report.mismatched.push_back(fmt::format("{}: file {} vs model {}", key, shape_str(kv.second), shape_str(it->second)));
      continue;
    }
    report.loaded.push_back(key);
  }
  for (const auto& kv : targets) {
    if (!used.count(kv.first)) report.missing.push_back(kv.first);
  }
  if (options.strict && !report.complete()) {
    HISTOCNN_FAIL("weights from '{}' do not fit the model: {}. Check that the file is for this architecture, or "
                  "load with strict=false to take what matches",
                  options.source, report.summary());
  }
  torch::NoGradGuard no_grad;
  for (const auto& key : report.loaded) {
    auto& target = targets.at(key);
    target.copy_(tensors.at(key).to(target.device(), target.scalar_type()));
  }
  return report;
}

LoadReport load_weights(torch::nn::Module& module, const std::filesystem::path& file, LoadOptions options) {
  if (is_keras_h5(file)) {
    auto* backbone = dynamic_cast<BackboneImpl*>(&module);
    HISTOCNN_CHECK(backbone != nullptr, "'{}' is a Keras .h5 file: it loads into a backbone, not a whole model",
                   file.string());
    return load_keras_weights(*backbone, file, options);
  }
  if (options.source == "weights") options.source = file.string();
  auto loaded = io::load_safetensors(file);
  return load_state_dict(module, loaded.tensors, options);
}

void save_weights(const torch::nn::Module& module, const std::filesystem::path& file,
                  const std::map<std::string, std::string>& metadata) {
  io::TensorMap cpu;
  for (const auto& kv : state_dict(module)) cpu[kv.first] = kv.second.to(torch::kCPU).contiguous();
  io::save_safetensors(file, cpu, metadata);
}

}  // namespace histocnn::models
