#include "histocnn/models/keras_weights.h"

#include "histocnn/core/error.h"

#include <torch/torch.h>

#include <algorithm>
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

// Xception's named layers (its unnamed ones: see mappings()).
std::string xception_layer(const std::string& layer) {
  static const std::regex sepconv(R"(block(\d+)_sepconv(\d)(_bn)?)");
  static const std::map<std::string, std::string> named = {
      {"block1_conv1", "conv1"}, {"block1_conv1_bn", "bn1"},       {"block1_conv2", "conv2"},
      {"block1_conv2_bn", "bn2"}, {"block14_sepconv1", "conv3"},   {"block14_sepconv1_bn", "bn3"},
      {"block14_sepconv2", "conv4"}, {"block14_sepconv2_bn", "bn4"}};
  std::smatch m;
  if (auto it = named.find(layer); it != named.end()) return it->second;
  if (std::regex_match(layer, m, sepconv)) {
    const int block = std::stoi(m[1]), conv = std::stoi(m[2]);
    if (block < 2 || block > 13 || conv < 1 || conv > (block >= 5 && block <= 12 ? 3 : 2)) return "";
    // histocnn's rep: [ReLU,] SeparableConv, BatchNorm, ReLU, SeparableConv, BatchNorm, ... where
    // only Keras' block 2 starts without a ReLU.
    const int index = 3 * (conv - 1) + (block == 2 ? 0 : 1) + (m[3].matched ? 1 : 0);
    return "block" + std::to_string(block - 1) + ".rep." + std::to_string(index);
  }
  if (layer == "predictions") return "-";
  return "";
}

// InceptionResNetV2: Keras' conv2d_bn() names only the final 1x1 conv_7b; every other conv + BN
// pair is auto-named, numbered in the order the Keras source creates them, which is this list.
std::vector<std::string> inception_resnet_v2_unnamed() {
  return [] {
    std::vector<std::string> p = {"conv2d_1a", "conv2d_2a", "conv2d_2b", "conv2d_3b", "conv2d_4a"};
    auto add = [&p](const std::string& block, std::initializer_list<const char*> parts) {
      for (const char* part : parts) p.push_back(block + "." + part);
    };
    add("mixed_5b", {"branch0", "branch1.0", "branch1.1", "branch2.0", "branch2.1", "branch2.2", "branch3.1"});
    for (int i = 0; i < 10; ++i) {
      add("repeat." + std::to_string(i), {"branch0", "branch1.0", "branch1.1", "branch2.0", "branch2.1", "branch2.2"});
    }
    add("mixed_6a", {"branch0", "branch1.0", "branch1.1", "branch1.2"});
    for (int i = 0; i < 20; ++i) add("repeat_1." + std::to_string(i), {"branch0", "branch1.0", "branch1.1", "branch1.2"});
    add("mixed_7a", {"branch0.0", "branch0.1", "branch1.0", "branch1.1", "branch2.0", "branch2.1", "branch2.2"});
    for (int i = 0; i < 10; ++i) {
      add(i < 9 ? "repeat_2." + std::to_string(i) : "block8", {"branch0", "branch1.0", "branch1.1", "branch1.2"});
    }
    return p;
  }();
}

std::string inception_resnet_v2_layer(const std::string& layer) {
  static const std::regex block(R"(block(35|17|8)_(\d+)_conv)");
  std::smatch m;
  if (layer == "conv_7b") return "conv2d_7b.conv";
  if (layer == "conv_7b_bn") return "conv2d_7b.bn";
  if (std::regex_match(layer, m, block)) {
    const int i = std::stoi(m[2]);
    const int count = m[1] == "35" ? 10 : m[1] == "17" ? 20 : 10;
    if (i < 1 || i > count) return "";
    if (m[1] == "8" && i == 10) return "block8.conv2d";
    const std::string repeat = m[1] == "35" ? "repeat" : m[1] == "17" ? "repeat_1" : "repeat_2";
    return repeat + "." + std::to_string(i - 1) + ".conv2d";
  }
  if (layer == "predictions") return "-";
  return "";
}

// NASNetMobile: every weighted layer is named after its cell's block id ("stem_1", "0", "reduce_4",
// ...), which histocnn's cell names carry after "reduction_" or "normal_".
std::string nasnet_layer(const std::string& layer) {
  static const std::regex cell_conv(R"((normal|reduction)_(conv|bn)_1_(.+))");
  static const std::regex adjust(R"(adjust_(conv_1|conv_2|conv_projection|bn)_(.+))");
  static const std::regex separable(R"(separable_conv_([12])(_bn)?_(normal|reduction)_((left|right)\d)_(.+))");
  auto cell = [](const std::string& kind, const std::string& id) { return "cells." + kind + "_" + id; };
  std::smatch m;
  if (layer == "stem_conv1" || layer == "stem_bn1") return layer;
  if (std::regex_match(layer, m, cell_conv)) return cell(m[1], m[3]) + "." + m[2].str() + "_1";
  if (std::regex_match(layer, m, adjust)) {
    const std::string id = m[2];
    const bool normal = !id.empty() && id.find_first_not_of("0123456789") == std::string::npos;
    return cell(normal ? "normal" : "reduction", id) + ".adjust_" + m[1].str();
  }
  if (std::regex_match(layer, m, separable)) {
    return cell(m[3], m[6]) + "." + m[4].str() + ".separable_conv_" + m[1].str() + (m[2].matched ? "_bn" : "");
  }
  if (layer == "predictions") return "-";
  return "";
}

