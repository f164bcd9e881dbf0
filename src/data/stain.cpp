#include "histocnn/data/stain.h"

#include "histocnn/core/error.h"
#include "histocnn/io/image.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

namespace histocnn::data {

namespace {

using json = nlohmann::json;

// Macenko's constants: the optical density below which a pixel counts as background (beta, taken
// as the length of the OD vector: requiring it of every channel, as some code does, drops pale
// eosin, whose red OD is small), and the angle percentile that picks the purest stain directions.
constexpr double kBeta = 0.15;
constexpr double kAlphaPercent = 1.0;
constexpr double kMaxPercent = 99.0;
// The percentile of each channel's optical density taken as the glass's, for white balance.
constexpr double kGlassPercent = 1.0;
// Fewer pixels than these give no statistics worth trusting.
constexpr int64_t kMinPixels = 16;
constexpr int64_t kMinTissuePixels = 32;
// A source group (slide, patient, request) with fewer non-white pixels than these, eight 50-pixel
// patches, is taken to have the reference's glass: a patch or a few are mostly tissue, and their
// 1st percentile is pale tissue. On 12 idc_real slides, one random patch's estimate misses the
// slide's by 0.020 in optical density (median), nearly the whole range of the slides' glass (0.024);
// eight patches' by 0.004, one 8-bit level near white (bench/glass_sample_size.py).
constexpr int64_t kMinGlassPixels = 8 * 50 * 50;
// Stain directions closer than this (radians) are one stain seen twice.
constexpr double kMinStainAngle = 0.1;
// A stain's concentration scale is bounded, so a patch with almost none of one stain does not
// blow its noise up.
constexpr double kMinScale = 0.1, kMaxScale = 10.0;

bool is_white(const cv::Vec3b& p) { return p[0] == 255 && p[1] == 255 && p[2] == 255; }

void check_rgb(const cv::Mat& rgb, const char* what) {
  HISTOCNN_CHECK(!rgb.empty() && rgb.type() == CV_8UC3, "{} expects RGB uint8 images (HxWx3); got {} channels of "
                 "depth {}", what, rgb.channels(), rgb.depth());
}

cv::Mat to_lab(const cv::Mat& rgb) {
  cv::Mat f, lab;
  rgb.convertTo(f, CV_32FC3, 1.0 / 255.0);
  cv::cvtColor(f, lab, cv::COLOR_RGB2Lab);
  return lab;
}

// Linear interpolation between order statistics (numpy's default percentile). Reorders `v`.
double percentile(std::vector<double>& v, double p) {
  const double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(lo), v.end());
  const double a = v[lo];
  if (lo + 1 >= v.size()) return a;
  const double b = *std::min_element(v.begin() + static_cast<std::ptrdiff_t>(lo) + 1, v.end());
  return a + (pos - static_cast<double>(lo)) * (b - a);
}

StainStats reinhard_stats(const std::vector<cv::Mat>& images) {
  StainStats s;
  s.method = StainMethod::reinhard;
  double sum[3] = {0, 0, 0}, sq[3] = {0, 0, 0};
  int64_t n = 0;
  for (const auto& rgb : images) {
    check_rgb(rgb, "stain statistics");
    const cv::Mat lab = to_lab(rgb);
    for (int y = 0; y < rgb.rows; ++y) {
      const auto* src = rgb.ptr<cv::Vec3b>(y);
      const auto* l = lab.ptr<cv::Vec3f>(y);
      for (int x = 0; x < rgb.cols; ++x) {
        if (is_white(src[x])) continue;
        for (int c = 0; c < 3; ++c) {
          sum[c] += l[x][c];
          sq[c] += static_cast<double>(l[x][c]) * l[x][c];
        }
        ++n;
      }
    }
  }
  if (n < kMinPixels) return s;
  for (int c = 0; c < 3; ++c) {
    s.lab_mean[c] = sum[c] / n;
    s.lab_std[c] = std::sqrt(std::max(0.0, sq[c] / n - s.lab_mean[c] * s.lab_mean[c]));
  }
  s.pixels = n;
  return s;
}

// The optical density of the images' glass: per channel, the 1st percentile over the pixels that
// are not pure white (padding); zero when there are none. A density depends on the 8-bit level
// alone, so the count of each level per channel is all the percentile needs (a complete slide's
// millions of pixels are not copied): the same order statistics, interpolated as percentile() does.
struct Glass {
  std::array<double, 3> density{};
  int64_t pixels = 0;  // non-white pixels
};
// A source group (`reference` set) with fewer than kMinGlassPixels of them gets the reference's.
Glass glass_density(const std::vector<cv::Mat>& images, const StainStats* reference) {
  const auto& od = optical_density_table();  // strictly decreasing in the level
  std::array<std::array<int64_t, 256>, 3> counts{};
  int64_t n = 0;
  for (const auto& rgb : images) {
    check_rgb(rgb, "stain statistics");
    for (int y = 0; y < rgb.rows; ++y) {
      const auto* src = rgb.ptr<cv::Vec3b>(y);
      for (int x = 0; x < rgb.cols; ++x) {
        if (is_white(src[x])) continue;
        for (int c = 0; c < 3; ++c) ++counts[c][src[x][c]];
        ++n;
      }
    }
  }
  Glass glass{{}, n};
  if (reference != nullptr && n < kMinGlassPixels) {
    glass.density = reference->background;
    return glass;
  }
  if (n == 0) return glass;
  const double pos = kGlassPercent / 100.0 * static_cast<double>(n - 1);
  const auto lo = static_cast<int64_t>(std::floor(pos));
  for (int c = 0; c < 3; ++c) {
    // The k-th smallest density (from 0): the levels from the brightest down.
    auto order_statistic = [&](int64_t k) {
      int64_t seen = 0;
      for (int level = 255; level > 0; --level) {
        seen += counts[c][level];
        if (k < seen) return od[level];
      }
      return od[0];
    };
    const double a = order_statistic(lo);
    glass.density[c] = lo + 1 >= n ? a : a + (pos - static_cast<double>(lo)) * (order_statistic(lo + 1) - a);
  }
  return glass;
}

// A pixel's optical density measured against `background` (zero: against pure white).
std::array<double, 3> density(const cv::Vec3b& p, const std::array<double, 3>& background) {
  const auto& od = optical_density_table();
  return {od[p[0]] - background[0], od[p[1]] - background[1], od[p[2]] - background[2]};
}

// The tissue pixels (|OD - background| >= beta) of the images, as their 8-bit RGB: a density is a
// function of the levels, so keeping 3 bytes a pixel instead of 3 doubles costs a complete slide's
// millions of pixels an eighth of the memory and gives the same numbers.
struct TissuePixels {
  std::vector<cv::Vec3b> rgb;
  std::array<double, 3> background{};

