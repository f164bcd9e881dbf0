#include "test_prelude.h"

#include "histocnn/data/augment.h"
#include "histocnn/data/dataset.h"
#include "histocnn/data/preprocessing.h"
#include "histocnn/data/stain.h"
#include "histocnn/inference/evaluate.h"
#include "histocnn/inference/model_card.h"
#include "histocnn/inference/predictor.h"
#include "histocnn/io/image.h"
#include "histocnn/train/options.h"
#include "histocnn/train/run.h"

#include "test_support.h"

#include <nlohmann/json.hpp>

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <vector>

using namespace histocnn;

namespace {

using Vec3 = std::array<double, 3>;

Vec3 unit(Vec3 v) {
  const double n = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
  return {v[0] / n, v[1] / n, v[2] / n};
}

double angle_degrees(const Vec3& a, const Vec3& b) {
  const Vec3 u = unit(a), v = unit(b);
  const double c = std::clamp(u[0] * v[0] + u[1] * v[1] + u[2] * v[2], -1.0, 1.0);
  return std::acos(c) * 180.0 / M_PI;
}

// Published stain vectors: Ruifrok & Johnston's H&E, and the reference Macenko et al.'s method is
// usually run with (H = (0.5626, 0.7201, 0.4062), E = (0.2159, 0.8012, 0.5581)).
const Vec3 kRuifrokH = unit({0.65, 0.70, 0.29}), kRuifrokE = unit({0.07, 0.99, 0.11});
const Vec3 kMacenkoH = unit({0.5626, 0.7201, 0.4062}), kMacenkoE = unit({0.2159, 0.8012, 0.5581});

// A synthetic stained image by Beer-Lambert: I = 256 exp(-(cH h + cE e)) - 1, with its true
// concentrations. A tenth of the pixels are pure haematoxylin, a tenth pure eosin, a tenth nearly
// bare glass, the rest mixed; `strength` scales every concentration.
struct Stained {
  cv::Mat rgb;
  std::vector<double> ch, ce;
};

Stained beer_lambert(const Vec3& h, const Vec3& e, double strength, uint64_t seed, int size = 64,
                     double h_share = 0.5) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Stained s;
  s.rgb = cv::Mat(size, size, CV_8UC3);
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      const double kind = u(rng);
      double ch, ce;
      if (kind < 0.1) {
        ch = 0.3 + 0.9 * u(rng), ce = 0;
      } else if (kind < 0.2) {
        ch = 0, ce = 0.3 + 0.9 * u(rng);
      } else if (kind < 0.3) {
        ch = 0.03 * u(rng), ce = 0.03 * u(rng);
      } else {
        ch = 2 * h_share * u(rng), ce = 2 * (1 - h_share) * u(rng);
      }
      ch *= strength, ce *= strength;
      s.ch.push_back(ch);
      s.ce.push_back(ce);
      auto& p = s.rgb.at<cv::Vec3b>(y, x);
      for (int c = 0; c < 3; ++c) p[c] = cv::saturate_cast<uint8_t>(256.0 * std::exp(-(ch * h[c] + ce * e[c])) - 1.0);
    }
  }
  return s;
}

double od(uint8_t v) { return -std::log((v + 1.0) / 256.0); }

// numpy's default percentile (linear between order statistics).
double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  if (lo + 1 >= v.size()) return v.back();
  return v[lo] + (pos - lo) * (v[lo + 1] - v[lo]);
}

// The 99th percentile of the true concentrations over Macenko's tissue pixels (optical density of
// length >= 0.15 in the rendered image).
std::array<double, 2> true_max_concentration(const Stained& s) {
  std::vector<double> h, e;
  for (int i = 0; i < s.rgb.rows * s.rgb.cols; ++i) {
    const auto& p = s.rgb.at<cv::Vec3b>(i / s.rgb.cols, i % s.rgb.cols);
    if (std::hypot(od(p[0]), od(p[1]), od(p[2])) >= 0.15) {
      h.push_back(s.ch[i]);
      e.push_back(s.ce[i]);
    }
  }
  return {percentile(h, 99), percentile(e, 99)};
}

// CIE L*a*b* by the published formulas (IEC 61966-2-1 sRGB, D65 white), independent of OpenCV.
Vec3 cie_lab(const cv::Vec3b& p) {
  auto lin = [](double c) {
    c /= 255.0;
    return c <= 0.04045 ? c / 12.92 : std::pow((c + 0.055) / 1.055, 2.4);
  };
  const double r = lin(p[0]), g = lin(p[1]), b = lin(p[2]);
  const double x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047;
  const double y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b;
  const double z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883;
  auto f = [](double t) { return t > 216.0 / 24389.0 ? std::cbrt(t) : (24389.0 / 27.0 * t + 16.0) / 116.0; };
  return {116.0 * f(y) - 16.0, 500.0 * (f(x) - f(y)), 200.0 * (f(y) - f(z))};
}

// Mean and standard deviation of L*, a*, b* over the non-white pixels of the images together.
std::pair<Vec3, Vec3> lab_stats(const std::vector<cv::Mat>& images) {
  Vec3 sum{}, sq{};
  double n = 0;
  for (const auto& img : images) {
    for (int y = 0; y < img.rows; ++y) {
      for (int x = 0; x < img.cols; ++x) {
        const auto& p = img.at<cv::Vec3b>(y, x);
        if (p[0] == 255 && p[1] == 255 && p[2] == 255) continue;
        const Vec3 lab = cie_lab(p);
        for (int c = 0; c < 3; ++c) {
          sum[c] += lab[c];
          sq[c] += lab[c] * lab[c];
        }
        ++n;
      }
    }
  }
  Vec3 mean{}, sd{};
  for (int c = 0; c < 3; ++c) {
    mean[c] = sum[c] / n;
    sd[c] = std::sqrt(sq[c] / n - mean[c] * mean[c]);
  }
  return {mean, sd};
}

