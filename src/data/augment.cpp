#include "histocnn/data/augment.h"

#include "histocnn/core/error.h"
#include "histocnn/data/stain.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

namespace histocnn::data {

namespace {
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Uniform in [0, 1) and standard normal draws from our own arithmetic: std::*_distribution differ
// between standard libraries, and augmentation must be the same everywhere for a seed.
double uniform01(std::mt19937_64& rng) { return (rng() >> 11) * (1.0 / 9007199254740992.0); }
double normal(std::mt19937_64& rng) {
  const double u1 = std::max(uniform01(rng), 1e-300), u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

}  // namespace

uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t index) {
  return splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(epoch)) ^ static_cast<uint64_t>(index));
}

namespace {
// HSV jitter of range r: hue and saturation r, value and contrast at most 0.25.
AugmentOptions hsv_preset(double r) {
  AugmentOptions o;
  o.enabled = true;
  o.hue = o.saturation = r;
  o.value = o.contrast = std::min(r, 0.25);
  return o;
}
}  // namespace

AugmentOptions AugmentOptions::preset(const std::string& spec) {
  // "histology:<sigma>": the histology preset with another H&E jitter strength; "hsv:<r>": HSV
  // jitter of range r.
  const auto colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  if (colon != std::string::npos) {
    HISTOCNN_CHECK(name == "histology" || name == "hsv", "augmentation preset '{}': only histology and hsv take a "
                   "value (histology:<H&E jitter sigma>, e.g. histology:0.1; hsv:<hue and saturation range>, e.g. "
                   "hsv:0.5)", spec);
    double v = 0;
    try {
      size_t used = 0;
      v = std::stod(spec.substr(colon + 1), &used);
      HISTOCNN_CHECK(used == spec.size() - colon - 1, "trailing characters");
    } catch (const std::exception&) {
      HISTOCNN_FAIL("augmentation preset '{}': the value after '{}:' is not a number", spec, name);
    }
    HISTOCNN_CHECK(v > 0 && v <= 1, "augmentation preset '{}': the {} must be in (0, 1]", spec,
                   name == "hsv" ? "hue and saturation range" : "H&E jitter sigma");
    if (name == "hsv") return hsv_preset(v);
    AugmentOptions o = preset(name);
    o.stain_jitter = v;
    return o;
  }
  AugmentOptions o;
  if (name == "none") return o;
  o.enabled = true;
  if (name == "flips") return o;
  if (name == "study" || name == "study-zoom-in") {
    // ImageDataGenerator(rotation_range=20, zoom_range=[1.0, 1.2], horizontal_flip=True,
    // vertical_flip=True): Keras' zoom factors above 1 zoom out, and its fill_mode is "nearest".
    o.rotate90 = false;
    o.rotation_degrees = 20;
    o.zoom_max = 1.2;
    o.zoom_out = name == "study";
    o.fill_nearest = name == "study";
    return o;
  }
  if (name == "histology") {
    o.stain_jitter = 0.05;
    o.brightness = 0.05;
    return o;
  }
  if (name == "hsv-light") return hsv_preset(0.1);
  if (name == "hsv-strong") return hsv_preset(1.0);
  HISTOCNN_FAIL("unknown augmentation preset '{}'; use none, flips, study, study-zoom-in, histology, hsv-light or "
                "hsv-strong", name);
}

std::string AugmentOptions::preset_name() const {
  for (const char* name : {"none", "flips", "study", "study-zoom-in", "histology", "hsv-light", "hsv-strong"}) {
    if (preset(name).to_json() == to_json()) return name;
  }
  if (stain_jitter > 0 && stain_jitter <= 1) {
    const std::string name = fmt::format("histology:{}", stain_jitter);
    if (preset(name).to_json() == to_json()) return name;
  }
  if (hue > 0 && hue <= 1) {
    const std::string name = fmt::format("hsv:{}", hue);
    if (preset(name).to_json() == to_json()) return name;
  }
  return "custom";
}