  std::array<double, 3> density(size_t i) const { return data::density(rgb[i], background); }
  size_t size() const { return rgb.size(); }
};

TissuePixels tissue_pixels(const std::vector<cv::Mat>& images, const std::array<double, 3>& background) {
  TissuePixels out;
  out.background = background;
  for (const auto& rgb : images) {
    check_rgb(rgb, "stain statistics");
    for (int y = 0; y < rgb.rows; ++y) {
      const auto* src = rgb.ptr<cv::Vec3b>(y);
      for (int x = 0; x < rgb.cols; ++x) {
        if (is_white(src[x])) continue;  // padding: no density, whatever the background
        const auto d = density(src[x], background);
        if (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] >= kBeta * kBeta) out.rgb.push_back(src[x]);
      }
    }
  }
  return out;
}

// The 2x3 least-squares inverse of the 3x2 matrix [h e]: (M^T M)^-1 M^T. False when singular.
bool stain_pseudo_inverse(const std::array<double, 3>& h, const std::array<double, 3>& e, double p[2][3]) {
  double hh = 0, he = 0, ee = 0;
  for (int c = 0; c < 3; ++c) {
    hh += h[c] * h[c];
    he += h[c] * e[c];
    ee += e[c] * e[c];
  }
  const double det = hh * ee - he * he;
  if (det < 1e-9) return false;
  for (int c = 0; c < 3; ++c) {
    p[0][c] = (ee * h[c] - he * e[c]) / det;
    p[1][c] = (hh * e[c] - he * h[c]) / det;
  }
  return true;
}