// One epoch of a small CNN on 32 px synthetic patches, written under dir/runs: a run whose
// preprocessing the stain tests follow through the bundle.
train::RunOptions one_epoch_run(const test::TempDir& dir, const data::SyntheticOptions& synth) {
  train::RunOptions run;
  run.data_dirs = {test::synthetic_folder(dir, synth)};
  run.output_dir = dir / "runs";
  run.image_size = 32;
  run.model.backbone("simple_cnn").freeze_backbone(false).hidden1(16).hidden2(8);
  run.trainer.epochs = 1;
  run.trainer.progress = false;
  run.trainer.workers = 1;
  run.tensorboard = false;
  run.stain_shift = 0;
  return run;
}

inference::EvaluateOptions quiet_cpu_evaluation() {
  inference::EvaluateOptions eo;
  eo.device = "cpu";
  eo.progress = false;
  eo.workers = 1;
  return eo;
}

double mean_abs_diff(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat d;
  cv::absdiff(a, b, d);
  const auto m = cv::mean(d);
  return (m[0] + m[1] + m[2]) / 3;
}

// The image seen through a uniform absorbing tint: every pixel's optical density plus the same
// vector, as an illumination or a scanner's white balance would add, and as restaining's shift does.
cv::Mat with_tint(const cv::Mat& rgb, const Vec3& tint) {
  cv::Mat t(rgb.size(), CV_8UC3);
  for (int i = 0; i < rgb.rows * rgb.cols; ++i) {
    const auto& p = rgb.at<cv::Vec3b>(i / rgb.cols, i % rgb.cols);
    auto& q = t.at<cv::Vec3b>(i / rgb.cols, i % rgb.cols);
    for (int c = 0; c < 3; ++c) q[c] = data::intensity_from_optical_density(od(p[c]) + tint[c]);
  }
  return t;
}

std::vector<cv::Mat> with_tint(const std::vector<cv::Mat>& images, const Vec3& tint) {
  std::vector<cv::Mat> out;
  for (const auto& m : images) out.push_back(with_tint(m, tint));
  return out;
}

// A slide of twelve 48-pixel patches stained with Ruifrok's H&E, a tenth of their pixels nearly
// bare glass: enough pixels (27,648) for a slide's own glass, which needs eight 50-pixel patches'.
std::vector<cv::Mat> glass_slide() {
  std::vector<cv::Mat> slide;
  for (uint64_t seed = 21; seed < 33; ++seed) slide.push_back(beer_lambert(kRuifrokH, kRuifrokE, 1.0, seed, 48).rgb);
  return slide;
}

}  // namespace

TEST_CASE("Macenko recovers the stain vectors an image was made with", "[stain]") {
  for (const auto& [h, e] : {std::pair{kRuifrokH, kRuifrokE}, std::pair{kMacenkoH, kMacenkoE}}) {
    const auto img = beer_lambert(h, e, 1.0, 11);
    const auto s = data::fit_stain_stats(data::StainMethod::macenko, {img.rgb});
    REQUIRE(s.fitted());
    CHECK_FALSE(s.borrowed_vectors);
    INFO("H " << s.haematoxylin[0] << " " << s.haematoxylin[1] << " " << s.haematoxylin[2]);
    CHECK(angle_degrees(s.haematoxylin, h) < 2.0);
    CHECK(angle_degrees(s.eosin, e) < 2.0);
    // Concentrations by least squares on the recovered vectors: their 99th percentile is the true one.
    const auto truth = true_max_concentration(img);
    CHECK(s.max_concentration[0] == Approx(truth[0]).epsilon(0.05));
    CHECK(s.max_concentration[1] == Approx(truth[1]).epsilon(0.05));
  }
  // Too little tissue: no fit, and normalisation passes the image through.
  cv::Mat glass(32, 32, CV_8UC3, cv::Scalar(250, 248, 252));
  CHECK_FALSE(data::fit_stain_stats(data::StainMethod::macenko, {glass}).fitted());
  const auto ref = beer_lambert(kMacenkoH, kMacenkoE, 1.0, 3);
  const auto norm = data::StainNormaliser::fit(data::StainMethod::macenko, {ref.rgb});
  CHECK(mean_abs_diff(norm.normalise(glass), glass) == 0);
  CHECK_THROWS_WITH(data::StainNormaliser::fit(data::StainMethod::macenko, {glass}), Catch::Contains("too little tissue"));
}

TEST_CASE("Macenko maps an image onto the reference's stains and concentrations", "[stain]") {
  const auto a = beer_lambert(kRuifrokH, kRuifrokE, 0.8, 21);  // one lab: lighter, other dyes
  const auto b = beer_lambert(kMacenkoH, kMacenkoE, 1.3, 22);  // the reference
  const auto norm = data::StainNormaliser::fit(data::StainMethod::macenko, {b.rgb});
  const cv::Mat out = norm.normalise(a.rgb);
  // Oracle: A's true concentrations, scaled so their 99th percentiles become B's, rendered with
  // B's vectors (Macenko et al. 2009, the published recipe).
  const auto max_a = true_max_concentration(a), max_b = true_max_concentration(b);
  cv::Mat expected(a.rgb.size(), CV_8UC3);
  for (int i = 0; i < a.rgb.rows * a.rgb.cols; ++i) {
    auto& p = expected.at<cv::Vec3b>(i / a.rgb.cols, i % a.rgb.cols);
    const double ch = a.ch[i] * max_b[0] / max_a[0], ce = a.ce[i] * max_b[1] / max_a[1];
    for (int c = 0; c < 3; ++c) {
      p[c] = cv::saturate_cast<uint8_t>(256.0 * std::exp(-(ch * kMacenkoH[c] + ce * kMacenkoE[c])) - 1.0);
    }
  }
  CHECK(mean_abs_diff(out, expected) < 2.0);
  CHECK(mean_abs_diff(a.rgb, expected) > 10.0);  // the check above is not vacuous
  // And the output, fitted again, has B's statistics.
  const auto s = data::fit_stain_stats(data::StainMethod::macenko, {out});
  CHECK(angle_degrees(s.haematoxylin, kMacenkoH) < 2.0);
  CHECK(angle_degrees(s.eosin, kMacenkoE) < 2.0);
  CHECK(s.max_concentration[0] == Approx(norm.target().max_concentration[0]).epsilon(0.05));
  CHECK(s.max_concentration[1] == Approx(norm.target().max_concentration[1]).epsilon(0.05));
}

