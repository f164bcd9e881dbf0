#include "histocnn/inference/context_model.h"
#include "histocnn/core/error.h"
#include "histocnn/data/csv.h"
#include "histocnn/inference/slide_maps.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/image.h"
#include "histocnn/metrics/binary.h"
#include "histocnn/train/run.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <random>

using namespace histocnn;
namespace hi = histocnn::inference;

namespace {

double logit(double p) { return std::log(p / (1 - p)); }

std::string patch_path(const std::string& patient, int label, int x, int y) {
  return fmt::format("{}/{}/{}_idx5_x{}_y{}_class{}.png", patient, label, patient, x, y, label);
}

struct Slides {
  data::Manifest manifest;
  std::vector<double> p;
  std::vector<int> labels;
};

// `patients` slides of 32 x 32 places: an elliptic piece of tissue with a few holes. The truth is
// contiguous blobs (coherent) or the same share of positives dealt at random to the places (no
// spatial coherence). The model's P is the truth buried in heavy noise: logit = +-1 + N(0, 2^2),
// a patch-alone AUC of about 0.76.
Slides synthetic_slides(int patients, uint64_t seed, bool coherent) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(0, 1);
  std::normal_distribution<double> noise(0, 2);
  const int size = 32;
  std::vector<data::PatchRecord> rows;
  Slides s;
  for (int k = 0; k < patients; ++k) {
    const std::string patient = fmt::format("{}", 1000 + k);
    struct Disc { double c, r, radius; };
    std::vector<Disc> discs;
    for (int d = 0; d < 3; ++d) discs.push_back({uniform(rng) * size, uniform(rng) * size, 3 + 4 * uniform(rng)});
    for (int r = 0; r < size; ++r) {
      for (int c = 0; c < size; ++c) {
        const double u = (c - 15.5) / 16, v = (r - 15.5) / 13;
        const bool tissue = u * u + v * v <= 1 && uniform(rng) > 0.05;
        const double draw = uniform(rng);  // drawn for every place, so both layouts share the tissue
        if (!tissue) continue;
        bool positive = false;
        for (const auto& d : discs) positive |= std::hypot(c - d.c, r - d.r) <= d.radius;
        if (!coherent) positive = draw < 0.3;
        const int label = positive ? 1 : 0;
        const double z = (positive ? 1.0 : -1.0) + noise(rng);
        const int x = 1 + 50 * c, y = 1 + 50 * r;
        rows.push_back({patch_path(patient, label, x, y), patient, label, x, y, ""});
        s.p.push_back(1 / (1 + std::exp(-z)));
        s.labels.push_back(label);
      }
    }
  }
  s.manifest = data::Manifest("synthetic", rows);
  return s;
}

double auc(const Slides& s, const std::vector<double>& scores) { return metrics::roc_auc(s.labels, scores); }

}  // namespace