// Macenko's stain vectors and maximum concentrations. `fallback` (the reference) lends its stain
// vectors when the pixels' two stains cannot be told apart; without one such pixels give no fit.
StainStats macenko_stats(const TissuePixels& od, const StainStats* fallback) {
  StainStats s;
  s.method = StainMethod::macenko;
  const int64_t n = static_cast<int64_t>(od.size());
  if (n < kMinTissuePixels) return s;
  // The plane of the two largest singular directions of the OD matrix (eigenvectors of OD^T OD).
  cv::Matx33d m = cv::Matx33d::zeros();
  cv::Vec3d mean(0, 0, 0);
  for (size_t k = 0; k < od.size(); ++k) {
    const auto d = od.density(k);
    for (int i = 0; i < 3; ++i) {
      mean[i] += d[i];
      for (int j = 0; j < 3; ++j) m(i, j) += d[i] * d[j];
    }
  }
  cv::Mat values, vectors;
  cv::eigen(cv::Mat(m * (1.0 / n)), values, vectors);  // rows, by decreasing eigenvalue
  cv::Vec3d e1(vectors.at<double>(0, 0), vectors.at<double>(0, 1), vectors.at<double>(0, 2));
  cv::Vec3d e2(vectors.at<double>(1, 0), vectors.at<double>(1, 1), vectors.at<double>(1, 2));
  // Densities lie in the positive octant: point e1 into it, so angles stay within (-pi/2, pi/2).
  if (e1.dot(mean) < 0) e1 = -e1;
  double lo, hi;
  {
    std::vector<double> phi;  // freed before the concentrations are
    phi.reserve(od.size());
    for (size_t k = 0; k < od.size(); ++k) {
      const auto d = od.density(k);
      const cv::Vec3d v(d[0], d[1], d[2]);
      phi.push_back(std::atan2(v.dot(e2), v.dot(e1)));
    }
    lo = percentile(phi, kAlphaPercent);
    hi = percentile(phi, 100.0 - kAlphaPercent);
  }
  std::array<double, 3> a{}, b{};
  for (int c = 0; c < 3; ++c) {
    a[c] = std::cos(lo) * e1[c] + std::sin(lo) * e2[c];
    b[c] = std::cos(hi) * e1[c] + std::sin(hi) * e2[c];
  }
  double p[2][3];
  if (hi - lo >= kMinStainAngle && stain_pseudo_inverse(a, b, p)) {
    // Haematoxylin absorbs more red than eosin does.
    s.haematoxylin = a[0] > b[0] ? a : b;
    s.eosin = a[0] > b[0] ? b : a;
  } else if (fallback != nullptr) {
    s.haematoxylin = fallback->haematoxylin;
    s.eosin = fallback->eosin;
    s.borrowed_vectors = true;
  } else {
    return s;
  }
  if (!stain_pseudo_inverse(s.haematoxylin, s.eosin, p)) return StainStats{StainMethod::macenko};
  std::vector<double> ch(od.size()), ce(od.size());
  for (size_t i = 0; i < od.size(); ++i) {
    const auto d = od.density(i);
    ch[i] = p[0][0] * d[0] + p[0][1] * d[1] + p[0][2] * d[2];
    ce[i] = p[1][0] * d[0] + p[1][1] * d[1] + p[1][2] * d[2];
  }
  s.max_concentration = {percentile(ch, kMaxPercent), percentile(ce, kMaxPercent)};
  if (!(s.max_concentration[0] > 1e-6 && s.max_concentration[1] > 1e-6)) {
    if (fallback == nullptr) return StainStats{StainMethod::macenko};
    // Not even a trace of one stain: its scale stays 1.
    for (int k = 0; k < 2; ++k) {
      if (!(s.max_concentration[k] > 1e-6)) s.max_concentration[k] = fallback->max_concentration[k];
    }
  }
  s.pixels = n;
  return s;
}

