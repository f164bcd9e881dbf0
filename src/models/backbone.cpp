#include "histocnn/models/backbone.h"

#include "histocnn/core/error.h"
#include "histocnn/models/densenet.h"
#include "histocnn/models/efficientnet.h"
#include "histocnn/models/inception_resnet_v2.h"
#include "histocnn/models/mobilenet_v2.h"
#include "histocnn/models/mobilenet_v3.h"
#include "histocnn/models/nasnet.h"
#include "histocnn/models/resnet.h"
#include "histocnn/models/simple_cnn.h"
#include "histocnn/models/squeezenet.h"
#include "histocnn/models/torchscript.h"
#include "histocnn/models/vgg.h"
#include "histocnn/models/xception.h"

#include <torch/torch.h>

#include <map>
#include <mutex>

namespace histocnn::models {

torch::Tensor BackboneImpl::forward_features(torch::Tensor x) {
  if (x.dim() == 4 && x.device().is_cpu() && prefers_channels_last(x.size(2), x.size(3))) {
    x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  }
  if (tapping()) return tap(feature_layer(), compute_features(x));
  return compute_features(x);
}

torch::Tensor BackboneImpl::forward(torch::Tensor x) {
  return forward_features(x).mean({2, 3});
}

namespace {

std::mutex& registry_mutex() {
  static std::mutex mu;
  return mu;
}

// For architectures whose published weights come from PyTorch, where "SAME" padding has no use.
template <typename Impl, typename... Args>
BackboneFactory plain(const std::string& name, Args... args) {
  return [name, args...](const BackboneOptions& o) -> Backbone {
    HISTOCNN_CHECK(!o.tf_padding, "backbone '{}' has no TensorFlow-padding variant; its Keras graph is already "
                   "implemented exactly (or it has no TF weights): drop tf_padding", name);
    return std::make_shared<Impl>(args...);
  };
}

std::map<std::string, BackboneFactory>& registry() {
  static std::map<std::string, BackboneFactory> r = {
      {"resnet18", plain<ResNetImpl>("resnet18", ResNetOptions().depth(18))},
      {"resnet50", plain<ResNetImpl>("resnet50", ResNetOptions().depth(50))},
      {"resnet50v2", plain<ResNetV2Impl>("resnet50v2", ResNetV2Options().depth(50))},
      {"resnet152v2", plain<ResNetV2Impl>("resnet152v2", ResNetV2Options().depth(152))},
      {"vgg16", plain<VGGImpl>("vgg16", int64_t{16})},
      {"densenet121", plain<DenseNetImpl>("densenet121", int64_t{121})},
      {"densenet201", plain<DenseNetImpl>("densenet201", int64_t{201})},
      {"squeezenet1_1", plain<SqueezeNetImpl>("squeezenet1_1")},
      {"xception", plain<XceptionImpl>("xception")},
      {"inception_resnet_v2", plain<InceptionResNetV2Impl>("inception_resnet_v2")},
      {"nasnet_mobile", plain<NASNetMobileImpl>("nasnet_mobile")},
      {"mobilenet_v3_small",
       [](const BackboneOptions& o) -> Backbone { return std::make_shared<MobileNetV3Impl>(false, o.tf_padding); }},
      {"mobilenet_v3_large",
       [](const BackboneOptions& o) -> Backbone { return std::make_shared<MobileNetV3Impl>(true, o.tf_padding); }},
      {"efficientnet_b0",
       [](const BackboneOptions& o) -> Backbone { return std::make_shared<EfficientNetImpl>(0, o.tf_padding); }},
      {"mobilenet_v2",
       [](const BackboneOptions& o) -> Backbone {
         return std::make_shared<MobileNetV2Impl>(MobileNetV2Options().tf_padding(o.tf_padding));
       }},
      {"simple_cnn", [](const BackboneOptions&) -> Backbone { return std::make_shared<SimpleCNNImpl>(); }},
  };
  return r;
}

}  // namespace

std::string backbone_label(const std::string& name) {
  return is_torchscript_backbone(name) ? "torchscript-" + torchscript_file(name).stem().string() : name;
}

bool backbone_brings_weights(const std::string& name) { return is_torchscript_backbone(name); }

Backbone make_backbone(const std::string& name, const BackboneOptions& options) {
  if (is_torchscript_backbone(name)) {
    HISTOCNN_CHECK(!options.tf_padding, "a TorchScript backbone has its padding built in: drop tf_padding");
    return std::make_shared<TorchScriptBackboneImpl>(torchscript_file(name));
  }
  BackboneFactory factory;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = registry().find(name);
    if (it != registry().end()) factory = it->second;
  }
  if (!factory) {
    std::string known;
    for (const auto& n : backbone_names()) known += (known.empty() ? "" : ", ") + n;
    HISTOCNN_FAIL("unknown backbone '{}'; known backbones: {} (or torchscript:<file saved with torch.jit.save>)",
                  name, known);
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
