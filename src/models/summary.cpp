#include "histocnn/models/summary.h"

#include "histocnn/core/error.h"
#include "histocnn/models/classifier.h"
#include "histocnn/models/eval_mode.h"

#include <ATen/record_function.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <unordered_map>

namespace histocnn::models {

namespace {

// The ATen calls that Keras makes a layer of, by Keras class. Calls not listed are not layers.
const std::map<std::string, std::string>& layer_types() {
  static const std::map<std::string, std::string> types = {
      {"aten::conv2d", "Conv2D"},
      {"aten::convolution", "Conv2D"},
      {"aten::_convolution", "Conv2D"},
      {"aten::batch_norm", "BatchNormalization"},
      {"aten::linear", "Dense"},
      {"aten::max_pool2d", "MaxPooling2D"},
      {"aten::max_pool2d_with_indices", "MaxPooling2D"},
      {"aten::avg_pool2d", "AveragePooling2D"},
      {"aten::adaptive_avg_pool2d", "GlobalAveragePooling2D"},
      {"aten::mean", "GlobalAveragePooling2D"},
      {"aten::relu", "Activation"},
      {"aten::relu_", "Activation"},
      {"aten::relu6", "Activation"},
      {"aten::hardtanh", "Activation"},
      {"aten::hardtanh_", "Activation"},
      {"aten::sigmoid", "Activation"},
      {"aten::sigmoid_", "Activation"},
      {"aten::silu", "Activation"},
      {"aten::silu_", "Activation"},
      {"aten::hardswish", "Activation"},
      {"aten::hardswish_", "Activation"},
      {"aten::hardsigmoid", "Activation"},
      {"aten::hardsigmoid_", "Activation"},
      {"aten::tanh", "Activation"},
      {"aten::tanh_", "Activation"},
      {"aten::gelu", "Activation"},
      {"aten::elu", "Activation"},
      {"aten::elu_", "Activation"},
      {"aten::leaky_relu", "Activation"},
      {"aten::leaky_relu_", "Activation"},
      {"aten::add", "Add"},
      {"aten::add_", "Add"},
      {"aten::mul", "Multiply"},
      {"aten::mul_", "Multiply"},
      {"aten::cat", "Concatenate"},
      {"aten::constant_pad_nd", "ZeroPadding2D"},
      {"aten::pad", "ZeroPadding2D"},
      {"aten::dropout", "Dropout"},
      {"aten::dropout_", "Dropout"},
      {"aten::feature_dropout", "Dropout"},
  };
  return types;
}

// Keras' default layer names: the class in snake case.
std::string snake_name(const std::string& type) {
  static const std::map<std::string, std::string> names = {
      {"MaxPooling2D", "max_pooling2d"},   {"AveragePooling2D", "average_pooling2d"},
      {"GlobalAveragePooling2D", "global_average_pooling2d"}, {"Activation", "activation"},
      {"Add", "add"},                      {"Multiply", "multiply"},
      {"Concatenate", "concatenate"},      {"ZeroPadding2D", "zero_padding2d"},
      {"Dropout", "dropout"},              {"Conv2D", "conv2d"},
      {"DepthwiseConv2D", "depthwise_conv2d"}, {"BatchNormalization", "batch_normalization"},
      {"Dense", "dense"}};
  auto it = names.find(type);
  return it == names.end() ? type : it->second;
}

struct Call {
  std::string type;
  std::vector<const c10::TensorImpl*> tensors;  // the backbone's parameters and buffers it read
  std::vector<int64_t> output;                  // the full output shape, batch included
  bool depthwise = false, pointwise = false;    // convolutions: groups == input channels; 1x1 kernel
  bool pool_padding = false;                    // a -inf pad: the "same" padding of a max pool
};

struct Trace {
  std::unordered_map<const c10::TensorImpl*, int> known;  // the backbone's tensors (any value)
  std::vector<Call> calls;
  int depth = 0;
};

// RecordFunction callbacks are plain function pointers, so the trace being filled lives here.
thread_local Trace* t_trace = nullptr;

struct CallContext : at::ObserverContext {
  int64_t index = -1;  // into Trace::calls, for an outermost call that is a layer
};

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  // A context for every call, so that every start has its end and the depth stays right.
  auto ctx = std::make_unique<CallContext>();
  if (!t_trace) return ctx;
  if (++t_trace->depth != 1) return ctx;  // inside another call: part of that layer
  const auto& types = layer_types();
  auto it = types.find(fn.name());
  if (it == types.end()) return ctx;
  Call call;
  call.type = it->second;
  const auto inputs = fn.inputs();
  for (size_t i = 1; i < inputs.size(); ++i) {
    if (!inputs[i].isTensor()) continue;
    const auto& t = inputs[i].toTensor();
    if (t.defined() && t_trace->known.count(t.unsafeGetTensorImpl())) call.tensors.push_back(t.unsafeGetTensorImpl());
  }
  if (call.type == "Conv2D" && inputs.size() >= 2 && inputs[0].isTensor() && inputs[1].isTensor()) {
    const auto& x = inputs[0].toTensor();
    const auto& w = inputs[1].toTensor();
    if (w.dim() == 4 && x.dim() == 4) {
      call.depthwise = w.size(1) == 1 && x.size(1) > 1 && w.size(0) % x.size(1) == 0;
      call.pointwise = w.size(2) == 1 && w.size(3) == 1;
    }
    if (call.depthwise) call.type = "DepthwiseConv2D";
  }
  if (call.type == "ZeroPadding2D" && inputs.size() >= 3 && inputs[2].isScalar()) {
    const double value = inputs[2].toScalar().toDouble();
    call.pool_padding = std::isinf(value) && value < 0;
  }
  ctx->index = static_cast<int64_t>(t_trace->calls.size());
  t_trace->calls.push_back(std::move(call));
  return ctx;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext* ctx) {
  if (!t_trace) return;
  --t_trace->depth;
  auto* c = static_cast<CallContext*>(ctx);
  if (!c || c->index < 0) return;
  const auto& outputs = fn.outputs();
  if (!outputs.empty() && outputs[0].isTensor()) {
    const auto sizes = outputs[0].toTensor().sizes();
    t_trace->calls[c->index].output.assign(sizes.begin(), sizes.end());
  }
}

// The module path of a parameter or buffer: its name without the last part (TorchScript
// backbones join the parts with "__").
std::string module_of(const std::string& name) {
  const auto dot = name.rfind('.');
  if (dot != std::string::npos) return name.substr(0, dot);
  const auto flat = name.rfind("__");
  return flat == std::string::npos ? std::string() : name.substr(0, flat);
}

// Keras' order: channels last, no batch dimension.
std::vector<int64_t> keras_shape(const std::vector<int64_t>& full) {
  if (full.size() == 4) return {full[2], full[3], full[1]};
  if (full.size() <= 1) return {};
  return std::vector<int64_t>(full.begin() + 1, full.end());
}

struct Traced {
  std::vector<LayerInfo> layers;
  std::vector<int64_t> features;  // the final feature map, [1, C, h, w]
};

Traced trace_backbone(BackboneImpl& backbone, int64_t image_size) {
  HISTOCNN_CHECK(image_size >= 1, "image_size must be positive to list a backbone's layers, got {}", image_size);
  std::unordered_map<const c10::TensorImpl*, std::string> names;
  std::unordered_map<const c10::TensorImpl*, torch::Tensor> tensors;
  std::unordered_map<const c10::TensorImpl*, bool> is_parameter;
  for (const auto& p : backbone.named_parameters()) {
    names[p.value().unsafeGetTensorImpl()] = p.key();
    tensors[p.value().unsafeGetTensorImpl()] = p.value();
    is_parameter[p.value().unsafeGetTensorImpl()] = true;
  }
  for (const auto& b : backbone.named_buffers()) {
    names[b.value().unsafeGetTensorImpl()] = b.key();
    tensors[b.value().unsafeGetTensorImpl()] = b.value();
    is_parameter[b.value().unsafeGetTensorImpl()] = false;
  }
  Trace trace;
  for (const auto& kv : names) trace.known[kv.first] = 0;

  torch::Device device(torch::kCPU);
  for (const auto& p : backbone.parameters()) {
    device = p.device();
    break;
  }
  torch::Tensor maps;
  {
    EvalModeScope eval_mode(backbone);
    torch::NoGradGuard no_grad;
    auto input = torch::zeros({1, 3, image_size, image_size}, torch::TensorOptions().device(device));
    t_trace = &trace;
    auto handle = at::addThreadLocalCallback(at::RecordFunctionCallback(on_start, on_end)
                                                 .needsInputs(true)
                                                 .needsOutputs(true)
                                                 .scopes({at::RecordScope::FUNCTION}));
    try {
      maps = backbone.forward_features(input);
    } catch (...) {
      at::removeCallback(handle);
      t_trace = nullptr;
      throw;
    }
    at::removeCallback(handle);
    t_trace = nullptr;
  }

  // Calls into layers: a -inf pad joins the max pool after it ("same" pooling is one Keras layer);
  // a depthwise and a 1x1 convolution that are the only weighted children of one module are one
  // SeparableConv2D; an activation joins the convolution or dense layer before it where the Keras
  // model has the activation inside those layers.
  const bool fuse_activations = backbone.activations_in_layers();
  auto path_of = [&](const Call& call) {
    for (const auto* t : call.tensors) return module_of(names.at(t));
    return std::string();
  };
  auto weighted_children = [&](const std::string& parent) {
    std::map<std::string, int> children;
    for (const auto& kv : names) {
      const auto module = module_of(kv.second);
      if (module.size() > parent.size() && module.compare(0, parent.size(), parent) == 0 &&
          (module[parent.size()] == '.' || module.compare(parent.size(), 2, "__") == 0)) {
        children[module] = 1;
      }
    }
    return children.size();
  };
  struct Pending {
    Call call;
    std::string path;
  };
  std::vector<Pending> merged;
  for (size_t i = 0; i < trace.calls.size(); ++i) {
    Call call = trace.calls[i];
    std::string path = path_of(call);
    if (!merged.empty()) {
      auto& last = merged.back();
      if (last.call.type == "ZeroPadding2D" && last.call.pool_padding && call.type == "MaxPooling2D") {
        last = {call, path};
        continue;
      }
      if (last.call.type == "DepthwiseConv2D" && call.type == "Conv2D" && call.pointwise && !path.empty()) {
        const auto parent = module_of(last.path);
        if (!parent.empty() && parent == module_of(path) && weighted_children(parent) == 2) {
          last.call.type = "SeparableConv2D";
          last.call.tensors.insert(last.call.tensors.end(), call.tensors.begin(), call.tensors.end());
          last.call.output = call.output;
          last.path = parent;
          continue;
        }
      }
      if (fuse_activations && call.type == "Activation" && (last.call.type == "Conv2D" || last.call.type == "Dense")) {
        continue;
      }
    }
    merged.push_back({std::move(call), std::move(path)});
  }

  Traced out;
  out.features.assign(maps.sizes().begin(), maps.sizes().end());
  std::map<std::string, int> counters;
  for (auto& m : merged) {
    LayerInfo layer;
    layer.type = m.call.type;
    if (!m.path.empty()) {
      layer.name = m.path;
    } else {
      const auto base = snake_name(layer.type);
      const int n = counters[base]++;
      layer.name = n == 0 ? base : fmt::format("{}_{}", base, n);
    }
    layer.output_shape = keras_shape(m.call.output);
    for (const auto* t : m.call.tensors) {
      if (std::find(layer.weights.begin(), layer.weights.end(), names.at(t)) != layer.weights.end()) continue;
      layer.weights.push_back(names.at(t));
      const auto& tensor = tensors.at(t);
      if (!tensor.is_floating_point()) continue;
      layer.params += tensor.numel();
      if (is_parameter.at(t) && tensor.requires_grad()) layer.trainable_params += tensor.numel();
    }
    out.layers.push_back(std::move(layer));
  }
  return out;
}

// A head layer: the parameters and floating-point buffers of one module.
LayerInfo module_layer(const std::string& name, const std::string& type, const torch::nn::Module& module,
                       std::vector<int64_t> shape) {
  LayerInfo layer{name, type, std::move(shape)};
  for (const auto& p : module.named_parameters()) {
    layer.weights.push_back(name + "." + p.key());
    layer.params += p.value().numel();
    if (p.value().requires_grad()) layer.trainable_params += p.value().numel();
  }
  for (const auto& b : module.named_buffers()) {
    if (!b.value().is_floating_point()) continue;
    layer.weights.push_back(name + "." + b.key());
    layer.params += b.value().numel();
  }
  return layer;
}

void add_dense_head(std::vector<LayerInfo>& rows, const std::string& prefix, const DenseHeadImpl& head) {
  const auto& o = head.options;
  rows.push_back(module_layer(prefix + "fc1", "Dense", *head.fc1, {o.hidden1()}));
  rows.push_back(module_layer(prefix + "dropout1", "Dropout", *head.dropout1, {o.hidden1()}));
  rows.push_back(module_layer(prefix + "fc2", "Dense", *head.fc2, {o.hidden2()}));
  rows.push_back(module_layer(prefix + "dropout2", "Dropout", *head.dropout2, {o.hidden2()}));
  if (head.bn) rows.push_back(module_layer(prefix + "bn", "BatchNormalization", *head.bn, {o.hidden2()}));
  rows.push_back(module_layer(prefix + "logits", "Dense", *head.logits, {o.num_classes()}));
}

std::string thousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "(None";
  for (auto d : shape) text += ", " + std::to_string(d);
  return text + ")";
}

}  // namespace