void AugmentOptions::validate() const {
  HISTOCNN_CHECK(rotation_degrees >= 0 && rotation_degrees <= 180, "rotation_degrees must be in [0, 180], got {}",
                 rotation_degrees);
  HISTOCNN_CHECK(zoom_max >= 1 && zoom_max <= 4, "zoom_max must be in [1, 4], got {}", zoom_max);
  HISTOCNN_CHECK(stain_jitter >= 0 && stain_jitter <= 1, "stain_jitter must be in [0, 1], got {}", stain_jitter);
  HISTOCNN_CHECK(brightness >= 0 && brightness <= 1, "brightness must be in [0, 1], got {}", brightness);
  HISTOCNN_CHECK(hue >= 0 && hue <= 1, "hue must be in [0, 1] (a fraction of the colour circle), got {}", hue);
  HISTOCNN_CHECK(saturation >= 0 && saturation <= 1, "saturation must be in [0, 1], got {}", saturation);
  HISTOCNN_CHECK(value >= 0 && value <= 1, "value must be in [0, 1], got {}", value);
  HISTOCNN_CHECK(contrast >= 0 && contrast <= 1, "contrast must be in [0, 1], got {}", contrast);
}

std::string AugmentOptions::to_json() const {
  nlohmann::json j = {{"enabled", enabled},           {"horizontal_flip", horizontal_flip},
                      {"vertical_flip", vertical_flip}, {"rotate90", rotate90},
                      {"rotation_degrees", rotation_degrees}, {"zoom_max", zoom_max},
                      {"stain_jitter", stain_jitter}, {"brightness", brightness}};
  // Written only when set, so the options (and run names) of other presets stay what they were.
  if (zoom_out) j["zoom_out"] = true;
  if (fill_nearest) j["fill_nearest"] = true;
  if (hue > 0) j["hue"] = hue;
  if (saturation > 0) j["saturation"] = saturation;
  if (value > 0) j["value"] = value;
  if (contrast > 0) j["contrast"] = contrast;
  return j.dump();
}

cv::Mat jitter_hsv(const cv::Mat& rgb, const AugmentOptions& options, std::mt19937_64& rng) {
  HISTOCNN_CHECK(!rgb.empty() && rgb.type() == CV_8UC3, "HSV jitter expects an RGB uint8 image");
  auto draw = [&](double r) { return r > 0 ? (2 * uniform01(rng) - 1) * r : 0.0; };
  const double h = draw(options.hue), sat = draw(options.saturation), val = draw(options.value),
               con = draw(options.contrast);
  cv::Mat f;
  rgb.convertTo(f, CV_32FC3, 1.0 / 255.0);
  if (h != 0 || sat != 0 || val != 0) {
    cv::Mat hsv;
    cv::cvtColor(f, hsv, cv::COLOR_RGB2HSV);  // H in [0, 360), S and V in [0, 1]
    const double turn = 360.0 * (h - std::floor(h));
    for (int y = 0; y < hsv.rows; ++y) {
      auto* p = hsv.ptr<cv::Vec3f>(y);
      for (int x = 0; x < hsv.cols; ++x) {
        double hh = p[x][0] + turn, ss = p[x][1], vv = p[x][2];
        if (hh >= 360.0) hh -= 360.0;
        ss = sat < 0 ? ss * (1 + sat) : ss * (1 + (1 - ss) * sat);
        vv = val < 0 ? vv * (1 + val) : vv + (1 - vv) * val;
        p[x] = cv::Vec3f(static_cast<float>(hh), static_cast<float>(std::clamp(ss, 0.0, 1.0)),
                         static_cast<float>(std::clamp(vv, 0.0, 1.0)));
      }
    }
    cv::cvtColor(hsv, f, cv::COLOR_HSV2RGB);
  }
  if (con != 0) {
    // Stretch [con m, 1 - con (1 - m)] to [0, 1] about the mean grey m (skimage's rgb2gray weights).
    const cv::Scalar mean = cv::mean(f);
    const double m = 0.2125 * mean[0] + 0.7154 * mean[1] + 0.0721 * mean[2];
    const double lo = con * m, hi = 1.0 - con * (1.0 - m);
    f.convertTo(f, CV_32FC3, 1.0 / (hi - lo), -lo / (hi - lo));
  }
  cv::Mat out;
  f.convertTo(out, CV_8UC3, 255.0);
  return out;
}

