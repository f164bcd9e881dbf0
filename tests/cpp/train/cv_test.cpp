#include "histocnn/data/manifest.h"
#include "histocnn/data/synthetic.h"
#include "histocnn/inference/evaluate.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/train/cv.h"
#include "histocnn/train/options.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <set>

using namespace histocnn;
namespace fs = std::filesystem;

namespace {

data::Manifest manifest_of(const std::map<std::string, int>& patches_per_patient) {
  std::vector<data::PatchRecord> rows;
  for (const auto& [patient, n] : patches_per_patient) {
    for (int i = 0; i < n; ++i) {
      rows.push_back({patient + "/0/" + patient + "_idx5_x" + std::to_string(50 * i) + "_y0_class0.png", patient, i % 2,
                      50 * i, 0, ""});
    }
  }
  return data::Manifest("root", rows);
}

// A small, fast cross-validation of a simple CNN at 32 px, restaining at 0.2, into dir/out.
train::CrossValidationOptions small_cv(const test::TempDir& dir, int folds, int epochs) {
  train::CrossValidationOptions cv;
  cv.run.output_dir = dir / "out";
  cv.run.image_size = 32;
  cv.run.model.backbone("simple_cnn").freeze_backbone(false).hidden1(16).hidden2(8);
  cv.run.trainer.epochs = epochs;
  cv.run.trainer.progress = false;
  cv.run.tensorboard = false;
  cv.folds = folds;
  cv.stain_shifts = {0.2};
  return cv;
}

}  // namespace

TEST_CASE("Patients are dealt to folds once each, folds of about equal size, the same for the same seed", "[cv]") {
  // Two large patients (a complete cohort) among many small ones (a sampled one).
  std::map<std::string, int> sizes = {{"big1", 700}, {"big2", 650}};
  for (int i = 0; i < 40; ++i) sizes["p" + std::to_string(i)] = 60 + (i * 7) % 50;
  const auto m = manifest_of(sizes);
  const auto folds = train::assign_patient_folds(m, 5, 7);
  REQUIRE(folds.size() == sizes.size());
  std::map<int, int64_t> patches;
  std::set<std::string> seen;
  for (const auto& [patient, k] : folds) {
    CHECK(k >= 1);
    CHECK(k <= 5);
    CHECK(seen.insert(patient).second);
    patches[k] += sizes.at(patient);
  }
  REQUIRE(patches.size() == 5);
  int64_t lo = INT64_MAX, hi = 0;
  for (const auto& [k, n] : patches) {
    lo = std::min(lo, n);
    hi = std::max(hi, n);
  }
  CHECK(hi - lo <= 110);  // at most about one small patient apart
  CHECK(train::assign_patient_folds(m, 5, 7) == folds);
  CHECK(train::assign_patient_folds(m, 5, 8) != folds);
  CHECK_THROWS_WITH(train::assign_patient_folds(manifest_of({{"a", 3}, {"b", 3}}), 5, 1),
                    Catch::Contains("2 patients cannot fill 5 folds"));
}