std::vector<LayerInfo> backbone_layers(BackboneImpl& backbone, int64_t image_size) {
  return trace_backbone(backbone, image_size).layers;
}

ModelSummary summarize(ClassifierImpl& model, int64_t image_size) {
  HISTOCNN_CHECK(image_size >= 1, "image_size must be positive for a model summary, got {}", image_size);
  ModelSummary s;
  s.backbone = model.options().backbone();
  s.head = model.options().head();
  s.image_size = image_size;
  s.layers.push_back({"input", "InputLayer", {image_size, image_size, 3}});
  auto traced = trace_backbone(*model.backbone(), image_size);
  for (auto& layer : traced.layers) {
    for (auto& w : layer.weights) w = "backbone." + w;
    s.layers.push_back(std::move(layer));
  }
  const auto& f = traced.features;  // [1, C, h, w]
  const int64_t channels = f.size() == 4 ? f[1] : model.backbone()->feature_channels();
  const auto& head = model.head();
  if (auto* dense = head->as<DenseHeadImpl>()) {
    s.layers.push_back({"head.pool", "GlobalAveragePooling2D", {channels}});
    add_dense_head(s.layers, "head.", *dense);
  } else if (auto* lstm = head->as<LSTMHeadImpl>()) {
    if (lstm->options.pooled()) {
      s.layers.push_back({"head.pool", "GlobalAveragePooling2D", {channels}});
      s.layers.push_back(module_layer("head.embedding", "Dense", *lstm->embedding, {lstm->options.units()}));
      s.layers.push_back({"head.sequence", "Reshape", {1, lstm->options.units()}});
    } else {
      const int64_t steps = f.size() == 4 ? f[2] * f[3] : 0;
      s.layers.push_back({"head.sequence", "Reshape", {steps, channels}});
    }
    s.layers.push_back(module_layer("head.lstm", "LSTM", *lstm->lstm, {lstm->options.units()}));
    add_dense_head(s.layers, "head.dense.", *lstm->dense);
  }

  for (const auto& p : model.parameters()) {
    s.total_params += p.numel();
    if (p.requires_grad()) s.trainable_params += p.numel();
  }
  for (const auto& b : model.buffers()) {
    if (b.is_floating_point()) s.total_params += b.numel();
  }
  s.non_trainable_params = s.total_params - s.trainable_params;

  // Weights that no layer read (none in the built-in models) still count, as one row that says so.
  int64_t listed = 0, listed_trainable = 0;
  for (const auto& layer : s.layers) {
    listed += layer.params;
    listed_trainable += layer.trainable_params;
  }
  if (listed != s.total_params || listed_trainable != s.trainable_params) {
    LayerInfo rest{"(not read by any layer)", "-", {}};
    rest.params = s.total_params - listed;
    rest.trainable_params = s.trainable_params - listed_trainable;
    s.layers.push_back(std::move(rest));
  }
  return s;
}

