#include "histocnn/inference/slide_maps.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/image.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>

using namespace histocnn;

namespace {

// Patient "a": a 3 x 2 block at step 50 with a hole; patient "b": one patch. Each patch image is
// a flat colour, so the tissue panel can be checked pixel by pixel.
data::Manifest layout(const std::filesystem::path& root) {
  std::vector<data::PatchRecord> rows;
  auto add = [&](const std::string& patient, int label, int x, int y) {
    const auto path = fmt::format("{}/{}/{}_idx5_x{}_y{}_class{}.png", patient, label, patient, x, y, label);
    io::write_png(root / path, cv::Mat(50, 50, CV_8UC3, cv::Scalar(10 * x / 50, 100, 200)));
    rows.push_back({path, patient, label, x, y, ""});
  };
  add("a", 1, 1, 1);
  add("a", 1, 51, 1);
  add("a", 0, 101, 1);
  add("a", 0, 1, 51);
  add("a", 0, 101, 51);  // (51, 51) is not tissue
  add("b", 1, 1001, 2001);
  return data::Manifest(root, rows);
}

}  // namespace

TEST_CASE("Patches rebuild each patient's slide grid from their coordinates", "[inference][maps]") {
  test::TempDir dir;
  const auto m = layout(dir.path());
  const auto grids = inference::slide_grids(m);
  REQUIRE(grids.size() == 2);
  CHECK(grids[0].patient == "a");
  CHECK(grids[0].cols == 3);
  CHECK(grids[0].rows == 2);
  CHECK(grids[0].step == 50);
  CHECK(grids[0].at(0, 0) == 0);
  CHECK(grids[0].at(2, 0) == 2);
  CHECK(grids[0].at(1, 1) == -1);
  CHECK(grids[0].at(2, 1) == 4);
  CHECK(grids[1].cols == 1);
  CHECK(grids[1].at(0, 0) == 5);

  // Smoothing over the 3 x 3 neighbourhood of the patches present, by hand.
  const std::vector<double> p = {0.9, 0.8, 0.1, 0.3, 0.2, 0.7};
  const auto s = inference::smooth_over_neighbours(m, p, 1);
  CHECK(s[0] == Approx((0.9 + 0.8 + 0.3) / 3));
  CHECK(s[1] == Approx((0.9 + 0.8 + 0.1 + 0.3 + 0.2) / 5));
  CHECK(s[4] == Approx((0.8 + 0.1 + 0.2) / 3));
  CHECK(s[5] == Approx(0.7));  // alone on its slide
  CHECK(inference::smooth_over_neighbours(m, p, 0) == p);

  const auto burden = inference::tumour_burden(m, p, 0.5);
  CHECK(burden[0].patches == 5);
  CHECK(burden[0].true_burden == Approx(2.0 / 5));
  CHECK(burden[0].predicted_burden == Approx(2.0 / 5));
  CHECK(burden[1].true_burden == 1.0);

  // The drawing: tissue, truth, probability and errors at each patch's place.
  const cv::Mat img = inference::draw_patient_map(grids[0], m, {0.9, 0.2, 0.6, 0.3, 0.2, 0.7}, 0.5, 4);
  const int w = 3 * 4, gap = 12, title = 22;
  CHECK(img.cols == 4 * w + 3 * gap);
  CHECK(img.rows == title + 2 * 4);
  auto at = [&](int panel, int col, int row) { return img.at<cv::Vec3b>(title + row * 4 + 1, panel * (w + gap) + col * 4 + 1); };
  CHECK(at(0, 0, 0)[2] == 200);                     // the patch image (R=0, G=100, B=200)
  CHECK(at(0, 1, 1) == cv::Vec3b(255, 255, 255));   // no tissue
  CHECK(at(1, 0, 0) == cv::Vec3b(200, 30, 40));     // truth: positive
  CHECK(at(1, 2, 0) == cv::Vec3b(200, 200, 200));   // truth: negative
  CHECK(at(3, 1, 0) == cv::Vec3b(40, 90, 220));     // false negative (label 1, p 0.2)
  CHECK(at(3, 2, 0) == cv::Vec3b(245, 150, 20));    // false positive (label 0, p 0.6)
  CHECK(at(3, 0, 0) == cv::Vec3b(200, 200, 200));   // correct
  CHECK(at(2, 0, 0)[0] > at(2, 0, 0)[2]);          // P 0.9: red in jet

  test::TempDir out;
  const auto report = inference::write_slide_maps(m, p, 0.5, out.path(), 1, 1);
  CHECK(report.images.size() == 1);  // at most one patient drawn
  CHECK(std::filesystem::exists(out / "a.png"));
  CHECK(io::read_file(out / "burden.csv").find("a,5,0.4000,0.4000,") != std::string::npos);
  CHECK(report.text.find("patch alone") != std::string::npos);
  CHECK(report.text.find("with context (radius 1)") != std::string::npos);

  std::vector<data::PatchRecord> twice = m.rows();
  twice.push_back(twice.front());
  CHECK_THROWS_WITH(inference::slide_grids(data::Manifest(dir.path(), twice)), Catch::Contains("same place"));
  CHECK_THROWS_WITH(inference::smooth_over_neighbours(m, {0.5}, 1), Catch::Contains("one per patch"));
  // The radius is bounded, in the smoothing every caller shares: 16 is accepted, 17 and -1 are not.
  CHECK(inference::smooth_over_neighbours(m, p, inference::kMaxSmoothRadius).size() == p.size());
  CHECK_THROWS_WITH(inference::smooth_over_neighbours(m, p, inference::kMaxSmoothRadius + 1),
                    Catch::Contains("[0, 16]"));
  CHECK_THROWS_WITH(inference::smooth_over_neighbours(m, p, -1), Catch::Contains("[0, 16]"));
  std::vector<double> out_p(p.size());
  CHECK_THROWS_WITH(inference::smooth_on_grid(grids[0], p, 17, out_p), Catch::Contains("[0, 16]"));
}