TEST_CASE("Several data folders join into one manifest; a patient in two folders is refused", "[cv][data]") {
  test::TempDir dir;
  data::SyntheticOptions a;
  a.patients = 3;
  a.patches_per_patient = 6;
  a.seed = 1;
  data::generate_synthetic(dir / "site_a", a);
  const auto ma = data::scan_directory(dir / "site_a").manifest;
  // site_b: the same generator, other patient ids (renamed folders and files)
  data::SyntheticOptions b = a;
  b.seed = 2;
  data::generate_synthetic(dir / "tmp_b", b);
  const auto tmp_b = data::scan_directory(dir / "tmp_b").manifest;
  for (const auto& r : tmp_b.rows()) {
    std::string path = r.path;
    for (size_t pos = 0; (pos = path.find(r.patient, pos)) != std::string::npos; pos += r.patient.size() + 1) {
      path.replace(pos, r.patient.size(), "9" + r.patient);
    }
    fs::create_directories((dir / "site_b" / path).parent_path());
    fs::copy_file(dir / "tmp_b" / r.path, dir / "site_b" / path);
  }
  const auto mb = data::scan_directory(dir / "site_b").manifest;
  const auto joined = data::join_manifests({ma, mb});
  CHECK(joined.size() == ma.size() + mb.size());
  CHECK(joined.patients().size() == ma.patients().size() + mb.patients().size());
  CHECK(fs::equivalent(joined.root(), dir.path()));
  for (size_t i = 0; i < joined.size(); ++i) {
    CHECK(fs::exists(joined.absolute_path(i)));
    const auto& p = joined.rows()[i].path;
    CHECK((p.rfind("site_a/", 0) == 0 || p.rfind("site_b/", 0) == 0));
  }
  // The same folder twice holds every patient twice.
  CHECK_THROWS_WITH(data::join_manifests({ma, ma}), Catch::Contains("is in both") && Catch::Contains("site_a"));
  // Through the run options: `--data A B` as the options table reads it.
  train::RunOptions run;
  train::set_run_option(run, "data_dir", nlohmann::json({(dir / "site_a").string(), (dir / "site_b").string()}).dump());
  REQUIRE(run.data_dirs.size() == 2);
  CHECK(nlohmann::json::parse(train::get_run_option(run, "data_dir")).size() == 2);
  CHECK(train::load_patch_manifest(run.data_dirs, "").size() == joined.size());
  train::set_run_option(run, "data_dir", "\"one\"");
  CHECK(train::get_run_option(run, "data_dir") == "\"one\"");
}

TEST_CASE("Cross-validation tests every patient once, on models that never saw them, and resumes", "[cv][slow]") {
  test::TempDir dir;
  auto synth = test::synthetic_options(9, 30);
  synth.seed = 5;
  auto cv = small_cv(dir, 3, 2);
  cv.run.data_dirs = {test::synthetic_folder(dir, synth)};
  const auto r = train::cross_validate(cv);
  REQUIRE(r.folds.size() == 3);
  std::set<std::string> tested;
  int64_t test_patches = 0;
  for (const auto& f : r.folds) {
    const auto m = data::Manifest::load_csv(f.run_dir / "manifest.csv");
    std::set<std::string> train_patients;
    for (const auto& row : m.rows()) {
      if (row.split != "test") train_patients.insert(row.patient);
    }
    for (const auto& row : m.subset("test").rows()) {
      CHECK(train_patients.count(row.patient) == 0);  // never seen in training or validation
      tested.insert(row.patient);
    }
    REQUIRE(f.scores.size() == 2);  // as stained and at sigma 0.2, one group
    CHECK(f.scores[0].stain_shift == 0);
    CHECK(f.scores[1].stain_shift == 0.2);
    test_patches += f.scores[0].patches;
    // As stained, the fold scores the predictions its training made; the exported model agrees.
    inference::EvaluateOptions eo;
    eo.progress = false;
    const auto exported = inference::evaluate_bundle(f.run_dir / "model", m.subset("test"), eo);
    CHECK(f.scores[0].roc_auc == Approx(exported.metrics.roc_auc).margin(1e-9));
    CHECK(f.threshold == Approx(exported.threshold));
    // With context (radius 3 by default), as stained and restained, on the same patches; its AUC
    // against an oracle is tested from Python (tests/python/test_cv.py, sklearn).
    CHECK(f.context_radius == 3);
    REQUIRE(f.context_scores.size() == 2);
    CHECK(f.context_scores[0].stain_shift == 0);
    CHECK(f.context_scores[1].stain_shift == 0.2);
    CHECK(f.context_scores[0].patches == f.scores[0].patches);
    CHECK(f.context_scores[1].patches == f.scores[1].patches);
  }
  CHECK(tested.size() == 9);
  CHECK(test_patches == 9 * 30);
  CHECK(r.summary.find("as stained | all") != std::string::npos);
  CHECK(r.summary.find("restained 0.2 | all") != std::string::npos);
  CHECK(r.summary.find("| as stained, context 3 | all |") != std::string::npos);
  CHECK(r.summary.find("| restained 0.2, context 3 | all |") != std::string::npos);
  CHECK(r.summary.find("3 of 3 folds: each test patch's P averaged") != std::string::npos);
  CHECK(fs::exists(r.output_dir / "cv.json"));
  // Rerun: every fold is read back, nothing retrains.
  const auto before = fs::last_write_time(r.folds[0].run_dir / "metrics.json");
  const auto again = train::cross_validate(cv);
  CHECK(fs::last_write_time(r.folds[0].run_dir / "metrics.json") == before);
  CHECK(again.summary == r.summary);
  // Rescored with other scoring options: the saved models score again, nothing retrains; as
  // stained they give the AUC training's own predictions gave, and restained at 0.2 what the first
  // scoring gave (restained with the seed the fold trained with, not this run's).
  auto other = cv;
  other.rescore = true;
  other.stain_shifts = {0.2, 0.1};
  other.context_radius = 2;
  other.run.trainer.seed = 9;
  const auto rescored = train::cross_validate(other);
  CHECK(fs::last_write_time(r.folds[0].run_dir / "metrics.json") == before);
  REQUIRE(rescored.folds.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    const auto& f = rescored.folds[i];
    REQUIRE(f.scores.size() == 3);
    CHECK(f.scores[0].roc_auc == Approx(r.folds[i].scores[0].roc_auc).margin(1e-9));
    CHECK(f.scores[1].stain_shift == 0.2);
    CHECK(f.scores[1].roc_auc == Approx(r.folds[i].scores[1].roc_auc).margin(1e-9));
    CHECK(f.scores[2].stain_shift == 0.1);
    CHECK(f.threshold == Approx(r.folds[i].threshold));
    CHECK(f.seconds == r.folds[i].seconds);
    CHECK(f.context_radius == 2);
    CHECK(f.context_scores.size() == 3);
  }
  CHECK(rescored.summary.find("| restained 0.1, context 2 | all |") != std::string::npos);
  // Written back: a plain rerun now reads the rescored folds.
  CHECK(train::cross_validate(cv).summary == rescored.summary);
  // Other folds dealt (another fold seed): refused, naming the run's manifest and what differs.
  other.fold_seed = 7;
  CHECK_THROWS_WITH(train::cross_validate(other), Catch::Contains("--fold-seed differ") && Catch::Contains("manifest.csv"));
}