TEST_CASE("Context features describe each patch's neighbourhood on its slide", "[inference][context]") {
  // Patient "a": a 3 x 2 block with (51, 51) missing; patient "b": one patch alone.
  std::vector<data::PatchRecord> rows = {{patch_path("a", 1, 1, 1), "a", 1, 1, 1, ""},
                                         {patch_path("a", 1, 51, 1), "a", 1, 51, 1, ""},
                                         {patch_path("a", 0, 101, 1), "a", 0, 101, 1, ""},
                                         {patch_path("a", 0, 1, 51), "a", 0, 1, 51, ""},
                                         {patch_path("a", 0, 101, 51), "a", 0, 101, 51, ""},
                                         {patch_path("b", 1, 1001, 2001), "b", 1, 1001, 2001, ""}};
  const data::Manifest m("root", rows);
  const std::vector<double> p = {0.9, 0.8, 0.1, 0.3, 0.2, 0.7};
  const auto f = hi::context_features(m, p);
  REQUIRE(f.size() == 6);
  REQUIRE(hi::context_feature_names().size() == 8);
  CHECK(hi::context_feature_names()[1] == "neighbour_mean_logit");
  // Patch 0 at (0, 0): neighbours (1, 0) p 0.8 and (0, 1) p 0.3; on the 5x5 ring (2, 0) p 0.1 and (2, 1) p 0.2.
  CHECK(f[0][0] == Approx(logit(0.9)));
  CHECK(f[0][1] == Approx((logit(0.8) + logit(0.3)) / 2));
  CHECK(f[0][2] == Approx(0.8));
  CHECK(f[0][3] == Approx(0.3));
  CHECK(f[0][4] == Approx((logit(0.1) + logit(0.2)) / 2));
  CHECK(f[0][5] == Approx(2.0 / 8));
  CHECK(f[0][6] == Approx(2.0 / 16));
  CHECK(f[0][7] == Approx(logit(0.9) * 2 / 8));
  // Patch 1 at (1, 0): all four others are neighbours, none on the ring.
  CHECK(f[1][1] == Approx((logit(0.9) + logit(0.1) + logit(0.3) + logit(0.2)) / 4));
  CHECK(f[1][4] == Approx(f[1][1]));  // no ring: the neighbours' mean
  CHECK(f[1][5] == Approx(4.0 / 8));
  CHECK(f[1][6] == 0);
  // Alone on its slide: its own values, no neighbours.
  CHECK(f[5][1] == Approx(logit(0.7)));
  CHECK(f[5][2] == Approx(0.7));
  CHECK(f[5][3] == Approx(0.7));
  CHECK(f[5][4] == Approx(logit(0.7)));
  CHECK(f[5][5] == 0);
  CHECK(f[5][7] == 0);
  CHECK(hi::mean_neighbour_presence(m) == Approx((2 + 4 + 2 + 2 + 2 + 0) / 8.0 / 6));
  // Probabilities of 0 and 1 are clamped, not infinite.
  const auto edge = hi::context_features(m, {0.0, 1.0, 0.5, 0.5, 0.5, 0.5});
  CHECK(std::isfinite(edge[0][0]));
  CHECK(edge[0][0] == Approx(-edge[1][0]));
  CHECK_THROWS_WITH(hi::context_features(m, {0.5, 0.5}), Catch::Contains("one per patch"));
  CHECK_THROWS_WITH(hi::context_features(m, {0.5, 0.5, 1.5, 0.5, 0.5, 0.5}), Catch::Contains("[0, 1]"));
}

TEST_CASE("The learned head over the neighbourhood beats the patch alone where IDC is contiguous",
          "[inference][context]") {
  const auto fit_on = synthetic_slides(8, 1, true), test_on = synthetic_slides(8, 2, true);
  const auto head = hi::ContextModel::fit(fit_on.manifest, fit_on.p, fit_on.labels);
  const auto learned = head.predict(test_on.manifest, test_on.p);
  const double alone = auc(test_on, test_on.p);
  const double smoothed = auc(test_on, hi::smooth_over_neighbours(test_on.manifest, test_on.p, 1));
  const double with_head = auc(test_on, learned);
  INFO(fmt::format("AUC alone {:.4f}, smoothed {:.4f}, learned {:.4f}", alone, smoothed, with_head));
  CHECK(alone == Approx(0.76).margin(0.03));  // the noise is as heavy as intended
  CHECK(with_head > alone + 0.10);
  CHECK(with_head >= smoothed - 0.01);
  // The head leans on the neighbours, not only on the patch.
  CHECK(head.weights()[0] > 0.2);
  CHECK(head.weights()[1] + head.weights()[4] > 0.5);
  CHECK(head.iterations() > 0);
  CHECK(head.threshold() > 0.05);
  CHECK(head.threshold() < 0.95);

  // A sample of the slides (every third patch) is far less complete around each patch than the
  // slides the head learned on, and the report says so; other complete slides are not flagged.
  CHECK(head.neighbourhood_warning(test_on.manifest).empty());
  const auto sample = test_on.manifest.filter([n = 0](const data::PatchRecord&) mutable { return n++ % 3 == 0; });
  CHECK(hi::mean_neighbour_presence(sample) < head.fitted_neighbour_presence() / 2);
  CHECK_THAT(head.neighbourhood_warning(sample), Catch::Contains("other neighbourhoods"));
}

