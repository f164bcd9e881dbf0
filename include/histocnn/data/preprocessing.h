#pragma once
// The one preprocessing object shared by training, evaluation, serving and Python.
//
//   histocnn::data::Preprocessing pre;            // 224x224, ImageNet mean/std
//   pre.image_size = 96;
//   torch::Tensor x = pre.to_tensor(rgb_patch);    // [3, 96, 96] float, normalised
//
// Patches smaller than `pad_to` (the real data has 50x1 border patches) are padded with white,
// the colour of background glass, to pad_to x pad_to before resizing, so they keep their scale.
// It is saved inside every model bundle (to_json / from_json) so a model always sees its inputs
// the way it was trained.
#include "histocnn/data/stain.h"

#include <opencv2/core.hpp>
#include <torch/types.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace histocnn::data {

/// What of a patch's colour the model sees, after stain normalisation: all of it (rgb), its grey
/// level (grey: OpenCV's 0.299 R + 0.587 G + 0.114 B on all three channels), or its haematoxylin
/// (haematoxylin_image in data/stain.h: the nuclei, without the eosin whose shade varies most
/// between laboratories).
enum class Colour { rgb, grey, haematoxylin };
/// "rgb" / "grey" / "haematoxylin"; throws std::invalid_argument naming the allowed values.
Colour parse_colour(const std::string& name);
std::string colour_name(Colour colour);

struct Preprocessing {
  int image_size = 224;
  int pad_to = 50;
  /// Microns per pixel of the patches the model was trained on (its scale; whole slides are tiled
  /// at it, pad_to pixels a side). 4.0: the Kaggle patches, 40x scans (0.25 um/px) downsampled 16 times.
  double mpp = 4.0;
  std::array<double, 3> mean = {0.485, 0.456, 0.406};
  std::array<double, 3> std = {0.229, 0.224, 0.225};
  /// Stain normalisation to the training reference (data/stain.h), applied by prepare() after
  /// padding; none when empty. With fit "slide", callers that know a patch's slide, patient or
  /// request fit stain_source() over the group and pass it to prepare().
  std::optional<StainNormaliser> stain;
  /// Applied by prepare() after stain normalisation; bundles written before the field are rgb.
  Colour colour = Colour::rgb;

  /// Throws std::invalid_argument naming the field when a value is out of range.
  void validate() const;

  /// RGB uint8 patch -> padded, stain-normalised (with the patch's own statistics), reduced to
  /// `colour`, resized uint8 patch (image_size x image_size).
  cv::Mat prepare(const cv::Mat& rgb) const;
  /// The same with the stain statistics of the patch's group (from stain_source); nullptr: the
  /// patch's own.
  cv::Mat prepare(const cv::Mat& rgb, const StainStats* stain_source) const;
  /// Stain statistics over a group of patches (a slide, a patient, one request) when `stain` fits
  /// per slide; nullopt otherwise (no normalisation, or per patch).
  std::optional<StainStats> stain_source(const std::vector<cv::Mat>& group) const;
  /// Prepared uint8 patch -> normalised CHW float tensor written into `out` ([3, S, S]).
  void normalise_into(const cv::Mat& prepared, torch::Tensor out) const;
  /// prepare + normalise: RGB uint8 patch -> [3, S, S] float tensor.
  torch::Tensor to_tensor(const cv::Mat& rgb) const;
  /// Pads a patch smaller than pad_to x pad_to with white; larger patches are returned unchanged.
  cv::Mat pad(const cv::Mat& rgb) const;

  std::string to_json() const;
  static Preprocessing from_json(const std::string& json);
};

/// The mean/std a backbone's published weights expect ("imagenet": torchvision's;
/// "inception": x/127.5 - 1, i.e. mean = std = 0.5, as TF-slim MobileNets and Keras use;
/// "caffe": 0..255 RGB minus the ImageNet mean pixel (123.68, 116.779, 103.939), no scaling).
Preprocessing preprocessing_for(const std::string& normalisation, int image_size);

}  // namespace histocnn::data