struct KerasMapping {
  LayerMap layer;  // the named layers
  // The submodule of a separable convolution that holds the depthwise kernel (the pointwise one is
  // "pointwise" in both backbones that have them).
  std::string depthwise = "depthwise";
  // The modules of the auto-named Conv2D + BatchNormalization pairs, in Keras' creation order, and
  // the submodules that hold the convolution and the BatchNorm of each.
  std::vector<std::string> unnamed = {};
  std::string unnamed_conv = "conv", unnamed_bn = "bn";
};

const std::map<std::string, KerasMapping>& mappings() {
  static const std::map<std::string, KerasMapping> maps = {
      {"vgg16", {vgg16_layer}},
      {"densenet121", {densenet_layer}},
      {"densenet201", {densenet_layer}},
      {"resnet50v2", {resnet_v2_layer}},
      {"resnet152v2", {resnet_v2_layer}},
      // Xception's unnamed layers: the residual 1x1 convolutions of Keras' blocks 2, 3, 4 and 13.
      {"xception", {xception_layer, "conv1", {"block1", "block2", "block3", "block12"}, "skip", "skipbn"}},
      {"inception_resnet_v2", {inception_resnet_v2_layer, "depthwise", inception_resnet_v2_unnamed()}},
      {"nasnet_mobile", {nasnet_layer}},
  };
  return maps;
}

// A Keras weight in LibTorch's layout, with its parameter path below the layer's module.
std::pair<std::string, torch::Tensor> convert(const io::KerasWeight& w, const KerasMapping& mapping) {
  const auto& v = w.value;
  if (w.name == "kernel" && v.dim() == 4) return {"weight", v.permute({3, 2, 0, 1}).contiguous()};
  if (w.name == "kernel" && v.dim() == 2) return {"weight", v.t().contiguous()};
  if (w.name == "depthwise_kernel" && v.dim() == 4) {  // [kh, kw, in, multiplier] -> [in * multiplier, 1, kh, kw]
    return {mapping.depthwise + ".weight",
            v.permute({2, 3, 0, 1}).reshape({v.size(2) * v.size(3), 1, v.size(0), v.size(1)}).contiguous()};
  }
  if (w.name == "pointwise_kernel" && v.dim() == 4) return {"pointwise.weight", v.permute({3, 2, 0, 1}).contiguous()};
  if (w.name == "bias") return {"bias", v};
  if (w.name == "gamma") return {"weight", v};
  if (w.name == "beta") return {"bias", v};
  if (w.name == "moving_mean") return {"running_mean", v};
  if (w.name == "moving_variance") return {"running_var", v};
  return {"", v};
}

// Keras names layers created without a name "<class>_<n>" with a per-class counter ("conv2d",
// "conv2d_1", ... in TensorFlow 2; "conv2d_1", "conv2d_2", ... in Keras 2.0, which wrote the
// published weight files), so within one file the numbers give the order of creation. Returns the
// module path of each such layer, keyed by layer name ("" past the end of mapping.unnamed).
std::map<std::string, std::string> unnamed_layer_modules(const std::vector<io::KerasWeight>& weights,
                                                         const KerasMapping& mapping) {
  static const std::regex unnamed(R"((conv2d|batch_normalization)(?:_(\d+))?)");
  std::map<std::string, std::vector<std::pair<long, std::string>>> by_class;
  for (const auto& w : weights) {
    std::smatch m;
    if (!std::regex_match(w.layer, m, unnamed)) continue;
    auto& layers = by_class[m[1]];
    const std::pair<long, std::string> entry{m[2].matched ? std::stol(m[2]) : 0L, w.layer};
    if (std::find(layers.begin(), layers.end(), entry) == layers.end()) layers.push_back(entry);
  }
  std::map<std::string, std::string> modules;
  for (auto& [cls, layers] : by_class) {
    std::sort(layers.begin(), layers.end());
    const std::string& part = cls == "conv2d" ? mapping.unnamed_conv : mapping.unnamed_bn;
    for (size_t i = 0; i < layers.size(); ++i) {
      modules[layers[i].second] = i < mapping.unnamed.size() ? mapping.unnamed[i] + "." + part : "";
    }
  }
  return modules;
}

}  // namespace

std::vector<std::string> keras_h5_backbones() {
  std::vector<std::string> out;
  for (const auto& kv : mappings()) out.push_back(kv.first);
  return out;
}

io::TensorMap keras_to_state_dict(const std::string& backbone, const std::vector<io::KerasWeight>& weights) {
  auto it = mappings().find(backbone);
  if (it == mappings().end()) {
    std::string known;
    for (const auto& n : keras_h5_backbones()) known += (known.empty() ? "" : ", ") + n;
    HISTOCNN_FAIL("Keras .h5 weights can be read for {}, not for '{}'; convert its weights to safetensors with "
                  "this library's parameter names instead",
                  known, backbone);
  }
  const KerasMapping& mapping = it->second;
  const auto unnamed = unnamed_layer_modules(weights, mapping);
  io::TensorMap out;
  for (const auto& w : weights) {
    const auto found = unnamed.find(w.layer);
    const std::string module = found == unnamed.end() ? mapping.layer(w.layer) : found->second;
    const auto [param, value] = convert(w, mapping);
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