cv::Mat restain(const cv::Mat& rgb, const std::array<double, 3>& scale, const std::array<double, 3>& shift) {
  HISTOCNN_CHECK(rgb.type() == CV_8UC3, "restain: expected an 8-bit RGB image, got OpenCV type {}", rgb.type());
  const StainMatrix& stains = ruifrok_stain_matrix();
  // Optical density od = -log((I + 1) / 256); concentrations c = od * inv(M); scaled, shifted; back.
  const auto& lut = optical_density_table();
  cv::Mat out(rgb.size(), CV_8UC3);
  for (int y = 0; y < rgb.rows; ++y) {
    const auto* src = rgb.ptr<cv::Vec3b>(y);
    auto* dst = out.ptr<cv::Vec3b>(y);
    for (int x = 0; x < rgb.cols; ++x) {
      const double od[3] = {lut[src[x][0]], lut[src[x][1]], lut[src[x][2]]};
      double c[3];
      for (int k = 0; k < 3; ++k) {
        c[k] = od[0] * stains.inverse[0][k] + od[1] * stains.inverse[1][k] + od[2] * stains.inverse[2][k];
        c[k] = c[k] * scale[k] + shift[k];
      }
      for (int ch = 0; ch < 3; ++ch) {
        const double o = c[0] * stains.stains[0][ch] + c[1] * stains.stains[1][ch] + c[2] * stains.stains[2][ch];
        dst[x][ch] = intensity_from_optical_density(o);
      }
    }
  }
  return out;
}

cv::Mat jitter_stains(const cv::Mat& rgb, double sigma, std::mt19937_64& rng) {
  std::array<double, 3> scale{}, shift{};
  for (int k = 0; k < 3; ++k) {
    scale[k] = 1.0 + sigma * normal(rng);
    shift[k] = sigma * normal(rng);
  }
  return restain(rgb, scale, shift);
}

cv::Mat augment_patch(const cv::Mat& rgb, const AugmentOptions& options, std::mt19937_64& rng) {
  if (!options.enabled) return rgb;
  const uint64_t bits = rng();
  const bool hflip = options.horizontal_flip && (bits & 1);
  const bool vflip = options.vertical_flip && (bits & 2);
  const int turn = options.rotate90 ? static_cast<int>((bits >> 2) & 3) : 0;
  // Never write into `rgb`: it may be the dataset's cached patch. Every step makes a new image.
  cv::Mat out;  // empty, so cv::flip allocates instead of writing into `rgb`'s buffer
  if (hflip && vflip) {
    cv::flip(rgb, out, -1);
  } else if (hflip || vflip) {
    cv::flip(rgb, out, hflip ? 1 : 0);
  } else {
    out = rgb;
  }
  if (turn != 0) {
    static const cv::RotateFlags kTurns[] = {cv::ROTATE_90_CLOCKWISE, cv::ROTATE_180, cv::ROTATE_90_COUNTERCLOCKWISE};
    cv::Mat turned;
    cv::rotate(out, turned, kTurns[turn - 1]);
    out = turned;
  }
  const double angle = options.rotation_degrees > 0 ? (2 * uniform01(rng) - 1) * options.rotation_degrees : 0.0;
  double zx = 1.0, zy = 1.0;
  if (options.zoom_max > 1) {
    zx = 1.0 + uniform01(rng) * (options.zoom_max - 1.0);
    zy = options.zoom_out ? 1.0 + uniform01(rng) * (options.zoom_max - 1.0) : zx;
  }
  if (angle != 0.0 || zx != 1.0 || zy != 1.0) {
    // Rotation times scale about the centre; zooming out by z shrinks the content by 1/z.
    const cv::Point2d c(out.cols / 2.0, out.rows / 2.0);
    const cv::Mat r = cv::getRotationMatrix2D(c, angle, 1.0);
    const double sx = options.zoom_out ? 1.0 / zx : zx, sy = options.zoom_out ? 1.0 / zy : zy;
    cv::Mat m(2, 3, CV_64F);
    for (int i = 0; i < 2; ++i) {
      m.at<double>(i, 0) = r.at<double>(i, 0) * sx;
      m.at<double>(i, 1) = r.at<double>(i, 1) * sy;
      m.at<double>(i, 2) = (i == 0 ? c.x : c.y) - m.at<double>(i, 0) * c.x - m.at<double>(i, 1) * c.y;
    }
    cv::Mat warped;
    cv::warpAffine(out, warped, m, out.size(), cv::INTER_LINEAR,
                   options.fill_nearest ? cv::BORDER_REPLICATE : cv::BORDER_REFLECT_101);
    out = warped;
  }
  if (options.stain_jitter > 0) out = jitter_stains(out, options.stain_jitter, rng);
  if (options.brightness > 0) {
    const double b = 1.0 + options.brightness * normal(rng);
    cv::Mat scaled;
    out.convertTo(scaled, CV_8UC3, b);
    out = scaled;
  }
  if (options.hue > 0 || options.saturation > 0 || options.value > 0 || options.contrast > 0) {
    out = jitter_hsv(out, options, rng);
  }
  return out;
}

}  // namespace histocnn::data