// White balance alone: the glass, over the non-white pixels.
StainStats glass_stats(const std::vector<cv::Mat>& images, const StainStats* reference) {
  StainStats s;
  s.method = StainMethod::white_balance;
  const Glass glass = glass_density(images, reference);
  s.background = glass.density;
  if (glass.pixels >= kMinPixels) s.pixels = glass.pixels;
  return s;
}

StainStats fit_stats(StainMethod method, const std::vector<cv::Mat>& rgb, const StainStats* fallback,
                     bool white_balance) {
  if (method == StainMethod::reinhard) return reinhard_stats(rgb);
  if (method == StainMethod::white_balance) return glass_stats(rgb, fallback);
  const std::array<double, 3> glass = white_balance ? glass_density(rgb, fallback).density : std::array<double, 3>{};
  StainStats s = macenko_stats(tissue_pixels(rgb, glass), fallback);
  s.background = glass;
  return s;
}

cv::Mat normalise_reinhard(const cv::Mat& rgb, const StainStats& source, const StainStats& target) {
  double scale[3], shift[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = source.lab_std[c] > 1e-6 ? target.lab_std[c] / source.lab_std[c] : 1.0;
    shift[c] = target.lab_mean[c] - source.lab_mean[c] * scale[c];
  }
  cv::Mat lab = to_lab(rgb);
  for (int y = 0; y < lab.rows; ++y) {
    auto* l = lab.ptr<cv::Vec3f>(y);
    for (int x = 0; x < lab.cols; ++x) {
      for (int c = 0; c < 3; ++c) l[x][c] = static_cast<float>(l[x][c] * scale[c] + shift[c]);
    }
  }
  cv::Mat back, out;
  cv::cvtColor(lab, back, cv::COLOR_Lab2RGB);
  back.convertTo(out, CV_8UC3, 255.0);
  for (int y = 0; y < rgb.rows; ++y) {
    const auto* src = rgb.ptr<cv::Vec3b>(y);
    auto* dst = out.ptr<cv::Vec3b>(y);
    for (int x = 0; x < rgb.cols; ++x) {
      if (is_white(src[x])) dst[x] = src[x];
    }
  }
  return out;
}

// Each pixel mapped by f, pure white (glass, padding) kept white.
template <typename F>
cv::Mat map_non_white(const cv::Mat& rgb, F f) {
  cv::Mat out(rgb.size(), CV_8UC3);
  for (int y = 0; y < rgb.rows; ++y) {
    const auto* src = rgb.ptr<cv::Vec3b>(y);
    auto* dst = out.ptr<cv::Vec3b>(y);
    for (int x = 0; x < rgb.cols; ++x) dst[x] = is_white(src[x]) ? src[x] : f(src[x]);
  }
  return out;
}

cv::Mat normalise_macenko(const cv::Mat& rgb, const StainStats& source, const StainStats& target) {
  double p[2][3];
  HISTOCNN_CHECK(stain_pseudo_inverse(source.haematoxylin, source.eosin, p),
                 "the source stain vectors are parallel; refit the source statistics");
  double scale[2];
  for (int k = 0; k < 2; ++k) {
    scale[k] = std::clamp(target.max_concentration[k] / source.max_concentration[k], kMinScale, kMaxScale);
  }
  // od' = [h_t e_t] diag(scale) P_s od: one 3x3 matrix per source.
  double t[3][3];
  for (int c = 0; c < 3; ++c) {
    for (int j = 0; j < 3; ++j) {
      t[c][j] = target.haematoxylin[c] * scale[0] * p[0][j] + target.eosin[c] * scale[1] * p[1][j];
    }
  }
  return map_non_white(rgb, [&](const cv::Vec3b& px) {
    const auto d = density(px, source.background);
    cv::Vec3b q;
    for (int c = 0; c < 3; ++c) {
      q[c] = intensity_from_optical_density(t[c][0] * d[0] + t[c][1] * d[1] + t[c][2] * d[2]);
    }
    return q;
  });
}