std::string format_summary(const ModelSummary& s) {
  std::vector<std::array<std::string, 4>> rows;
  for (const auto& layer : s.layers) {
    const std::string trainable = layer.params == 0 ? "" : layer.trainable_params > 0 ? "Y" : "N";
    rows.push_back({layer.name + " (" + layer.type + ")",
                    layer.type == "InputLayer" ? "[" + shape_text(layer.output_shape) + "]" : shape_text(layer.output_shape),
                    std::to_string(layer.params), trainable});
  }
  const std::array<std::string, 4> header = {"Layer (type)", "Output Shape", "Param #", "Trainable"};
  std::array<size_t, 4> width{};
  for (size_t c = 0; c < 4; ++c) {
    width[c] = header[c].size();
    for (const auto& r : rows) width[c] = std::max(width[c], r[c].size());
  }
  const size_t line = 1 + width[0] + 3 + width[1] + 3 + width[2] + 3 + width[3];
  auto row_text = [&](const std::array<std::string, 4>& r) {
    auto text = fmt::format(" {:<{}}   {:<{}}   {:<{}}   {}", r[0], width[0], r[1], width[1], r[2], width[2], r[3]);
    return text.erase(text.find_last_not_of(' ') + 1) + "\n";
  };
  std::string out = fmt::format("Model: \"{}_{}\" (input {}x{})\n", backbone_label(s.backbone), s.head, s.image_size,
                                s.image_size);
  out += std::string(line, '_') + "\n";
  out += row_text(header);
  out += std::string(line, '=') + "\n";
  for (const auto& r : rows) out += row_text(r);
  out += std::string(line, '=') + "\n";
  out += "Total params: " + thousands(s.total_params) + "\n";
  out += "Trainable params: " + thousands(s.trainable_params) + "\n";
  out += "Non-trainable params: " + thousands(s.non_trainable_params) + "\n";
  out += std::string(line, '_') + "\n";
  return out;
}

}  // namespace histocnn::models
