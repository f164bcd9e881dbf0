#include "histocnn/models/complexity.h"

#include "histocnn/core/error.h"
#include "histocnn/models/eval_mode.h"

#include <ATen/record_function.h>
#include <torch/torch.h>

#include <cstring>

namespace histocnn::models {

namespace {

// RecordFunction callbacks are plain function pointers, so the running total lives here.
thread_local int64_t* t_macs = nullptr;

// Inputs are visible only in the start callback; the output only in the end callback.
struct MacContext : at::ObserverContext {
  int64_t macs_per_output = 0;
};

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  const char* name = fn.name();
  const bool conv = std::strcmp(name, "aten::convolution") == 0;
  const bool linear = std::strcmp(name, "aten::linear") == 0;
  if (!conv && !linear) return nullptr;
  auto inputs = fn.inputs();
  if (inputs.size() < 2 || !inputs[1].isTensor()) return nullptr;
  const auto& weight = inputs[1].toTensor();
  auto ctx = std::make_unique<MacContext>();
  // conv weight [Cout, Cin/groups, kh, kw]: each output element costs Cin/groups*kh*kw MACs;
  // linear weight [out, in]: each output element costs `in` MACs.
  ctx->macs_per_output = weight.numel() / weight.size(0);
  return ctx;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext* ctx) {
  if (!ctx || !t_macs) return;
  const auto& outputs = fn.outputs();
  if (outputs.empty() || !outputs[0].isTensor()) return;
  *t_macs += outputs[0].toTensor().numel() * static_cast<MacContext*>(ctx)->macs_per_output;
}

}  // namespace

int64_t count_macs(BackboneImpl& backbone, int64_t image_size) {
  HISTOCNN_CHECK(image_size >= 1, "count_macs needs a positive image size, got {}", image_size);
  int64_t macs = 0;
  EvalModeScope eval_mode(backbone);
  torch::NoGradGuard no_grad;
  auto handle = at::addThreadLocalCallback(at::RecordFunctionCallback(on_start, on_end)
                                               .needsInputs(true)
                                               .needsOutputs(true)
                                               .scopes({at::RecordScope::FUNCTION}));
  t_macs = &macs;
  try {
    torch::Device device(torch::kCPU);
    for (const auto& p : backbone.parameters()) {
      device = p.device();
      break;
    }
    backbone.forward_features(torch::zeros({1, 3, image_size, image_size}, torch::TensorOptions().device(device)));
  } catch (...) {
    t_macs = nullptr;
    at::removeCallback(handle);
    throw;
  }
  t_macs = nullptr;
  at::removeCallback(handle);
  return macs;
}

}  // namespace histocnn::models