// od' = od - source glass + target glass, per channel: one lookup table per channel.
cv::Mat normalise_white_balance(const cv::Mat& rgb, const StainStats& source, const StainStats& target) {
  const auto& od = optical_density_table();
  std::array<std::array<uint8_t, 256>, 3> lut{};
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      lut[c][v] = intensity_from_optical_density(od[v] - source.background[c] + target.background[c]);
    }
  }
  return map_non_white(rgb, [&](const cv::Vec3b& px) {
    return cv::Vec3b(lut[0][px[0]], lut[1][px[1]], lut[2][px[2]]);
  });
}

json array_json(const std::array<double, 3>& a) { return json::array({a[0], a[1], a[2]}); }

}  // namespace

const std::array<double, 256>& optical_density_table() {
  static const std::array<double, 256> table = [] {
    std::array<double, 256> t{};
    for (int v = 0; v < 256; ++v) t[v] = -std::log((v + 1.0) / 256.0);
    return t;
  }();
  return table;
}

uint8_t intensity_from_optical_density(double od) { return cv::saturate_cast<uint8_t>(256.0 * std::exp(-od) - 1.0); }

const StainMatrix& ruifrok_stain_matrix() {
  static const StainMatrix matrix = [] {
    StainMatrix s;
    const std::array<double, 3> h = {0.65, 0.70, 0.29}, e = {0.07, 0.99, 0.11};
    const std::array<double, 3> r = {h[1] * e[2] - h[2] * e[1], h[2] * e[0] - h[0] * e[2], h[0] * e[1] - h[1] * e[0]};
    const std::array<double, 3>* rows[3] = {&h, &e, &r};
    cv::Matx33d m;
    for (int i = 0; i < 3; ++i) {
      const auto& v = *rows[i];
      const double n = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
      for (int j = 0; j < 3; ++j) m(i, j) = s.stains[i][j] = v[j] / n;
    }
    const cv::Matx33d inv = m.inv();
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) s.inverse[i][j] = inv(i, j);
    return s;
  }();
  return matrix;
}

cv::Mat haematoxylin_image(const cv::Mat& rgb) {
  check_rgb(rgb, "haematoxylin image");
  // One lookup per channel: the haematoxylin concentration is linear in the three optical densities.
  static const auto part = [] {
    std::array<std::array<double, 256>, 3> t{};
    const auto& inv = ruifrok_stain_matrix().inverse;
    const auto& od = optical_density_table();
    for (int c = 0; c < 3; ++c)
      for (int v = 0; v < 256; ++v) t[c][v] = od[v] * inv[c][0];
    return t;
  }();
  cv::Mat out(rgb.size(), CV_8UC3);
  for (int y = 0; y < rgb.rows; ++y) {
    const auto* src = rgb.ptr<cv::Vec3b>(y);
    auto* dst = out.ptr<cv::Vec3b>(y);
    for (int x = 0; x < rgb.cols; ++x) {
      const uint8_t v = intensity_from_optical_density(part[0][src[x][0]] + part[1][src[x][1]] + part[2][src[x][2]]);
      dst[x] = cv::Vec3b(v, v, v);
    }
  }
  return out;
}

StainMethod parse_stain_method(const std::string& name) {
  if (name == "reinhard") return StainMethod::reinhard;
  if (name == "macenko") return StainMethod::macenko;
  if (name == "white-balance") return StainMethod::white_balance;
  HISTOCNN_FAIL("unknown stain normalisation '{}'; use reinhard, macenko or white-balance (or none for no "
                "normalisation)", name);
}

std::string stain_method_name(StainMethod method) {
  switch (method) {
    case StainMethod::reinhard: return "reinhard";
    case StainMethod::macenko: return "macenko";
    case StainMethod::white_balance: return "white-balance";
  }
  HISTOCNN_FAIL("unknown stain method {}", static_cast<int>(method));
}