TEST_CASE("Reinhard gives the output the reference's L*a*b* mean and spread", "[stain]") {
  const auto a = beer_lambert(kRuifrokH, kRuifrokE, 0.7, 31);
  const auto b = beer_lambert(kMacenkoH, kMacenkoE, 0.9, 32);
  const auto norm = data::StainNormaliser::fit(data::StainMethod::reinhard, {b.rgb});
  // OpenCV's L*a*b* is the CIE one.
  const auto [bm, bs] = lab_stats({b.rgb});
  for (int c = 0; c < 3; ++c) {
    CHECK(norm.target().lab_mean[c] == Approx(bm[c]).margin(0.3));
    CHECK(norm.target().lab_std[c] == Approx(bs[c]).margin(0.3));
  }
  const cv::Mat out = norm.normalise(a.rgb);
  const auto [om, os] = lab_stats({out});
  const auto [am, as] = lab_stats({a.rgb});
  for (int c = 0; c < 3; ++c) {
    INFO("channel " << c << ": source " << am[c] << " +- " << as[c] << ", reference " << bm[c] << " +- " << bs[c]);
    CHECK(om[c] == Approx(bm[c]).margin(0.6));
    CHECK(os[c] == Approx(bs[c]).margin(0.6));
  }
  CHECK(std::abs(am[2] - bm[2]) > 3.0);  // the images did differ
  // Pure white (glass, the padding of border patches) counts in no statistic and stays white.
  cv::Mat padded;
  cv::copyMakeBorder(a.rgb, padded, 0, 40, 0, 40, cv::BORDER_CONSTANT, cv::Scalar(255, 255, 255));
  const cv::Mat out_padded = norm.normalise(padded);
  CHECK(mean_abs_diff(out_padded(cv::Rect(0, 0, 64, 64)), out) == 0);
  CHECK(out_padded.at<cv::Vec3b>(100, 100) == cv::Vec3b(255, 255, 255));
}

TEST_CASE("Fitting per slide keeps the differences between patches that fitting per patch removes", "[stain]") {
  // Two patches of one slide: one rich in haematoxylin (a tumour nest), one mostly eosin (stroma).
  const auto nuclei = beer_lambert(kRuifrokH, kRuifrokE, 0.8, 41, 48, 0.85).rgb;
  const auto stroma = beer_lambert(kRuifrokH, kRuifrokE, 0.8, 42, 48, 0.15).rgb;
  const auto ref = beer_lambert(kMacenkoH, kMacenkoE, 1.0, 43).rgb;
  const auto reinhard = data::StainNormaliser::fit(data::StainMethod::reinhard, {ref});
  const auto [n_mean, n_sd] = lab_stats({nuclei});
  const auto [s_mean, s_sd] = lab_stats({stroma});
  const double before = n_mean[2] - s_mean[2];  // b*: haematoxylin is bluer
  REQUIRE(std::abs(before) > 3.0);

  // Per patch: each patch gets the reference's mean, so the two look alike.
  const auto [pn, pn_sd] = lab_stats({reinhard.normalise(nuclei)});
  const auto [ps, ps_sd] = lab_stats({reinhard.normalise(stroma)});
  CHECK(std::abs(pn[2] - ps[2]) < 0.6);

  // Per slide: one source for both; their difference survives, scaled by the reference's spread over
  // the slide's, and the slide as a whole gets the reference's statistics.
  const auto slide = reinhard.source_stats({nuclei, stroma});
  const cv::Mat gn = reinhard.normalise(nuclei, slide), gs = reinhard.normalise(stroma, slide);
  const auto [gnm, gnm_sd] = lab_stats({gn});
  const auto [gsm, gsm_sd] = lab_stats({gs});
  CHECK(gnm[2] - gsm[2] == Approx(before * reinhard.target().lab_std[2] / slide.lab_std[2]).epsilon(0.1));
  const auto [both, both_sd] = lab_stats({gn, gs});
  CHECK(both[2] == Approx(reinhard.target().lab_mean[2]).margin(0.6));
  // normalise_group is the same thing in one call.
  const auto group = reinhard.normalise_group({nuclei, stroma});
  CHECK(mean_abs_diff(group[0], gn) == 0);
  CHECK(mean_abs_diff(group[1], gs) == 0);

  // Macenko: a patch of one stain alone cannot show two stain vectors; it borrows the reference's,
  // while its slide's pixels give their own.
  const auto macenko = data::StainNormaliser::fit(data::StainMethod::macenko, {ref});
  cv::Mat eosin_only(48, 48, CV_8UC3);
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0.3, 1.2);
  for (int y = 0; y < 48; ++y) {
    for (int x = 0; x < 48; ++x) {
      const double ce = u(rng);
      for (int c = 0; c < 3; ++c) {
        eosin_only.at<cv::Vec3b>(y, x)[c] = cv::saturate_cast<uint8_t>(256.0 * std::exp(-ce * kRuifrokE[c]) - 1.0);
      }
    }
  }
  const auto own = macenko.source_stats({eosin_only});
  CHECK(own.fitted());
  CHECK(own.borrowed_vectors);
  CHECK(own.haematoxylin == macenko.target().haematoxylin);
  const auto with_slide = macenko.source_stats({eosin_only, nuclei, stroma});
  CHECK_FALSE(with_slide.borrowed_vectors);
  CHECK(angle_degrees(with_slide.eosin, kRuifrokE) < 3.0);
  CHECK(mean_abs_diff(macenko.normalise(eosin_only), macenko.normalise(eosin_only, with_slide)) > 1.0);
}

