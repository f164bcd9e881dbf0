#include "histocnn/models/backbone.h"

#include "histocnn/core/error.h"
#include "histocnn/models/mobilenet_v2.h"
#include "histocnn/models/simple_cnn.h"

#include <torch/torch.h>

#include <map>
#include <mutex>

namespace histocnn::models {

torch::Tensor BackboneImpl::forward(torch::Tensor x) {
  return forward_features(x).mean({2, 3});
}

namespace {

std::mutex& registry_mutex() {
  static std::mutex mu;
  return mu;
}

std::map<std::string, BackboneFactory>& registry() {
  static std::map<std::string, BackboneFactory> r = {
      {"mobilenet_v2",
       [](const BackboneOptions& o) -> Backbone {
         return std::make_shared<MobileNetV2Impl>(MobileNetV2Options().tf_padding(o.tf_padding));
       }},
      {"simple_cnn", [](const BackboneOptions&) -> Backbone { return std::make_shared<SimpleCNNImpl>(); }},
  };
  return r;
}

}  // namespace

Backbone make_backbone(const std::string& name, const BackboneOptions& options) {
  BackboneFactory factory;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = registry().find(name);
    if (it != registry().end()) factory = it->second;
  }
  if (!factory) {
    std::string known;
    for (const auto& n : backbone_names()) known += (known.empty() ? "" : ", ") + n;
    HISTOCNN_FAIL("unknown backbone '{}'; known backbones: {}", name, known);
  }
  return factory(options);
}

void register_backbone(const std::string& name, BackboneFactory factory) {
  HISTOCNN_CHECK(!name.empty() && factory, "register_backbone needs a name and a factory");
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry()[name] = std::move(factory);
}

std::vector<std::string> backbone_names() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> names;
  for (const auto& kv : registry()) names.push_back(kv.first);
  return names;
}

int64_t count_parameters(const torch::nn::Module& module, bool include_buffers) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  if (include_buffers) {
    for (const auto& b : module.buffers()) {
      if (b.is_floating_point()) n += b.numel();
    }
  }
  return n;
}

}  // namespace histocnn::models
