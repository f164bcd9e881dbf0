#include "histocnn/data/augment.h"

#include "histocnn/core/error.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

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

// Ruifrok & Johnston's H&E stain vectors (rows: haematoxylin, eosin, residual), normalised.
struct StainMatrix {
  double m[3][3];
  double inv[3][3];
  StainMatrix() {
    const double h[3] = {0.65, 0.70, 0.29}, e[3] = {0.07, 0.99, 0.11};
    double r[3] = {h[1] * e[2] - h[2] * e[1], h[2] * e[0] - h[0] * e[2], h[0] * e[1] - h[1] * e[0]};
    const double* rows[3] = {h, e, r};
    for (int i = 0; i < 3; ++i) {
      double n = std::sqrt(rows[i][0] * rows[i][0] + rows[i][1] * rows[i][1] + rows[i][2] * rows[i][2]);
      for (int j = 0; j < 3; ++j) m[i][j] = rows[i][j] / n;
    }
    const double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                       m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                       m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    inv[0][0] = (m[1][1] * m[2][2] - m[1][2] * m[2][1]) / det;
    inv[0][1] = (m[0][2] * m[2][1] - m[0][1] * m[2][2]) / det;
    inv[0][2] = (m[0][1] * m[1][2] - m[0][2] * m[1][1]) / det;
    inv[1][0] = (m[1][2] * m[2][0] - m[1][0] * m[2][2]) / det;
    inv[1][1] = (m[0][0] * m[2][2] - m[0][2] * m[2][0]) / det;
    inv[1][2] = (m[0][2] * m[1][0] - m[0][0] * m[1][2]) / det;
    inv[2][0] = (m[1][0] * m[2][1] - m[1][1] * m[2][0]) / det;
    inv[2][1] = (m[0][1] * m[2][0] - m[0][0] * m[2][1]) / det;
    inv[2][2] = (m[0][0] * m[1][1] - m[0][1] * m[1][0]) / det;
  }
};
}  // namespace

uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t index) {
  return splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(epoch)) ^ static_cast<uint64_t>(index));
}

AugmentOptions AugmentOptions::preset(const std::string& spec) {
  // "histology:<sigma>": the histology preset with another H&E jitter strength.
  const auto colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  if (colon != std::string::npos) {
    HISTOCNN_CHECK(name == "histology", "augmentation preset '{}': only histology takes a value (histology:<H&E "
                   "jitter sigma>, e.g. histology:0.1)", spec);
    AugmentOptions o = preset(name);
    try {
      size_t used = 0;
      o.stain_jitter = std::stod(spec.substr(colon + 1), &used);
      HISTOCNN_CHECK(used == spec.size() - colon - 1, "trailing characters");
    } catch (const std::exception&) {
      HISTOCNN_FAIL("augmentation preset '{}': the H&E jitter sigma after 'histology:' is not a number", spec);
    }
    HISTOCNN_CHECK(o.stain_jitter > 0 && o.stain_jitter <= 1, "augmentation preset '{}': the H&E jitter sigma must "
                   "be in (0, 1]", spec);
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
  HISTOCNN_FAIL("unknown augmentation preset '{}'; use none, flips, study, study-zoom-in or histology", name);
}

std::string AugmentOptions::preset_name() const {
  for (const char* name : {"none", "flips", "study", "study-zoom-in", "histology"}) {
    if (preset(name).to_json() == to_json()) return name;
  }
  if (stain_jitter > 0) {
    const std::string name = fmt::format("histology:{}", stain_jitter);
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
}

std::string AugmentOptions::to_json() const {
  nlohmann::json j = {{"enabled", enabled},           {"horizontal_flip", horizontal_flip},
                      {"vertical_flip", vertical_flip}, {"rotate90", rotate90},
                      {"rotation_degrees", rotation_degrees}, {"zoom_max", zoom_max},
                      {"stain_jitter", stain_jitter}, {"brightness", brightness}};
  // Written only when set, so the options (and run names) of other presets stay what they were.
  if (zoom_out) j["zoom_out"] = true;
  if (fill_nearest) j["fill_nearest"] = true;
  return j.dump();
}

cv::Mat jitter_stains(const cv::Mat& rgb, double sigma, std::mt19937_64& rng) {
  static const StainMatrix stains;
  double scale[3], shift[3];
  for (int k = 0; k < 3; ++k) {
    scale[k] = 1.0 + sigma * normal(rng);
    shift[k] = sigma * normal(rng);
  }
  // Optical density od = -log((I + 1) / 256); concentrations c = od * inv(M); jitter; back.
  double lut[256];
  for (int v = 0; v < 256; ++v) lut[v] = -std::log((v + 1.0) / 256.0);
  cv::Mat out(rgb.size(), CV_8UC3);
  for (int y = 0; y < rgb.rows; ++y) {
    const auto* src = rgb.ptr<cv::Vec3b>(y);
    auto* dst = out.ptr<cv::Vec3b>(y);
    for (int x = 0; x < rgb.cols; ++x) {
      const double od[3] = {lut[src[x][0]], lut[src[x][1]], lut[src[x][2]]};
      double c[3];
      for (int k = 0; k < 3; ++k) {
        c[k] = od[0] * stains.inv[0][k] + od[1] * stains.inv[1][k] + od[2] * stains.inv[2][k];
        c[k] = c[k] * scale[k] + shift[k];
      }
      for (int ch = 0; ch < 3; ++ch) {
        const double o = c[0] * stains.m[0][ch] + c[1] * stains.m[1][ch] + c[2] * stains.m[2][ch];
        const double v = 256.0 * std::exp(-o) - 1.0;
        dst[x][ch] = cv::saturate_cast<uint8_t>(v);
      }
    }
  }
  return out;
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
  return out;
}

}  // namespace histocnn::data