StainFit parse_stain_fit(const std::string& name) {
  if (name == "patch") return StainFit::patch;
  if (name == "slide") return StainFit::slide;
  HISTOCNN_FAIL("unknown stain fit '{}'; use patch (each patch's own statistics) or slide (one set per slide, "
                "patient or request)", name);
}

std::string stain_fit_name(StainFit fit) { return fit == StainFit::patch ? "patch" : "slide"; }

std::string StainStats::to_json() const {
  json j = {{"method", stain_method_name(method)}, {"pixels", pixels}};
  if (method == StainMethod::reinhard) {
    j["lab_mean"] = array_json(lab_mean);
    j["lab_std"] = array_json(lab_std);
  } else if (method == StainMethod::white_balance) {
    j["background"] = array_json(background);
  } else {
    j["haematoxylin"] = array_json(haematoxylin);
    j["eosin"] = array_json(eosin);
    j["max_concentration"] = json::array({max_concentration[0], max_concentration[1]});
    if (borrowed_vectors) j["borrowed_vectors"] = true;
    if (background != std::array<double, 3>{}) j["background"] = array_json(background);
  }
  return j.dump();
}

StainStats StainStats::from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    HISTOCNN_FAIL("stain statistics are not valid JSON: {}", e.what());
  }
  StainStats s;
  try {
    s.method = parse_stain_method(j.at("method").get<std::string>());
    s.pixels = j.at("pixels").get<int64_t>();
    if (s.method == StainMethod::reinhard) {
      s.lab_mean = j.at("lab_mean").get<std::array<double, 3>>();
      s.lab_std = j.at("lab_std").get<std::array<double, 3>>();
    } else if (s.method == StainMethod::white_balance) {
      s.background = j.at("background").get<std::array<double, 3>>();
    } else {
      s.haematoxylin = j.at("haematoxylin").get<std::array<double, 3>>();
      s.eosin = j.at("eosin").get<std::array<double, 3>>();
      s.max_concentration = j.at("max_concentration").get<std::array<double, 2>>();
      s.borrowed_vectors = j.value("borrowed_vectors", false);
      if (j.contains("background")) s.background = j["background"].get<std::array<double, 3>>();
    }
  } catch (const json::exception& e) {
    HISTOCNN_FAIL("stain statistics lack a field or have a wrong type ({}); expected method, pixels and "
                  "lab_mean/lab_std (reinhard), haematoxylin/eosin/max_concentration (macenko) or background (white-balance)", e.what());
  }
  return s;
}

StainStats fit_stain_stats(StainMethod method, const std::vector<cv::Mat>& rgb) {
  return fit_stats(method, rgb, nullptr, false);
}

StainNormaliser::StainNormaliser(StainStats target, StainFit fit, bool white_balance)
    : target_(std::move(target)), fit_(fit), white_balance_(white_balance) {
  HISTOCNN_CHECK(target_.fitted(), "a stain normaliser needs fitted reference statistics (the reference had too "
                 "little tissue); choose a reference with tissue of both stains");
  HISTOCNN_CHECK(!white_balance_ || target_.method == StainMethod::macenko,
                 "white balance to the glass is part of Macenko normalisation (or a method of its own, "
                 "white-balance); use macenko, or turn it off");
  if (target_.method == StainMethod::macenko) {
    double p[2][3];
    HISTOCNN_CHECK(stain_pseudo_inverse(target_.haematoxylin, target_.eosin, p) &&
                       target_.max_concentration[0] > 0 && target_.max_concentration[1] > 0,
                   "the reference's Macenko statistics are degenerate (parallel stain vectors or no stain); "
                   "choose a reference with both haematoxylin and eosin");
  }
}