TEST_CASE("A stain normaliser round-trips through the bundle's preprocessing JSON", "[stain]") {
  const auto ref = beer_lambert(kMacenkoH, kMacenkoE, 1.0, 51).rgb;
  const auto patch = beer_lambert(kRuifrokH, kRuifrokE, 0.8, 52, 50).rgb;
  for (auto method : {data::StainMethod::reinhard, data::StainMethod::macenko}) {
    for (auto fit : {data::StainFit::patch, data::StainFit::slide}) {
      INFO(data::stain_method_name(method) << " per " << data::stain_fit_name(fit));
      auto pre = data::preprocessing_for("imagenet", 96);
      pre.stain = data::StainNormaliser::fit(method, {ref}, fit);
      inference::ModelCard card;
      card.preprocessing = pre;
      card.class_names = inference::idc_class_names();
      const auto back = inference::ModelCard::from_json(card.to_json(), "model.json").preprocessing;
      REQUIRE(back.stain.has_value());
      CHECK(back.stain->method() == method);
      CHECK(back.stain->fit_mode() == fit);
      CHECK(back.to_json() == pre.to_json());
      CHECK(mean_abs_diff(back.prepare(patch), pre.prepare(patch)) == 0);
      // prepare() normalises: the stain changes what the model sees.
      auto plain = pre;
      plain.stain.reset();
      CHECK(mean_abs_diff(pre.prepare(patch), plain.prepare(patch)) > 1.0);
      // Per slide, stain_source() gives the group's statistics; per patch it gives none.
      CHECK(pre.stain_source({patch, ref}).has_value() == (fit == data::StainFit::slide));
    }
  }
  // A model without normalisation writes no stain field, so older bundles read the same.
  CHECK(data::preprocessing_for("imagenet", 96).to_json().find("stain") == std::string::npos);
  CHECK_THROWS_WITH(data::StainNormaliser::from_json(R"({"method": "vahadane", "fit": "patch", "target": {}})"),
                    Catch::Contains("vahadane"));
  CHECK_THROWS_WITH(data::parse_stain_fit("tile"), Catch::Contains("patch") && Catch::Contains("slide"));
}

TEST_CASE("A dataset fits stain statistics per patient when the preprocessing says per slide", "[stain]") {
  test::TempDir dir;
  auto ds = test::synthetic_dataset(dir, test::synthetic_options(3, 6), 32);
  auto pre = ds.preprocessing();
  std::vector<cv::Mat> reference;
  for (size_t i = 0; i < 4; ++i) reference.push_back(ds.image(i));
  pre.stain = data::StainNormaliser::fit(data::StainMethod::reinhard, reference, data::StainFit::slide);
  const data::PatchDataset per_slide(ds.manifest(), pre);
  auto patch_pre = pre;
  patch_pre.stain->set_fit_mode(data::StainFit::patch);
  const data::PatchDataset per_patch(ds.manifest(), patch_pre);

  const auto& rows = ds.manifest().rows();
  size_t other = 0;
  while (rows[other].patient == rows[0].patient) ++other;
  size_t same = 1;
  while (rows[same].patient != rows[0].patient) ++same;
  const auto* s0 = per_slide.stain_source(0);
  REQUIRE(s0 != nullptr);
  CHECK(per_slide.stain_source(same) == s0);  // one fit per patient
  CHECK(per_slide.stain_source(other)->lab_mean != s0->lab_mean);
  CHECK(per_patch.stain_source(0) == nullptr);
  // The patient's statistics are those of its patches together.
  std::vector<cv::Mat> patient;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].patient == rows[0].patient) patient.push_back(ds.image(i));
  }
  const auto direct = pre.stain->source_stats(patient);
  for (int c = 0; c < 3; ++c) CHECK(s0->lab_mean[c] == Approx(direct.lab_mean[c]));
  CHECK(torch::allclose(per_slide.tensor(0), per_slide.tensor(0)));
  CHECK_FALSE(torch::allclose(per_slide.tensor(0), per_patch.tensor(0)));
  // A restained view fits its own (restained) statistics.
  const auto shifted = per_slide.with_stain_shift(0.2, 7);
  CHECK(shifted.stain_source(0)->lab_mean != s0->lab_mean);
}