TEST_CASE("Without spatial coherence the neighbours earn no weight and no AUC", "[inference][context]") {
  // The control: the same tissue and noise, the labels dealt at random over the places.
  const auto fit_on = synthetic_slides(8, 3, false), test_on = synthetic_slides(8, 4, false);
  const auto head = hi::ContextModel::fit(fit_on.manifest, fit_on.p, fit_on.labels);
  const double alone = auc(test_on, test_on.p);
  const double with_head = auc(test_on, head.predict(test_on.manifest, test_on.p));
  INFO(fmt::format("AUC alone {:.4f}, learned {:.4f}; weights {:.3f} {:.3f} {:.3f} {:.3f} {:.3f} {:.3f} {:.3f} {:.3f}",
                   alone, with_head, head.weights()[0], head.weights()[1], head.weights()[2], head.weights()[3],
                   head.weights()[4], head.weights()[5], head.weights()[6], head.weights()[7]));
  CHECK(head.weights()[0] > 0.5);
  for (int k = 1; k <= 6; ++k) {
    INFO(hi::context_feature_names()[k]);
    CHECK(std::abs(head.weights()[k]) < 0.15);
  }
  CHECK(with_head - alone < 0.01);
}

TEST_CASE("A context model survives JSON and a file unchanged", "[inference][context]") {
  const auto s = synthetic_slides(3, 5, true);
  const auto head = hi::ContextModel::fit(s.manifest, s.p, s.labels);
  const auto again = hi::ContextModel::from_json(head.to_json());
  CHECK(again.predict(s.manifest, s.p) == head.predict(s.manifest, s.p));
  CHECK(again.weights() == head.weights());
  CHECK(again.intercept() == head.intercept());
  CHECK(again.threshold() == head.threshold());
  CHECK(again.fitted_patches() == static_cast<int64_t>(s.p.size()));
  CHECK(again.fitted_patients() == 3);
  test::TempDir dir;
  head.save(dir / "context_model.json");
  CHECK(hi::ContextModel::load(dir / "context_model.json").predict(s.manifest, s.p) == head.predict(s.manifest, s.p));

  auto json = head.to_json();
  CHECK_THROWS_WITH(hi::ContextModel::from_json("{"), Catch::Contains("not valid JSON"));
  CHECK_THROWS_WITH(hi::ContextModel::from_json("{\"format\": \"other\"}"), Catch::Contains("not a context model"));
  auto renamed = json;
  renamed.replace(renamed.find("ring_presence"), 13, "ring_fraction");
  CHECK_THROWS_WITH(hi::ContextModel::from_json(renamed), Catch::Contains("refit"));
  io::write_file_atomic(dir / "broken.json", "[1, 2]");
  CHECK_THROWS_WITH(hi::ContextModel::load(dir / "broken.json"), Catch::Contains("broken.json"));
  CHECK_THROWS_AS(hi::ContextModel::load(dir / "missing.json"), NotFoundError);
}

TEST_CASE("Fitting a context model refuses what it cannot learn from", "[inference][context]") {
  const auto s = synthetic_slides(2, 6, true);
  auto short_p = s.p;
  short_p.pop_back();
  CHECK_THROWS_AS(hi::ContextModel::fit(s.manifest, short_p, s.labels), std::invalid_argument);
  CHECK_THROWS_WITH(hi::ContextModel::fit(s.manifest, short_p, s.labels), Catch::Contains("probabilities"));
  auto short_labels = s.labels;
  short_labels.pop_back();
  CHECK_THROWS_WITH(hi::ContextModel::fit(s.manifest, s.p, short_labels), Catch::Contains("labels"));
  const std::vector<int> negatives(s.labels.size(), 0);
  CHECK_THROWS_AS(hi::ContextModel::fit(s.manifest, s.p, negatives), std::invalid_argument);
  CHECK_THROWS_WITH(hi::ContextModel::fit(s.manifest, s.p, negatives), Catch::Contains("one class"));
  // 49 patches: one short of the minimum.
  std::vector<data::PatchRecord> few(s.manifest.rows().begin(), s.manifest.rows().begin() + 49);
  const data::Manifest small("synthetic", few);
  std::vector<double> small_p(s.p.begin(), s.p.begin() + 49);
  std::vector<int> small_labels(49, 0);
  small_labels[0] = 1;
  CHECK_THROWS_AS(hi::ContextModel::fit(small, small_p, small_labels), std::invalid_argument);
  CHECK_THROWS_WITH(hi::ContextModel::fit(small, small_p, small_labels), Catch::Contains("too few"));
  hi::ContextFitOptions bad;
  bad.threshold_method = "median";
  CHECK_THROWS_WITH(hi::ContextModel::fit(s.manifest, s.p, s.labels, bad), Catch::Contains("threshold_method"));
}

