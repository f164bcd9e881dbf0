#pragma once
// Bring your own backbone: a TorchScript module (saved with torch.jit.save) used as a backbone.
// Its forward must map [N, 3, H, W] images to a feature map [N, C, h, w]; its parameters and
// buffers become this backbone's, so it trains, freezes and is saved in model bundles like a
// built-in one (parameter names have their dots replaced by "__").
//
//   # Python: trunk = torch.nn.Sequential(*list(torchvision.models.resnet34().children())[:-2])
//   #         torch.jit.script(trunk.eval()).save("trunk.pt")
//   auto backbone = histocnn::models::make_backbone("torchscript:trunk.pt");
//   histocnn train --backbone torchscript:trunk.pt --unfreeze ...
//
// A model bundle with such a backbone keeps a copy of the module file (backbone.pt), so the bundle
// can be moved and served without the original file.
#include "histocnn/models/backbone.h"

#include <filesystem>
#include <memory>
#include <string>

namespace histocnn::models {

/// The prefix that names a TorchScript backbone: "torchscript:<path to the .pt file>".
inline constexpr const char* kTorchScriptPrefix = "torchscript:";

/// True when `backbone_name` is "torchscript:<path>".
bool is_torchscript_backbone(const std::string& backbone_name);
/// The copy of a TorchScript backbone's module file that a model bundle keeps beside model.json.
inline constexpr const char* kBundleTorchScriptFile = "backbone.pt";

/// The path in "torchscript:<path>".
std::filesystem::path torchscript_file(const std::string& backbone_name);

class TorchScriptBackboneImpl : public BackboneImpl {
 public:
  /// Loads the module (on the CPU) and runs it once on a 1x3x96x96 input to learn its feature
  /// channels. Throws std::invalid_argument naming the file when it is missing, not TorchScript,
  /// or does not return a 4-D feature map.
  explicit TorchScriptBackboneImpl(const std::filesystem::path& file);
  ~TorchScriptBackboneImpl() override;
  torch::Tensor compute_features(torch::Tensor x) override;
  int64_t feature_channels() const override { return channels_; }
  std::string name() const override;
  void train(bool on = true) override;

 private:
  struct Script;
  std::unique_ptr<Script> script_;
  std::filesystem::path file_;
  int64_t channels_ = 0;
};

}  // namespace histocnn::models