TEST_CASE("HSV jitter: hue turns keep value and saturation, presets name themselves", "[stain]") {
  const auto patch = beer_lambert(kRuifrokH, kRuifrokE, 0.8, 61, 40).rgb;
  data::AugmentOptions hue_only;
  hue_only.enabled = true;
  hue_only.hue = 1.0;
  bool changed = false;
  for (uint64_t seed = 0; seed < 4; ++seed) {
    std::mt19937_64 rng(seed);
    const cv::Mat out = data::jitter_hsv(patch, hue_only, rng);
    changed = changed || mean_abs_diff(out, patch) > 5;
    // A hue turn keeps each pixel's largest and smallest channel (V and V (1 - S)).
    double worst = 0;
    for (int y = 0; y < patch.rows; ++y) {
      for (int x = 0; x < patch.cols; ++x) {
        const auto& a = patch.at<cv::Vec3b>(y, x);
        const auto& b = out.at<cv::Vec3b>(y, x);
        const int amax = std::max({a[0], a[1], a[2]}), bmax = std::max({b[0], b[1], b[2]});
        const int amin = std::min({a[0], a[1], a[2]}), bmin = std::min({b[0], b[1], b[2]});
        worst = std::max({worst, std::abs(amax - bmax) * 1.0, std::abs(amin - bmin) * 1.0});
      }
    }
    CHECK(worst <= 1.0);
  }
  CHECK(changed);
  // Contrast alone is one affine map for all three channels (about the patch's mean grey).
  data::AugmentOptions contrast_only;
  contrast_only.enabled = true;
  contrast_only.contrast = 0.25;
  std::mt19937_64 rng(9);
  const cv::Mat c = data::jitter_hsv(patch, contrast_only, rng);
  double sx = 0, sy = 0, sxx = 0, sxy = 0, n = 0;
  for (int y = 0; y < patch.rows; ++y) {
    for (int x = 0; x < patch.cols; ++x) {
      for (int ch = 0; ch < 3; ++ch) {
        const double a = patch.at<cv::Vec3b>(y, x)[ch], b = c.at<cv::Vec3b>(y, x)[ch];
        if (b <= 0 || b >= 255) continue;
        sx += a, sy += b, sxx += a * a, sxy += a * b, ++n;
      }
    }
  }
  const double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx), offset = (sy - slope * sx) / n;
  double worst = 0;
  for (int y = 0; y < patch.rows; ++y) {
    for (int x = 0; x < patch.cols; ++x) {
      for (int ch = 0; ch < 3; ++ch) {
        const double a = patch.at<cv::Vec3b>(y, x)[ch], b = c.at<cv::Vec3b>(y, x)[ch];
        if (b <= 0 || b >= 255) continue;
        worst = std::max(worst, std::abs(slope * a + offset - b));
      }
    }
  }
  CHECK(worst <= 1.0);
  CHECK(std::abs(slope - 1.0) > 0.01);

  auto strong = data::AugmentOptions::preset("hsv-strong");
  CHECK(strong.hue == 1.0);
  CHECK(strong.saturation == 1.0);
  CHECK(strong.preset_name() == "hsv-strong");
  CHECK(data::AugmentOptions::preset("hsv-light").preset_name() == "hsv-light");
  CHECK(data::AugmentOptions::preset("hsv:0.1").preset_name() == "hsv-light");
  CHECK(data::AugmentOptions::preset("hsv:0.5").preset_name() == "hsv:0.5");
  CHECK(data::AugmentOptions::preset("hsv:0.5").value == 0.25);
  CHECK_THROWS_WITH(data::AugmentOptions::preset("hsv:2"), Catch::Contains("hsv:2"));
  // Existing presets keep their JSON (and the run names derived from it).
  CHECK(data::AugmentOptions::preset("histology").to_json().find("hue") == std::string::npos);
  // The preset runs through augment_patch, seeded.
  std::mt19937_64 r1(3), r2(3);
  CHECK(mean_abs_diff(data::augment_patch(patch, strong, r1), data::augment_patch(patch, strong, r2)) == 0);
}

TEST_CASE("A run fits the stain reference on its training split and every prediction path applies it", "[stain]") {
  test::TempDir dir;
  data::SyntheticOptions synth = test::synthetic_options(6, 16);
  synth.seed = 5;
  train::RunOptions run = one_epoch_run(dir, synth);
  run.name = "stain";
  train::set_run_option(run, "stain_normalise", "\"macenko\"");
  train::set_run_option(run, "stain_fit", "\"slide\"");
  const auto result = train::run_training(run);

  const auto predictor = inference::Predictor(result.model_dir, "cpu");
  const auto& stain = predictor.preprocessing().stain;
  REQUIRE(stain.has_value());
  CHECK(stain->method() == data::StainMethod::macenko);
  CHECK(stain->fit_mode() == data::StainFit::slide);
  // The reference is the training split's stain, not the whole folder's.
  const auto manifest = data::Manifest::load_csv(result.run_dir / "manifest.csv");
  const auto train_ref = data::fit_stain_reference(data::StainMethod::macenko, data::StainFit::slide, false,
                                                   manifest.subset("train"));
  CHECK(stain->to_json() == train_ref.to_json());

  // The saved bundle reproduces the run's test numbers (per-patient fits in both).
  auto eo = quiet_cpu_evaluation();
  const auto test_split = manifest.subset("test");
  const auto evaluation = inference::evaluate_bundle(result.model_dir, test_split, eo);
  CHECK(evaluation.metrics.roc_auc == Approx(result.test.roc_auc).margin(1e-6));
  CHECK(evaluation.report.find("macenko stain normalisation fitted per patient") != std::string::npos);
  // Fitting each patch alone is another input, so other scores.
  eo.stain_fit = data::StainFit::patch;
  const auto per_patch = inference::evaluate_bundle(result.model_dir, test_split, eo);
  CHECK(per_patch.predictions.p_positive != evaluation.predictions.p_positive);

  // The Predictor, given one patient's patches as one request, fits them together and agrees.
  const auto& rows = test_split.rows();
  std::vector<cv::Mat> patient;
  std::vector<double> expected;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].patient != rows[0].patient) continue;
    patient.push_back(io::read_image_rgb(test_split.absolute_path(i)));
    expected.push_back(evaluation.predictions.p_positive[i]);
  }
  const auto p = predictor.predict(patient);
  REQUIRE(p.size() == expected.size());
  for (size_t k = 0; k < p.size(); ++k) CHECK(p[k] == Approx(expected[k]).margin(1e-5));
}

