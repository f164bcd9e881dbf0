#include "histocnn/models/feature_layers.h"

#include "histocnn/core/error.h"
#include "histocnn/models/eval_mode.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <numeric>
#include <unordered_set>

namespace histocnn::models {

namespace {

// A listing or a cut in progress on this thread: what BackboneImpl::tap reports to.
struct TapState {
  std::string target;  ///< the layer to cut out ("" when only listing)
  torch::Tensor captured;
  std::vector<FeatureLayer> seen;  ///< feature-map layers in forward order
  std::unordered_set<std::string> names;
};

thread_local TapState* t_tap = nullptr;

// Installs a state for the duration of one forward pass, and removes it even when the pass throws.
class TapScope {
 public:
  explicit TapScope(TapState& state) : previous_(t_tap) { t_tap = &state; }
  ~TapScope() { t_tap = previous_; }
  TapScope(const TapScope&) = delete;
  TapScope& operator=(const TapScope&) = delete;

 private:
  TapState* previous_;
};

torch::Device device_of(BackboneImpl& backbone) {
  for (const auto& p : backbone.parameters()) return p.device();
  for (const auto& b : backbone.buffers()) return b.device();
  return torch::kCPU;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), size_t{0});
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

[[noreturn]] void fail_unknown_layer(BackboneImpl& backbone, const std::string& layer,
                                     const std::vector<FeatureLayer>& seen) {
  std::vector<std::string> names;
  for (const auto& l : seen) names.push_back(l.name);
  bool is_module = false;
  for (const auto& m : backbone.named_modules("", /*include_self=*/false)) is_module = is_module || m.key() == layer;
  const auto close = close_names(layer, names);
  const std::string what =
      is_module ? fmt::format("'{}' is a module inside a block of backbone {}, not one of the layers whose output "
                              "can be mapped (the blocks and stem layers)", layer, backbone.name())
                : fmt::format("backbone {} has no layer '{}'", backbone.name(), layer);
  HISTOCNN_FAIL("{}; {}; {} layers in all, from {} to {} (list them with `histocnn explain --list-layers` or "
                "Predictor.explain_layers())",
                what, close.empty() ? "no name is close" : fmt::format("close names: {}", fmt::join(close, ", ")),
                names.size(), names.empty() ? "-" : names.front(), names.empty() ? "-" : names.back());
}

}  // namespace

bool BackboneImpl::tapping() { return t_tap != nullptr; }

torch::Tensor BackboneImpl::tap(const std::string& path, torch::Tensor x) {
  TapState* state = t_tap;
  if (state == nullptr || x.dim() != 4 || !state->names.insert(path).second) return x;
  state->seen.push_back({path, x.size(1), x.size(2), x.size(3)});
  if (state->captured.defined() || path != state->target) return x;
  // The layer's output becomes a leaf of its own (a copy: code after this point may overwrite
  // the original in place), and the rest of the pass records gradients from it.
  state->captured = x.detach().clone().requires_grad_(true);
  torch::autograd::GradMode::set_enabled(true);
  return state->captured.clone();
}

torch::Tensor BackboneImpl::forward_tapped(torch::nn::SequentialImpl& seq, const std::string& path, torch::Tensor x,
                                           bool tap_whole) {
  if (!tapping()) return seq.forward(std::move(x));
  const auto children = seq.named_children();
  HISTOCNN_CHECK(children.size() == seq.size(), "internal: the Sequential '{}' holds modules it did not register",
                 path);
  size_t i = 0;
  for (auto& module : seq) {
    const std::string child = path + "." + children[i++].key();
    if (auto* inner = module.ptr()->as<torch::nn::SequentialImpl>()) {
      x = forward_tapped(*inner, child, std::move(x));
    } else {
      x = tap(child, module.forward(std::move(x)));
    }
  }
  return tap_whole ? tap(path, std::move(x)) : x;
}

std::vector<FeatureLayer> feature_layers(BackboneImpl& backbone, int64_t image_size) {
  HISTOCNN_CHECK(image_size >= 1, "image_size must be positive to list a backbone's layers, got {}", image_size);
  TapState state;
  {
    EvalModeScope eval_mode(backbone);
    torch::NoGradGuard no_grad;
    TapScope scope(state);
    backbone.forward_features(torch::zeros({1, 3, image_size, image_size}, torch::TensorOptions().device(device_of(backbone))));
  }
  return state.seen;
}

LayerForward forward_from_layer(BackboneImpl& backbone, const torch::Tensor& x, const std::string& layer) {
  HISTOCNN_CHECK(!layer.empty(), "name a layer of backbone {} (its last feature map is '{}')", backbone.name(),
                 backbone.feature_layer());
  TapState state;
  state.target = layer;
  LayerForward out;
  {
    torch::NoGradGuard no_grad;  // also puts the caller's grad mode back after the cut enabled it
    TapScope scope(state);
    out.features = backbone.forward_features(x);
  }
  if (!state.captured.defined()) fail_unknown_layer(backbone, layer, state.seen);
  out.layer_output = state.captured;
  return out;
}

std::vector<std::string> close_names(const std::string& name, const std::vector<std::string>& names, size_t limit) {
  const size_t furthest = std::max<size_t>(3, name.size() / 2);
  std::vector<std::pair<size_t, size_t>> ranked;  // (distance, position)
  for (size_t i = 0; i < names.size(); ++i) {
    const size_t d = edit_distance(name, names[i]);
    if (d <= furthest) ranked.emplace_back(d, i);
  }
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  for (size_t i = 0; i < ranked.size() && out.size() < limit; ++i) out.push_back(names[ranked[i].second]);
  return out;
}

}  // namespace histocnn::models
