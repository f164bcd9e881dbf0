#include "histocnn/data/preprocessing.h"

#include "histocnn/core/error.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

namespace histocnn::data {

Colour parse_colour(const std::string& name) {
  if (name == "rgb") return Colour::rgb;
  if (name == "grey") return Colour::grey;
  if (name == "haematoxylin") return Colour::haematoxylin;
  HISTOCNN_FAIL("unknown colour input '{}'; use rgb, grey or haematoxylin", name);
}

std::string colour_name(Colour colour) {
  switch (colour) {
    case Colour::grey: return "grey";
    case Colour::haematoxylin: return "haematoxylin";
    case Colour::rgb: break;
  }
  return "rgb";
}

void Preprocessing::validate() const {
  HISTOCNN_CHECK(image_size >= 8 && image_size <= 4096, "preprocessing.image_size must be in [8, 4096], got {}",
                 image_size);
  HISTOCNN_CHECK(pad_to >= 0 && pad_to <= 4096, "preprocessing.pad_to must be in [0, 4096], got {}", pad_to);
  HISTOCNN_CHECK(mpp > 0 && mpp <= 1000, "preprocessing.mpp (microns per pixel) must be in (0, 1000], got {}", mpp);
  for (int c = 0; c < 3; ++c) {
    HISTOCNN_CHECK(std[c] > 0, "preprocessing.std[{}] must be positive, got {}", c, std[c]);
  }
}

cv::Mat Preprocessing::pad(const cv::Mat& rgb) const {
  if (rgb.rows >= pad_to && rgb.cols >= pad_to) return rgb;
  cv::Mat out;
  cv::copyMakeBorder(rgb, out, 0, std::max(0, pad_to - rgb.rows), 0, std::max(0, pad_to - rgb.cols),
                     cv::BORDER_CONSTANT, cv::Scalar(255, 255, 255));
  return out;
}

cv::Mat Preprocessing::prepare(const cv::Mat& rgb) const { return prepare(rgb, nullptr); }

std::optional<StainStats> Preprocessing::stain_source(const std::vector<cv::Mat>& group) const {
  if (!stain || stain->fit_mode() != StainFit::slide || group.empty()) return std::nullopt;
  return stain->source_stats(group);
}

cv::Mat Preprocessing::prepare(const cv::Mat& rgb, const StainStats* stain_source) const {
  HISTOCNN_CHECK(rgb.type() == CV_8UC3 && !rgb.empty(), "preprocessing expects a non-empty RGB uint8 image");
  cv::Mat padded = pad(rgb);
  // White padding counts in no stain statistic and stays white, so padding before or after is the same.
  if (stain) padded = stain_source ? stain->normalise(padded, *stain_source) : stain->normalise(padded);
  if (colour == Colour::grey) {
    // Into new images: `padded` may still be the caller's patch (the dataset's cache).
    cv::Mat grey, out;
    cv::cvtColor(padded, grey, cv::COLOR_RGB2GRAY);
    cv::cvtColor(grey, out, cv::COLOR_GRAY2RGB);
    padded = out;
  } else if (colour == Colour::haematoxylin) {
    padded = haematoxylin_image(padded);
  }
  if (padded.rows == image_size && padded.cols == image_size) return padded;
  cv::Mat resized;
  cv::resize(padded, resized, cv::Size(image_size, image_size), 0, 0, cv::INTER_LINEAR);
  return resized;
}

void Preprocessing::normalise_into(const cv::Mat& prepared, torch::Tensor out) const {
  const int s = image_size;
  HISTOCNN_CHECK(prepared.rows == s && prepared.cols == s && prepared.type() == CV_8UC3,
                 "normalise_into expects a prepared {}x{} RGB patch", s, s);
  HISTOCNN_CHECK(out.is_contiguous() && out.scalar_type() == torch::kFloat32 && out.numel() == 3 * s * s,
                 "normalise_into expects a contiguous float tensor of 3x{}x{}", s, s);
  float* dst = out.data_ptr<float>();
  float scale[3], shift[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = static_cast<float>(1.0 / (255.0 * std[c]));
    shift[c] = static_cast<float>(-mean[c] / std[c]);
  }
  const int64_t plane = static_cast<int64_t>(s) * s;
  for (int y = 0; y < s; ++y) {
    const uint8_t* row = prepared.ptr<uint8_t>(y);
    for (int x = 0; x < s; ++x) {
      const int64_t o = static_cast<int64_t>(y) * s + x;
      for (int c = 0; c < 3; ++c) dst[c * plane + o] = row[3 * x + c] * scale[c] + shift[c];
    }
  }
}

torch::Tensor Preprocessing::to_tensor(const cv::Mat& rgb) const {
  auto out = torch::empty({3, image_size, image_size}, torch::kFloat32);
  normalise_into(prepare(rgb), out);
  return out;
}

std::string Preprocessing::to_json() const {
  nlohmann::json j = {{"image_size", image_size}, {"pad_to", pad_to}, {"mpp", mpp}, {"mean", mean}, {"std", std}};
  if (stain) j["stain"] = nlohmann::json::parse(stain->to_json());
  j["colour"] = colour_name(colour);
  return j.dump();
}

Preprocessing Preprocessing::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    HISTOCNN_FAIL("preprocessing is not valid JSON: {}", e.what());
  }
  Preprocessing p;
  try {
    p.image_size = j.at("image_size").get<int>();
    p.pad_to = j.value("pad_to", p.pad_to);
    p.mpp = j.value("mpp", p.mpp);  // bundles written before the field: the Kaggle scale
    p.mean = j.at("mean").get<std::array<double, 3>>();
    p.std = j.at("std").get<std::array<double, 3>>();
    if (j.contains("stain") && !j["stain"].is_null()) p.stain = StainNormaliser::from_json(j["stain"].dump());
    p.colour = parse_colour(j.value("colour", "rgb"));  // bundles written before the field: all colour
  } catch (const nlohmann::json::exception& e) {
    HISTOCNN_FAIL("preprocessing JSON lacks a field or has a wrong type ({}); expected image_size, mean[3], std[3]",
                  e.what());
  }
  p.validate();
  return p;
}

Preprocessing preprocessing_for(const std::string& normalisation, int image_size) {
  Preprocessing p;
  p.image_size = image_size;
  if (normalisation == "imagenet") {
    // torchvision defaults, already set
  } else if (normalisation == "inception") {
    p.mean = {0.5, 0.5, 0.5};
    p.std = {0.5, 0.5, 0.5};
  } else if (normalisation == "caffe") {
    // Caffe/Keras "caffe" mode in RGB order: 0..255 minus the ImageNet mean pixel, no scaling.
    p.mean = {123.68 / 255.0, 116.779 / 255.0, 103.939 / 255.0};
    p.std = {1.0 / 255.0, 1.0 / 255.0, 1.0 / 255.0};
  } else {
    HISTOCNN_FAIL("unknown normalisation '{}'; use 'imagenet', 'inception' or 'caffe'", normalisation);
  }
  p.validate();
  return p;
}

}  // namespace histocnn::data