namespace {
// Beer-Lambert with Ruifrok & Johnston's vectors from given concentrations (no residual).
cv::Mat render_stains(const std::vector<double>& ch, const std::vector<double>& ce, double eosin_scale, int size) {
  cv::Mat rgb(size, size, CV_8UC3);
  for (int i = 0; i < size * size; ++i) {
    auto& p = rgb.at<cv::Vec3b>(i / size, i % size);
    for (int c = 0; c < 3; ++c) {
      p[c] = cv::saturate_cast<uint8_t>(256.0 * std::exp(-(ch[i] * kRuifrokH[c] + eosin_scale * ce[i] * kRuifrokE[c])) - 1.0);
    }
  }
  return rgb;
}
}  // namespace

TEST_CASE("Colour input: the haematoxylin image is the haematoxylin a patch was stained with, whatever its eosin",
          "[stain]") {
  const int size = 64;
  const auto stained = beer_lambert(kRuifrokH, kRuifrokE, 1.0, 7, size);
  const cv::Mat h = data::haematoxylin_image(stained.rgb);
  REQUIRE(h.type() == CV_8UC3);
  // Against the published deconvolution's answer, the intensity of haematoxylin alone: 256 exp(-cH) - 1.
  // The patch is rendered to 8 bits first, so each channel's optical density is off by up to half a
  // level: at most about 1.5 levels of the grey in the light range this test image spans.
  double sum_err = 0, max_err = 0;
  for (int i = 0; i < size * size; ++i) {
    const auto& p = h.at<cv::Vec3b>(i / size, i % size);
    CHECK((p[0] == p[1] && p[1] == p[2]));
    const double expected = std::clamp(256.0 * std::exp(-stained.ch[i]) - 1.0, 0.0, 255.0);
    const double err = std::abs(p[0] - expected);
    sum_err += err;
    max_err = std::max(max_err, err);
  }
  INFO("mean error " << sum_err / (size * size) << ", max " << max_err);
  CHECK(sum_err / (size * size) < 1.0);
  CHECK(max_err <= 2.0);

  // The same haematoxylin under a third or 1.7 times the eosin: the RGB patches differ a lot, their
  // haematoxylin images hardly (8-bit rounding), and white glass stays white.
  const cv::Mat pale = render_stains(stained.ch, stained.ce, 0.3, size);
  const cv::Mat pink = render_stains(stained.ch, stained.ce, 1.7, size);
  CHECK(mean_abs_diff(pale, pink) > 15);
  CHECK(mean_abs_diff(data::haematoxylin_image(pale), data::haematoxylin_image(pink)) < 1.0);
  cv::Mat glass(8, 8, CV_8UC3, cv::Scalar(255, 255, 255));
  CHECK(mean_abs_diff(data::haematoxylin_image(glass), glass) == 0);

  // A model sees it through its preprocessing, which saves the choice in the bundle's JSON.
  data::Preprocessing pre;
  pre.image_size = size;
  pre.colour = data::Colour::haematoxylin;
  CHECK(mean_abs_diff(pre.prepare(stained.rgb), h) == 0);
  const auto back = data::Preprocessing::from_json(pre.to_json());
  CHECK(back.colour == data::Colour::haematoxylin);
  // A bundle written before the field sees colour; an unknown value names the choices.
  auto j = nlohmann::json::parse(pre.to_json());
  j.erase("colour");
  CHECK(data::Preprocessing::from_json(j.dump()).colour == data::Colour::rgb);
  j["colour"] = "sepia";
  CHECK_THROWS_WITH(data::Preprocessing::from_json(j.dump()), Catch::Contains("'sepia'") && Catch::Contains("rgb, grey or haematoxylin"));
}

TEST_CASE("Colour input: grey is the luma of ITU-R BT.601 on every channel, and never writes into the patch",
          "[stain]") {
  const auto stained = beer_lambert(kMacenkoH, kMacenkoE, 1.0, 9, 50);
  const cv::Mat before = stained.rgb.clone();
  data::Preprocessing pre;
  pre.image_size = 50;  // the patch's own size: nothing is resized, so nothing else makes a copy
  pre.colour = data::Colour::grey;
  const cv::Mat g = pre.prepare(stained.rgb);
  CHECK(mean_abs_diff(stained.rgb, before) == 0);
  int worst = 0;
  for (int y = 0; y < g.rows; ++y) {
    for (int x = 0; x < g.cols; ++x) {
      const auto& p = stained.rgb.at<cv::Vec3b>(y, x);
      const auto& q = g.at<cv::Vec3b>(y, x);
      const int luma = static_cast<int>(std::lround(0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]));
      worst = std::max({worst, std::abs(q[0] - luma), std::abs(q[1] - luma), std::abs(q[2] - luma)});
    }
  }
  CHECK(worst <= 1);  // OpenCV's fixed-point weights may round the other way
  CHECK(data::Preprocessing::from_json(pre.to_json()).colour == data::Colour::grey);
}

