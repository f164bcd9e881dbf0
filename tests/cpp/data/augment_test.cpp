#include "histocnn/data/augment.h"
#include "histocnn/data/synthetic.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <opencv2/imgproc.hpp>

using namespace histocnn;

namespace {
cv::Mat sample_patch() {
  data::SyntheticOptions o;
  return data::render_synthetic_patch(1, 1234, o);
}
double mean_abs_diff(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat d;
  cv::absdiff(a, b, d);
  auto m = cv::mean(d);
  return (m[0] + m[1] + m[2]) / 3;
}
}  // namespace

TEST_CASE("Augmentation is seeded, keeps the size, and never touches its input", "[data]") {
  const cv::Mat patch = sample_patch();
  const cv::Mat original = patch.clone();
  for (const char* preset : {"flips", "study", "histology"}) {
    INFO(preset);
    auto o = data::AugmentOptions::preset(preset);
    std::mt19937_64 a(7), b(7), c(8);
    cv::Mat x = data::augment_patch(patch, o, a), y = data::augment_patch(patch, o, b);
    CHECK(x.size() == patch.size());
    CHECK(x.type() == CV_8UC3);
    CHECK(mean_abs_diff(x, y) == 0);
    // Different draws differ for almost every seed pair; try a few to avoid a chance identity.
    bool differs = false;
    for (int k = 0; k < 4 && !differs; ++k) differs = mean_abs_diff(x, data::augment_patch(patch, o, c)) > 0;
    CHECK(differs);
    CHECK(mean_abs_diff(patch, original) == 0);
  }
  CHECK_THROWS_WITH(data::AugmentOptions::preset("mixup"), Catch::Contains("mixup"));
  // histology:<sigma> is the histology preset with another H&E jitter, and names itself back.
  auto strong = data::AugmentOptions::preset("histology:0.1");
  CHECK(strong.stain_jitter == 0.1);
  CHECK(strong.brightness == data::AugmentOptions::preset("histology").brightness);
  CHECK(strong.preset_name() == "histology:0.1");
  CHECK(data::AugmentOptions::preset("histology:0.05").preset_name() == "histology");
  for (const char* bad_spec : {"histology:x", "histology:0", "histology:2", "flips:0.1", "histology:0.1x"}) {
    CHECK_THROWS_WITH(data::AugmentOptions::preset(bad_spec), Catch::Contains(bad_spec));
  }
  data::AugmentOptions bad;
  bad.zoom_max = 0.5;
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("zoom_max"));
}

TEST_CASE("Flips and quarter turns only permute pixels", "[data]") {
  const cv::Mat patch = sample_patch();
  auto o = data::AugmentOptions::preset("flips");
  std::mt19937_64 rng(3);
  for (int i = 0; i < 8; ++i) {
    cv::Mat x = data::augment_patch(patch, o, rng);
    CHECK(cv::mean(x) == cv::mean(patch));
  }
}

TEST_CASE("H&E stain jitter round-trips at zero strength and shifts colour otherwise", "[data]") {
  const cv::Mat patch = sample_patch();
  std::mt19937_64 rng(11);
  // sigma 0: deconvolution into H, E, residual and back is the identity up to rounding.
  cv::Mat same = data::jitter_stains(patch, 0.0, rng);
  cv::Mat d;
  cv::absdiff(same, patch, d);
  double max_diff = 0;
  cv::minMaxLoc(d.reshape(1), nullptr, &max_diff);
  CHECK(max_diff <= 1.0);
  // sigma 0.1: a visible but moderate colour change.
  double total = 0;
  for (int i = 0; i < 20; ++i) total += mean_abs_diff(data::jitter_stains(patch, 0.1, rng), patch);
  CHECK(total / 20 > 2.0);
  CHECK(total / 20 < 60.0);
  // Pure white background (no stain) stays white whatever the scale (shifts aside).
  cv::Mat white(10, 10, CV_8UC3, cv::Scalar(255, 255, 255));
  std::mt19937_64 r2(1);
  auto o = data::AugmentOptions::preset("none");
  o.enabled = true;
  o.horizontal_flip = o.vertical_flip = o.rotate90 = false;
  CHECK(mean_abs_diff(data::augment_patch(white, o, r2), white) == 0);
}

