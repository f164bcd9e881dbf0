#include "histocnn/models/keras_weights.h"

#include "histocnn/core/error.h"

#include <torch/torch.h>

#include <functional>
#include <map>
#include <regex>

namespace histocnn::models {

namespace {

// Keras layer name -> histocnn module path ("" when unknown, "-" for the ImageNet top).
using LayerMap = std::function<std::string(const std::string& layer)>;

std::string vgg16_layer(const std::string& layer) {
  static const std::regex conv(R"(block(\d)_conv(\d))");
  // torchvision's features indices of VGG16's 13 convolutions, block by block.
  static const int index[] = {0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28};
  static const int per_block[] = {2, 2, 3, 3, 3};
  std::smatch m;
  if (std::regex_match(layer, m, conv)) {
    const int block = std::stoi(m[1]), c = std::stoi(m[2]);
    if (block < 1 || block > 5 || c < 1 || c > per_block[block - 1]) return "";
    int ordinal = c - 1;
    for (int b = 1; b < block; ++b) ordinal += per_block[b - 1];
    return "features." + std::to_string(index[ordinal]);
  }
  if (layer == "fc1" || layer == "fc2" || layer == "predictions") return "-";
  return "";
}

std::string densenet_layer(const std::string& layer) {
  static const std::regex dense(R"(conv(\d)_block(\d+)_(0_bn|1_conv|1_bn|2_conv))");
  static const std::regex transition(R"(pool(\d)_(bn|conv))");
  static const std::map<std::string, std::string> part = {
      {"0_bn", "norm1"}, {"1_conv", "conv1"}, {"1_bn", "norm2"}, {"2_conv", "conv2"}};
  std::smatch m;
  if (layer == "conv1/conv") return "features.conv0";
  if (layer == "conv1/bn") return "features.norm0";
  if (layer == "bn") return "features.norm5";
  if (std::regex_match(layer, m, dense)) {
    return "features.denseblock" + std::to_string(std::stoi(m[1]) - 1) + ".denselayer" + m[2].str() + "." +
           part.at(m[3]);
  }
  if (std::regex_match(layer, m, transition)) {
    return "features.transition" + std::to_string(std::stoi(m[1]) - 1) + "." + (m[2] == "bn" ? "norm" : "conv");
  }
  if (layer == "fc1000" || layer == "predictions") return "-";
  return "";
}

std::string resnet_v2_layer(const std::string& layer) {
  static const std::regex block(R"(conv(\d)_block(\d+)_(preact_bn|0_conv|1_conv|1_bn|2_conv|2_bn|3_conv))");
  static const std::map<std::string, std::string> part = {
      {"preact_bn", "preact"}, {"0_conv", "downsample"}, {"1_conv", "conv1"}, {"1_bn", "bn1"},
      {"2_conv", "conv2"},     {"2_bn", "bn2"},          {"3_conv", "conv3"}};
  std::smatch m;
  if (layer == "conv1_conv") return "conv1";
  if (layer == "post_bn") return "post_bn";
  if (std::regex_match(layer, m, block)) {
    return "layer" + std::to_string(std::stoi(m[1]) - 1) + "." + std::to_string(std::stoi(m[2]) - 1) + "." +
           part.at(m[3]);
  }
  if (layer == "predictions" || layer == "probs") return "-";
  return "";
}

const std::map<std::string, LayerMap>& layer_maps() {
  static const std::map<std::string, LayerMap> maps = {
      {"vgg16", vgg16_layer},
      {"densenet121", densenet_layer},
      {"densenet201", densenet_layer},
      {"resnet50v2", resnet_v2_layer},
      {"resnet152v2", resnet_v2_layer},
  };
  return maps;
}

// A Keras weight in LibTorch's layout, with the parameter's last name component.
std::pair<std::string, torch::Tensor> convert(const io::KerasWeight& w) {
  const auto& v = w.value;
  if (w.name == "kernel" && v.dim() == 4) return {"weight", v.permute({3, 2, 0, 1}).contiguous()};
  if (w.name == "kernel" && v.dim() == 2) return {"weight", v.t().contiguous()};
  if (w.name == "bias") return {"bias", v};
  if (w.name == "gamma") return {"weight", v};
  if (w.name == "beta") return {"bias", v};
  if (w.name == "moving_mean") return {"running_mean", v};
  if (w.name == "moving_variance") return {"running_var", v};
  return {"", v};
}

}  // namespace

std::vector<std::string> keras_h5_backbones() {
  std::vector<std::string> out;
  for (const auto& kv : layer_maps()) out.push_back(kv.first);
  return out;
}

io::TensorMap keras_to_state_dict(const std::string& backbone, const std::vector<io::KerasWeight>& weights) {
  auto it = layer_maps().find(backbone);
  if (it == layer_maps().end()) {
    std::string known;
    for (const auto& n : keras_h5_backbones()) known += (known.empty() ? "" : ", ") + n;
    HISTOCNN_FAIL("Keras .h5 weights can be read for {}, not for '{}'; convert its weights to safetensors with "
                  "this library's parameter names instead",
                  known, backbone);
  }
  io::TensorMap out;
  for (const auto& w : weights) {
    const std::string module = it->second(w.layer);
    const auto [param, value] = convert(w);
    const std::string keras_name = w.layer + "/" + w.name;
    if (module == "-") {
      out["keras-top:" + keras_name] = value;
    } else if (module.empty() || param.empty()) {
      out["keras:" + keras_name] = value;
    } else if (backbone == "vgg16" && w.layer == "block1_conv1" && param == "weight") {
      // Keras' VGG16 was trained on BGR input ("caffe" preprocessing); reversing the first
      // kernel's input channels lets it read RGB with the RGB mean subtracted.
      out[module + "." + param] = value.flip({1}).contiguous();
    } else {
      out[module + "." + param] = value;
      // Keras keeps no BatchNorm batch counter; LibTorch's starts at zero.
      if (param == "running_mean") out[module + ".num_batches_tracked"] = torch::zeros({}, torch::kLong);
    }
  }
  return out;
}

LoadReport load_keras_weights(BackboneImpl& backbone, const std::filesystem::path& file, LoadOptions options) {
  if (options.source == "weights") options.source = file.string();
  options.ignore_prefixes.push_back("keras-top:");
  return load_state_dict(backbone, keras_to_state_dict(backbone.name(), io::read_keras_h5(file)), options);
}

std::string keras_h5_normalisation(const std::string& backbone) {
  if (backbone == "vgg16") return "caffe";
  if (backbone == "densenet121" || backbone == "densenet201") return "imagenet";
  return "inception";  // ResNetV2, Xception, InceptionResNetV2, NASNet: x / 127.5 - 1
}

bool is_keras_h5(const std::filesystem::path& file) {
  const auto ext = file.extension().string();
  return ext == ".h5" || ext == ".hdf5";
}

}  // namespace histocnn::models