TEST_CASE("A fold whose test patients have two patches at one place is scored with the patch alone", "[cv]") {
  // A manifest of the user's can place two patches of a patient at one place: the fold trains and
  // scores the patch alone, without the slide maps and context that need one patch per place.
  test::TempDir dir;
  const auto scanned = data::scan_directory(test::synthetic_folder(dir, test::synthetic_options(6, 12))).manifest;
  auto rows = scanned.rows();
  const auto moved =
      std::find_if(rows.begin() + 1, rows.end(), [&](const auto& r) { return r.patient == rows[0].patient; });
  REQUIRE(moved != rows.end());
  moved->x = rows[0].x;  // two patches of the first patient now claim one place
  moved->y = rows[0].y;
  data::Manifest(scanned.root(), rows).save_csv(dir / "manifest.csv");
  auto cv = small_cv(dir, 2, 1);
  cv.run.manifest = dir / "manifest.csv";
  const auto r = train::cross_validate(cv);
  REQUIRE(r.folds.size() == 2);
  for (const auto& f : r.folds) {
    const auto test = data::Manifest::load_csv(f.run_dir / "manifest.csv").subset("test");
    const auto patients = test.patients();
    const bool shared_place = std::count(patients.begin(), patients.end(), rows[0].patient) == 1;
    CHECK(f.scores.size() == 2);  // the patch alone, as stained and restained, either way
    CHECK(f.context_scores.size() == (shared_place ? 0u : 2u));
    CHECK(f.context_radius == (shared_place ? 0 : inference::kDefaultSmoothRadius));
    // The run itself finished, its report saying why it drew no slide maps.
    const auto report = io::read_file(f.run_dir / "report.txt");
    CHECK((report.find("Test patients on their slides: not drawn") != std::string::npos) == shared_place);
  }
  CHECK(r.summary.find("1 of 2 folds: each test patch's P averaged") != std::string::npos);
}