StainNormaliser StainNormaliser::fit(StainMethod method, const std::vector<cv::Mat>& reference, StainFit fit,
                                     bool white_balance) {
  HISTOCNN_CHECK(!reference.empty(), "stain normalisation needs at least one reference image");
  StainStats target = fit_stats(method, reference, nullptr, white_balance);
  HISTOCNN_CHECK(target.fitted(), "the {} reference ({} image(s)) has too little tissue{} to fit; choose images "
                 "with stained tissue", stain_method_name(method), reference.size(),
                 method == StainMethod::macenko ? " or only one stain" : "");
  return StainNormaliser(std::move(target), fit, white_balance);
}

StainStats StainNormaliser::source_stats(const std::vector<cv::Mat>& rgb) const {
  return fit_stats(target_.method, rgb, &target_, white_balance_);
}

cv::Mat StainNormaliser::normalise(const cv::Mat& rgb) const { return normalise(rgb, source_stats({rgb})); }

cv::Mat StainNormaliser::normalise(const cv::Mat& rgb, const StainStats& source) const {
  check_rgb(rgb, "stain normalisation");
  HISTOCNN_CHECK(source.method == target_.method, "source statistics are {} but the normaliser is {}",
                 stain_method_name(source.method), stain_method_name(target_.method));
  if (!source.fitted()) return rgb.clone();
  switch (target_.method) {
    case StainMethod::reinhard: return normalise_reinhard(rgb, source, target_);
    case StainMethod::macenko: return normalise_macenko(rgb, source, target_);
    case StainMethod::white_balance: return normalise_white_balance(rgb, source, target_);
  }
  HISTOCNN_FAIL("unknown stain method {}", static_cast<int>(target_.method));
}

std::vector<cv::Mat> StainNormaliser::normalise_group(const std::vector<cv::Mat>& rgb) const {
  const StainStats source = source_stats(rgb);
  std::vector<cv::Mat> out;
  out.reserve(rgb.size());
  for (const auto& img : rgb) out.push_back(normalise(img, source));
  return out;
}

std::string StainNormaliser::to_json() const {
  json j = {{"method", stain_method_name(target_.method)},
            {"fit", stain_fit_name(fit_)},
            {"target", json::parse(target_.to_json())}};
  if (white_balance_) j["white_balance"] = true;  // bundles written before the field: none
  return j.dump();
}

StainNormaliser StainNormaliser::from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    HISTOCNN_FAIL("stain normaliser is not valid JSON: {}", e.what());
  }
  HISTOCNN_CHECK(j.is_object() && j.contains("target") && j.contains("method") && j["method"].is_string(),
                 "stain normaliser JSON needs method, fit and target; got {}", j.dump());
  parse_stain_method(j["method"].get<std::string>());  // names an unknown method before anything else
  StainStats target = StainStats::from_json(j["target"].dump());
  HISTOCNN_CHECK(stain_method_name(target.method) == j["method"].get<std::string>(),
                 "stain normaliser JSON: method '{}' but its target holds {} statistics", j["method"].dump(),
                 stain_method_name(target.method));
  return StainNormaliser(std::move(target), parse_stain_fit(j.value("fit", std::string("patch"))),
                         j.value("white_balance", false));
}

StainNormaliser fit_stain_reference(StainMethod method, StainFit fit, bool white_balance, const Manifest& manifest,
                                    const std::filesystem::path& reference, int max_patches) {
  if (!reference.empty()) {
    HISTOCNN_CHECK_FOUND(std::filesystem::exists(reference), "stain reference image '{}' does not exist",
                         reference.string());
    return StainNormaliser::fit(method, {io::read_image_rgb(reference)}, fit, white_balance);
  }
  HISTOCNN_CHECK(max_patches > 0, "max_patches must be positive, got {}", max_patches);
  HISTOCNN_CHECK(manifest.size() > 0, "no patches to fit the stain reference on; give a reference image instead");
  const size_t n = manifest.size(), take = std::min(n, static_cast<size_t>(max_patches));
  std::vector<cv::Mat> images;
  images.reserve(take);
  for (size_t k = 0; k < take; ++k) images.push_back(io::read_image_rgb(manifest.absolute_path(k * n / take)));
  return StainNormaliser::fit(method, images, fit, white_balance);
}

}  // namespace histocnn::data