TEST_CASE("A run with haematoxylin input saves it in the bundle, and the bundle reproduces the run's test AUC",
          "[stain]") {
  test::TempDir dir;
  data::SyntheticOptions synth = test::synthetic_options(6, 16);
  synth.seed = 6;
  train::RunOptions run = one_epoch_run(dir, synth);
  const auto rgb_name = train::default_run_name(run);
  CHECK_THROWS_WITH(train::set_run_option(run, "colour", "\"sepia\""), Catch::Contains("rgb, grey, haematoxylin"));
  train::set_run_option(run, "colour", "\"haematoxylin\"");
  CHECK(train::default_run_name(run) != rgb_name);  // another input, another run folder
  const auto result = train::run_training(run);

  const auto predictor = inference::Predictor(result.model_dir, "cpu");
  CHECK(predictor.preprocessing().colour == data::Colour::haematoxylin);
  const auto eo = quiet_cpu_evaluation();
  const auto manifest = data::Manifest::load_csv(result.run_dir / "manifest.csv");
  const auto evaluation = inference::evaluate_bundle(result.model_dir, manifest.subset("test"), eo);
  CHECK(evaluation.metrics.roc_auc == Approx(result.test.roc_auc).margin(1e-6));
}

TEST_CASE("Macenko white-balanced to the glass cancels a tint a whole slide shares", "[stain]") {
  const Vec3 tint = {0.12, 0.20, 0.08};
  const auto slide = glass_slide(), tinted = with_tint(slide, tint);
  const auto ref = beer_lambert(kMacenkoH, kMacenkoE, 1.2, 3);
  auto difference = [&](bool white_balance) {
    const auto norm = data::StainNormaliser::fit(data::StainMethod::macenko, {ref.rgb}, data::StainFit::slide,
                                                 white_balance);
    const auto a = norm.normalise_group(slide), b = norm.normalise_group(tinted);
    double d = 0;
    for (size_t k = 0; k < a.size(); ++k) d += mean_abs_diff(a[k], b[k]) / a.size();
    return d;
  };
  const double plain = difference(false), balanced = difference(true);
  INFO("mean |normalised(tinted) - normalised(slide)|: " << plain << " plain, " << balanced << " white-balanced");
  CHECK(plain > 5);
  CHECK(balanced < 1.5);  // 8-bit rounding of the tinted slide and of its 1st percentile

  // The glass it subtracts is the tint (the glass of the untinted slide is nearly white).
  const auto norm = data::StainNormaliser::fit(data::StainMethod::macenko, {ref.rgb}, data::StainFit::slide, true);
  const auto glass = norm.source_stats(tinted).background, clean = norm.source_stats(slide).background;
  for (int c = 0; c < 3; ++c) CHECK(glass[c] - clean[c] == Approx(tint[c]).margin(0.02));
  // Saved with the model, and refused where it has no meaning.
  const auto back = data::StainNormaliser::from_json(norm.to_json());
  CHECK(back.white_balance());
  CHECK(back.target().background == norm.target().background);
  CHECK_FALSE(data::StainNormaliser::from_json(data::StainNormaliser::fit(data::StainMethod::macenko, {ref.rgb}).to_json())
                  .white_balance());
  CHECK_THROWS_WITH(data::StainNormaliser::fit(data::StainMethod::reinhard, {ref.rgb}, data::StainFit::slide, true),
                    Catch::Contains("part of Macenko"));
  train::RunOptions run;
  run.data_dirs = {"x"};
  run.stain_white_balance = true;
  CHECK_THROWS_WITH(run.validate(), Catch::Contains("stain_white_balance") && Catch::Contains("macenko"));
}

TEST_CASE("The glass white balance subtracts is each channel's 1st percentile of optical density, padding left out",
          "[stain]") {
  // Random tissue-like levels with pure-white padding mixed in; the oracle sorts every density.
  cv::RNG rng(5);
  std::vector<cv::Mat> images;
  for (int k = 0; k < 3; ++k) {
    cv::Mat m(97 + k, 101, CV_8UC3);  // 25,000 non-white pixels in all: enough for a source's own glass
    rng.fill(m, cv::RNG::UNIFORM, cv::Scalar(60, 30, 90), cv::Scalar(256, 256, 256));
    for (int i = 0; i < m.rows * m.cols; i += 7) m.at<cv::Vec3b>(i / m.cols, i % m.cols) = cv::Vec3b(255, 255, 255);
    images.push_back(m);
  }
  const auto ref = beer_lambert(kMacenkoH, kMacenkoE, 1.2, 3);
  const auto norm = data::StainNormaliser::fit(data::StainMethod::macenko, {ref.rgb}, data::StainFit::slide, true);
  const auto glass = norm.source_stats(images).background;
  for (int c = 0; c < 3; ++c) {
    std::vector<double> d;
    for (const auto& m : images) {
      for (int i = 0; i < m.rows * m.cols; ++i) {
        const auto& p = m.at<cv::Vec3b>(i / m.cols, i % m.cols);
        if (p != cv::Vec3b(255, 255, 255)) d.push_back(od(p[c]));
      }
    }
    std::sort(d.begin(), d.end());
    const double pos = 0.01 * (d.size() - 1);
    const auto lo = static_cast<size_t>(pos);
    REQUIRE(pos > lo);  // an interpolated percentile, not an order statistic alone
    CHECK(glass[c] == Approx(d[lo] + (pos - lo) * (d[lo + 1] - d[lo])).epsilon(1e-12));
  }
}

