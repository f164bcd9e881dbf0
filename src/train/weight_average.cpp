#include "histocnn/train/weight_average.h"

#include "histocnn/core/error.h"
#include "histocnn/models/weights.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace histocnn::train {

WeightAverage::WeightAverage(const models::Classifier& model, double decay) : decay_(decay) {
  HISTOCNN_CHECK(decay > 0 && decay < 1 && std::isfinite(decay),
                 "the weight average's decay must be in (0, 1) (e.g. 0.999), got {}", decay);
  torch::NoGradGuard no_grad;
  for (const auto& [name, tensor] : models::state_dict(*model)) {
    names_.push_back(name);
    pairs_.emplace_back(tensor, tensor.clone());
  }
}

double WeightAverage::next_factor() const {
  return std::min(decay_, (1.0 + static_cast<double>(updates_)) / (10.0 + static_cast<double>(updates_)));
}

void WeightAverage::update() {
  torch::NoGradGuard no_grad;
  const double d = next_factor();
  for (auto& [live, average] : pairs_) {
    if (at::isFloatingType(average.scalar_type())) {
      average.mul_(d).add_(live.to(average.scalar_type()), 1.0 - d);
    } else {
      average.copy_(live);
    }
  }
  ++updates_;
}

io::TensorMap WeightAverage::state() const {
  io::TensorMap out;
  for (size_t i = 0; i < pairs_.size(); ++i) out[names_[i]] = pairs_[i].second.to(torch::kCPU).clone();
  return out;
}

void WeightAverage::load(const io::TensorMap& state, int64_t updates) {
  HISTOCNN_CHECK(updates >= 0, "a weight average after {} updates cannot be restored", updates);
  HISTOCNN_CHECK(state.size() == pairs_.size(), "the saved weight average has {} tensors, the model {}",
                 state.size(), pairs_.size());
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < pairs_.size(); ++i) {
    auto it = state.find(names_[i]);
    HISTOCNN_CHECK(it != state.end(), "the saved weight average lacks '{}'", names_[i]);
    HISTOCNN_CHECK(it->second.sizes() == pairs_[i].second.sizes(), "the saved weight average's '{}' has another shape",
                   names_[i]);
    pairs_[i].second.copy_(it->second);
  }
  updates_ = updates;
}

void WeightAverage::swap() {
  torch::NoGradGuard no_grad;
  for (auto& [live, average] : pairs_) {
    auto kept = live.clone();
    live.copy_(average);
    average.copy_(kept);
  }
}

}  // namespace histocnn::train