TEST_CASE("A run's validation predictions fit the head, and slide maps report it beside smoothing",
          "[inference][context]") {
  test::TempDir run;
  // predictions_validation.csv as training writes it: path,patient,label,p_positive, with CSV
  // quoting; the first patch lies in a folder whose name holds a comma.
  const auto s = synthetic_slides(3, 7, true);
  const std::string odd_folder = "scan 2, \"site A\"/";
  std::string csv = "path,patient,label,p_positive\n";
  for (size_t i = 0; i < s.p.size(); ++i) {
    const auto& r = s.manifest.rows()[i];
    csv += fmt::format("{},{},{},{}\n", data::csv_field(i == 0 ? odd_folder + r.path : r.path), r.patient, r.label,
                       s.p[i]);
  }
  io::write_file_atomic(run / "predictions_validation.csv", csv);
  const auto loaded = hi::load_predictions_csv(run / "predictions_validation.csv");
  REQUIRE(loaded.p.size() == s.p.size());
  CHECK(loaded.manifest.rows()[0].path == odd_folder + s.manifest.rows()[0].path);
  CHECK(loaded.p[0] == Approx(s.p[0]).epsilon(1e-12));
  CHECK(loaded.manifest.rows()[10].x == s.manifest.rows()[10].x);
  CHECK(loaded.manifest.rows()[10].y == s.manifest.rows()[10].y);
  CHECK(loaded.p[10] == Approx(s.p[10]).epsilon(1e-12));
  const auto head = hi::fit_context_model(run.path());
  const auto direct = hi::ContextModel::fit(s.manifest, s.p, s.labels);
  CHECK(head.weights()[1] == Approx(direct.weights()[1]).epsilon(1e-6));
  CHECK(head.source() == "predictions_validation.csv");
  CHECK_THROWS_AS(hi::fit_context_model(run / "elsewhere"), NotFoundError);

  // context_model_beside: <run>/model and <run>/model/<version> both find <run>/context_model.json.
  CHECK_FALSE(hi::context_model_beside(run / "model"));
  head.save(run / "context_model.json");
  REQUIRE(hi::context_model_beside(run / "model"));
  CHECK(std::filesystem::equivalent(*hi::context_model_beside(run / "model"), run / "context_model.json"));
  CHECK(std::filesystem::equivalent(*hi::context_model_beside(run / "model" / "1"), run / "context_model.json"));
  CHECK(hi::context_model_beside((run / "model").string() + "/"));

  // Slide maps: a 10 x 6 patient with images on disk, the learned head reported as a third row
  // and a burden column, at the head's own threshold.
  test::TempDir data;
  std::vector<data::PatchRecord> rows;
  std::vector<double> p;
  for (int r = 0; r < 6; ++r) {
    for (int c = 0; c < 10; ++c) {
      const int label = c < 4 ? 1 : 0;
      const auto path = patch_path("7", label, 1 + 50 * c, 1 + 50 * r);
      io::write_png(data / path, cv::Mat(50, 50, CV_8UC3, cv::Scalar(200, 100, 150)));
      rows.push_back({path, "7", label, 1 + 50 * c, 1 + 50 * r, ""});
      p.push_back(label ? 0.55 + 0.04 * ((c + r) % 3) : 0.45 - 0.04 * ((c * r) % 3));
    }
  }
  const data::Manifest m(data.path(), rows);
  test::TempDir out;
  const auto report = hi::write_slide_maps(m, p, 0.5, out.path(), 1, 0, 4, &head);
  CHECK(report.text.find("patch alone") != std::string::npos);
  CHECK(report.text.find("with context (radius 1)") != std::string::npos);
  CHECK(report.text.find("with context (learned head over the neighbourhood)") != std::string::npos);
  CHECK(report.text.find("learned head fitted on") != std::string::npos);
  const auto burden = io::read_file(out / "burden.csv");
  CHECK(burden.find("predicted_burden_with_learned_context") != std::string::npos);
  const auto learned_burden = hi::tumour_burden(m, head.predict(m, p), head.threshold())[0].predicted_burden;
  CHECK(burden.find(fmt::format(",{:.4f}\n", learned_burden)) != std::string::npos);
  // Without a head the column stays, empty.
  hi::write_slide_maps(m, p, 0.5, out.path(), 1, 0, 4);
  const auto plain = io::read_file(out / "burden.csv");
  CHECK(plain.find("\n7,60,0.4000,0.4000,") != std::string::npos);
  CHECK(plain.substr(plain.size() - 2) == ",\n");
}

