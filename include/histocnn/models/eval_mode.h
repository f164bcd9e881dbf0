#pragma once
// Evaluation mode for a scope: a module that was training is put in eval mode and back in training
// mode on exit (exceptions included); a module already in eval mode (a served model that requests
// read concurrently) is not written to at all.
//
//   {
//     histocnn::models::EvalModeScope eval(*model);
//     torch::NoGradGuard no_grad;
//     auto logits = model->forward(images);
//   }
#include <torch/nn/module.h>

namespace histocnn::models {

class EvalModeScope {
 public:
  explicit EvalModeScope(torch::nn::Module& module) : module_(module), was_training_(module.is_training()) {
    if (was_training_) module_.eval();
  }
  ~EvalModeScope() {
    if (was_training_) module_.train(true);
  }
  EvalModeScope(const EvalModeScope&) = delete;
  EvalModeScope& operator=(const EvalModeScope&) = delete;

 private:
  torch::nn::Module& module_;
  bool was_training_;
};

}  // namespace histocnn::models
