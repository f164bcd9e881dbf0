#include "histocnn/models/torchscript.h"

#include "histocnn/core/error.h"

#include <torch/script.h>

namespace histocnn::models {

struct TorchScriptBackboneImpl::Script {
  torch::jit::Module module;
};

bool is_torchscript_backbone(const std::string& backbone_name) {
  return backbone_name.rfind(kTorchScriptPrefix, 0) == 0;
}

std::filesystem::path torchscript_file(const std::string& backbone_name) {
  HISTOCNN_CHECK(is_torchscript_backbone(backbone_name), "'{}' does not name a TorchScript backbone ({}<file>)",
                 backbone_name, kTorchScriptPrefix);
  return backbone_name.substr(std::string(kTorchScriptPrefix).size());
}

namespace {

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// Module parameter names may not contain dots.
std::string flat_name(std::string name) {
  for (size_t at = name.find('.'); at != std::string::npos; at = name.find('.', at + 2)) name.replace(at, 1, "__");
  return name;
}

}  // namespace

TorchScriptBackboneImpl::TorchScriptBackboneImpl(const std::filesystem::path& file)
    : script_(std::make_unique<Script>()), file_(std::filesystem::absolute(file).lexically_normal()) {
  HISTOCNN_CHECK_FOUND(std::filesystem::is_regular_file(file_),
                    "TorchScript backbone '{}' does not exist; save one with torch.jit.save(torch.jit.script(m), path)",
                    file_.string());
  try {
    script_->module = torch::jit::load(file_.string(), torch::kCPU);
  } catch (const c10::Error& e) {
    HISTOCNN_FAIL("'{}' is not a TorchScript module (save one with torch.jit.save): {}", file_.string(),
                  first_line(e.what()));
  }
  for (const auto& p : script_->module.named_parameters(/*recurse=*/true)) {
    register_parameter(flat_name(p.name), p.value, p.value.requires_grad());
  }
  for (const auto& b : script_->module.named_buffers(/*recurse=*/true)) register_buffer(flat_name(b.name), b.value);

  script_->module.eval();
  torch::NoGradGuard no_grad;
  torch::Tensor probe;
  try {
    probe = compute_features(torch::zeros({1, 3, 96, 96}));
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const std::exception& e) {
    HISTOCNN_FAIL("TorchScript backbone '{}' fails on a 1x3x96x96 input: {}", file_.string(), first_line(e.what()));
  }
  channels_ = probe.size(1);
}

TorchScriptBackboneImpl::~TorchScriptBackboneImpl() = default;

torch::Tensor TorchScriptBackboneImpl::compute_features(torch::Tensor x) {
  auto out = script_->module.forward({x});
  HISTOCNN_CHECK(out.isTensor() && out.toTensor().dim() == 4,
                 "TorchScript backbone '{}' must return one feature map [N, C, h, w]; it returned {}",
                 file_.string(), out.isTensor() ? fmt::format("a {}-D tensor", out.toTensor().dim()) : out.tagKind());
  return out.toTensor();
}

std::string TorchScriptBackboneImpl::name() const { return kTorchScriptPrefix + file_.string(); }

void TorchScriptBackboneImpl::train(bool on) {
  BackboneImpl::train(on);
  script_->module.train(on);
}

}  // namespace histocnn::models