TEST_CASE("White balance alone moves each slide's glass onto the reference's and leaves its stains as they are",
          "[stain]") {
  const Vec3 tint = {0.12, 0.20, 0.08}, ref_tint = {0.03, 0.06, 0.01};
  const auto slide = glass_slide(), tinted = with_tint(slide, tint);
  const auto ref = with_tint(beer_lambert(kMacenkoH, kMacenkoE, 1.2, 3).rgb, ref_tint);
  const auto norm = data::StainNormaliser::fit(data::StainMethod::white_balance, {ref}, data::StainFit::slide);
  const auto a = norm.normalise_group(slide), b = norm.normalise_group(tinted);
  double tinted_gap = 0, normalised_gap = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    tinted_gap += mean_abs_diff(slide[k], tinted[k]) / a.size();
    normalised_gap += mean_abs_diff(a[k], b[k]) / a.size();
  }
  INFO("mean |tinted - slide| " << tinted_gap << ", after white balance " << normalised_gap);
  CHECK(tinted_gap > 10);
  CHECK(normalised_gap < 1.5);  // 8-bit rounding of the tinted slide and of its 1st percentile

  // Von Kries per channel: OD' = OD - the source's glass + the reference's, pixel by pixel.
  const auto source = norm.source_stats(tinted);
  REQUIRE(source.fitted());
  for (int c = 0; c < 3; ++c) {
    CHECK(source.background[c] - norm.source_stats(slide).background[c] == Approx(tint[c]).margin(0.02));
    CHECK(norm.target().background[c] >= ref_tint[c] - 0.02);  // the reference's glass, its tint included
  }
  REQUIRE(b[0].size() == cv::Size(48, 48));
  for (int i = 0; i < 48 * 48; ++i) {
    const auto& p = tinted[0].at<cv::Vec3b>(i / 48, i % 48);
    const auto& q = b[0].at<cv::Vec3b>(i / 48, i % 48);
    for (int c = 0; c < 3; ++c) {
      const double expected = 256.0 * std::exp(-(od(p[c]) - source.background[c] + norm.target().background[c])) - 1;
      CHECK(q[c] == cv::saturate_cast<uint8_t>(expected));
    }
  }
  // The stains are left as they are: the slide's own vectors, not the reference's (Macenko's).
  const auto stains = data::fit_stain_stats(data::StainMethod::macenko, a);
  REQUIRE(stains.fitted());
  CHECK(angle_degrees(stains.haematoxylin, kRuifrokH) < 3.0);
  CHECK(angle_degrees(stains.eosin, kRuifrokE) < 3.0);
  CHECK(angle_degrees(stains.haematoxylin, kMacenkoH) > 5.0);

  // Saved with the model; pure white has nothing to fit; the Macenko flag is refused beside it.
  const auto back = data::StainNormaliser::from_json(norm.to_json());
  CHECK(back.method() == data::StainMethod::white_balance);
  CHECK(back.target().background == norm.target().background);
  CHECK(mean_abs_diff(back.normalise(tinted[0], source), b[0]) == 0);
  const cv::Mat white(16, 16, CV_8UC3, cv::Scalar(255, 255, 255));
  CHECK_THROWS_WITH(data::StainNormaliser::fit(data::StainMethod::white_balance, {white}),
                    Catch::Contains("too little tissue"));
  CHECK_THROWS_WITH(data::StainNormaliser::fit(data::StainMethod::white_balance, {ref}, data::StainFit::slide, true),
                    Catch::Contains("part of Macenko"));
  CHECK(data::parse_stain_method("white-balance") == data::StainMethod::white_balance);
  CHECK_THROWS_WITH(data::parse_stain_method("glass"), Catch::Contains("white-balance"));
  train::RunOptions run;
  run.data_dirs = {"x"};
  run.stain_normalise = "white-balance";
  run.stain_white_balance = true;
  CHECK_THROWS_WITH(run.validate(), Catch::Contains("white balance alone"));
}

TEST_CASE("A source too small to show its glass is taken to have the reference's: one patch passes unchanged",
          "[stain]") {
  // Below eight 50-pixel patches' worth of non-white pixels a group's 1st percentile is pale tissue,
  // not glass (bench/glass_sample_size.py): white balance leaves such a request as it is.
  const Vec3 tint = {0.12, 0.20, 0.08};
  const auto ref = beer_lambert(kMacenkoH, kMacenkoE, 1.2, 3).rgb;
  std::vector<cv::Mat> patches;
  for (uint64_t seed = 41; seed < 49; ++seed) patches.push_back(beer_lambert(kRuifrokH, kRuifrokE, 1.0, seed, 50).rgb);
  patches = with_tint(patches, tint);
  const std::vector<cv::Mat> seven(patches.begin(), patches.begin() + 7);

  const auto alone = data::StainNormaliser::fit(data::StainMethod::white_balance, {ref}, data::StainFit::slide);
  const auto eight = alone.source_stats(patches), small = alone.source_stats(seven);
  REQUIRE(eight.pixels == 8 * 50 * 50);  // no pure white among them: every pixel counts
  REQUIRE(small.pixels == 7 * 50 * 50);
  for (int c = 0; c < 3; ++c) {
    CHECK(eight.background[c] - alone.target().background[c] == Approx(tint[c]).margin(0.03));  // its own glass
    CHECK(small.background[c] == alone.target().background[c]);                                 // the reference's
  }
  CHECK(mean_abs_diff(alone.normalise(patches[0]), patches[0]) == 0);  // fitted on itself: one patch
  const auto small_out = alone.normalise_group(seven);
  for (size_t k = 0; k < seven.size(); ++k) CHECK(mean_abs_diff(small_out[k], seven[k]) == 0);
  CHECK(mean_abs_diff(alone.normalise_group(patches)[0], patches[0]) > 10);  // eight: the tint comes off

  // Macenko's white balance takes the same glass: the reference's for a small group.
  const auto macenko = data::StainNormaliser::fit(data::StainMethod::macenko, {ref}, data::StainFit::slide, true);
  CHECK(macenko.source_stats(seven).background == macenko.target().background);
  const auto own = macenko.source_stats(patches).background;
  for (int c = 0; c < 3; ++c) CHECK(own[c] - macenko.target().background[c] == Approx(tint[c]).margin(0.03));
  // A reference is not a source: one image may be it (the glass of --stain-reference IMAGE).
  CHECK(data::StainNormaliser::fit(data::StainMethod::white_balance, {patches[0]}).target().background ==
        eight.background);
}