TEST_CASE("Training fits the head on the validation patients' complete slides when it balanced the classes",
          "[inference][context][train][slow]") {
  test::TempDir dir;
  auto synth = test::synthetic_options(10, 40);
  synth.seed = 11;
  train::RunOptions run;
  run.data_dirs = {test::synthetic_folder(dir, synth)};
  run.output_dir = dir / "runs";
  run.image_size = 50;
  run.model.backbone("simple_cnn").freeze_backbone(false).hidden1(32).hidden2(16);
  run.trainer.epochs = 1;
  run.trainer.progress = false;
  run.stain_shift = 0;
  run.tensorboard = false;

  SECTION("balanced: a sample of the slides") {
    run.name = "balanced";
    run.balance_per_class = 60;
    const auto result = train::run_training(run);
    REQUIRE(std::filesystem::exists(result.run_dir / "context_model.json"));
    REQUIRE(std::filesystem::exists(result.run_dir / "predictions_validation_slides.csv"));
    const auto sample = hi::load_predictions_csv(result.run_dir / "predictions_validation.csv");
    const auto slides = hi::load_predictions_csv(result.run_dir / "predictions_validation_slides.csv");
    CHECK(slides.manifest.patients() == sample.manifest.patients());
    CHECK(slides.manifest.size() == sample.manifest.patients().size() * 40);  // every patch of those patients
    CHECK(slides.manifest.size() > sample.manifest.size());
    const auto head = hi::ContextModel::load(result.run_dir / "context_model.json");
    CHECK(head.source() == "predictions_validation_slides.csv");
    CHECK(head.fitted_patches() == static_cast<int64_t>(slides.manifest.size()));
    // The test split is a sample too: its report leaves the head out and says why.
    CHECK(result.test_report.find("with context (radius 3)") != std::string::npos);
    CHECK(result.test_report.find("with context (learned head") == std::string::npos);
    CHECK(result.test_report.find("not applied to this class-balanced sample") != std::string::npos);
  }
  SECTION("every patch: the validation split holds complete slides") {
    run.name = "complete";
    const auto result = train::run_training(run);
    REQUIRE(std::filesystem::exists(result.run_dir / "context_model.json"));
    CHECK_FALSE(std::filesystem::exists(result.run_dir / "predictions_validation_slides.csv"));
    CHECK(hi::ContextModel::load(result.run_dir / "context_model.json").source() == "predictions_validation.csv");
    CHECK(result.test_report.find("with context (learned head over the neighbourhood)") != std::string::npos);
    CHECK(io::read_file(result.run_dir / "maps" / "burden.csv").find("predicted_burden_with_learned_context") !=
          std::string::npos);
  }
  SECTION("no validation split: no head, and the run still succeeds") {
    run.name = "no-validation";
    run.split.train = 0.8;
    run.split.val = 0;
    run.split.test = 0.2;
    const auto result = train::run_training(run);
    CHECK_FALSE(std::filesystem::exists(result.run_dir / "context_model.json"));
    CHECK(std::filesystem::exists(result.model_dir / "model.json"));
  }
}