TEST_CASE("Rotation and zoom keep the tissue, reflecting at the border", "[data]") {
  const cv::Mat patch = sample_patch();
  data::AugmentOptions o;
  o.enabled = true;
  o.horizontal_flip = o.vertical_flip = o.rotate90 = false;
  o.rotation_degrees = 20;
  o.zoom_max = 1.2;
  std::mt19937_64 rng(5);
  for (int i = 0; i < 10; ++i) {
    cv::Mat x = data::augment_patch(patch, o, rng);
    // No black corners: reflection fills them with tissue colours.
    cv::Mat gray;
    cv::cvtColor(x, gray, cv::COLOR_RGB2GRAY);
    double min_value = 0;
    cv::minMaxLoc(gray, &min_value);
    CHECK(min_value > 5);
    CHECK(std::abs(cv::mean(x)[0] - cv::mean(patch)[0]) < 25);
  }
}

TEST_CASE("The study preset zooms out per axis with nearest fill, as Keras' zoom_range=[1.0, 1.2] does", "[data]") {
  // A black patch with a white frame one pixel wide. Zooming out by z in [1, 1.2] moves the frame
  // inwards by (1 - 1/z) / 2 of the size, and nearest fill paints everything outside it white;
  // zooming in (study-zoom-in) crops the frame away, and the reflected border stays black.
  const int n = 100;
  cv::Mat framed(n, n, CV_8UC3, cv::Scalar(0, 0, 0));
  cv::rectangle(framed, cv::Point(0, 0), cv::Point(n - 1, n - 1), cv::Scalar(255, 255, 255), 1);
  auto without_rotation = [](const std::string& preset) {
    auto o = data::AugmentOptions::preset(preset);
    o.horizontal_flip = o.vertical_flip = false;
    o.rotation_degrees = 0;
    return o;
  };
  const auto out = without_rotation("study"), in = without_rotation("study-zoom-in");
  CHECK(data::AugmentOptions::preset("study").preset_name() == "study");
  CHECK(data::AugmentOptions::preset("study-zoom-in").preset_name() == "study-zoom-in");
  std::mt19937_64 rng(3);
  int anisotropic = 0, zoomed_in_white_corners = 0;
  for (int i = 0; i < 20; ++i) {
    cv::Mat zoomed_out = data::augment_patch(framed, out, rng), zoomed_in = data::augment_patch(framed, in, rng);
    // Where the frame landed, along the middle row and the middle column.
    auto first_white = [&](const cv::Mat& x, bool along_row) {
      for (int k = 0; k < n / 2; ++k) {
        const auto px = along_row ? x.at<cv::Vec3b>(n / 2, k) : x.at<cv::Vec3b>(k, n / 2);
        if (px[0] < 128) return k;  // the first dark pixel inside the white margin
      }
      return n / 2;
    };
    const int margin_x = first_white(zoomed_out, true), margin_y = first_white(zoomed_out, false);
    CHECK(zoomed_out.at<cv::Vec3b>(0, 0)[0] > 200);              // nearest fill: white corner
    CHECK(zoomed_out.at<cv::Vec3b>(n / 2, n / 2)[0] < 50);       // the black inside, shrunk
    CHECK(margin_x >= 1);
    CHECK(margin_x <= 1 + static_cast<int>(std::ceil(n * (1 - 1 / 1.2) / 2)) + 1);
    anisotropic += margin_x != margin_y;
    zoomed_in_white_corners += zoomed_in.at<cv::Vec3b>(0, 0)[0] > 200;
  }
  CHECK(anisotropic > 5);  // one factor per axis
  CHECK(zoomed_in_white_corners <= 2);  // zooming in crops the frame (kept only when z < 1.004)
}
