#include "histocnn/data/loader.h"
#include "histocnn/data/synthetic.h"
#include "histocnn/io/image.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>

#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace histocnn;

namespace {
data::Manifest synthetic_manifest(const test::TempDir& dir, int patients = 3, int per_patient = 10) {
  data::SyntheticOptions o;
  o.patients = patients;
  o.patches_per_patient = per_patient;
  data::generate_synthetic(dir / "data", o);
  return data::scan_directory(dir / "data").manifest;
}
}  // namespace

TEST_CASE("Preprocessing normalises exactly and pads small border patches with white", "[data]") {
  data::Preprocessing pre;
  pre.image_size = 50;
  cv::Mat patch(50, 50, CV_8UC3, cv::Scalar(255, 0, 128));  // RGB order
  auto t = pre.to_tensor(patch);
  REQUIRE(t.sizes() == torch::IntArrayRef({3, 50, 50}));
  CHECK(t[0][10][10].item<float>() == Approx((1.0 - 0.485) / 0.229));
  CHECK(t[1][10][10].item<float>() == Approx((0.0 - 0.456) / 0.224));
  CHECK(t[2][10][10].item<float>() == Approx((128 / 255.0 - 0.406) / 0.225));

  cv::Mat strip(1, 50, CV_8UC3, cv::Scalar(0, 0, 0));  // the real data's 50x1 border patches
  auto padded = pre.prepare(strip);
  CHECK(padded.rows == 50);
  CHECK(padded.at<cv::Vec3b>(0, 10) == cv::Vec3b(0, 0, 0));
  CHECK(padded.at<cv::Vec3b>(30, 10) == cv::Vec3b(255, 255, 255));

  auto inception = data::preprocessing_for("inception", 96);
  auto round = data::Preprocessing::from_json(inception.to_json());
  CHECK(round.image_size == 96);
  CHECK(round.mean[0] == 0.5);
  CHECK_THROWS_AS(data::preprocessing_for("zscore", 96), std::invalid_argument);
  CHECK_THROWS_AS(data::Preprocessing::from_json("{\"image_size\": 3, \"mean\": [0,0,0], \"std\": [1,1,1]}"),
                  std::invalid_argument);
}

TEST_CASE("The loader gives every sample once per epoch, in a seeded order, whatever the thread count",
          "[data]") {
  test::TempDir dir;
  auto manifest = synthetic_manifest(dir);
  data::Preprocessing pre;
  pre.image_size = 32;
  data::PatchDataset ds(manifest, pre);

  auto collect = [&](int workers, int64_t epoch, bool augment) {
    data::LoaderOptions o;
    o.batch_size = 7;
    o.shuffle = true;
    o.workers = workers;
    o.augment.enabled = augment;
    data::BatchLoader loader(ds, o);
    std::vector<int64_t> order;
    std::vector<torch::Tensor> images;
    int64_t batches = 0;
    loader.run_epoch(epoch, [&](data::Batch& b) {
      ++batches;
      for (size_t i = 0; i < b.indices.size(); ++i) {
        CHECK(b.labels[i].item<int64_t>() == ds.label(b.indices[i]));
      }
      order.insert(order.end(), b.indices.begin(), b.indices.end());
      images.push_back(b.images);
    });
    CHECK(batches == loader.num_batches());
    return std::make_pair(order, torch::cat(images));
  };
  auto [order0, images0] = collect(0, 0, true);
  auto [order3, images3] = collect(3, 0, true);
  auto [order_next, images_next] = collect(2, 1, true);
  CHECK(order0.size() == ds.size());
  CHECK(std::set<int64_t>(order0.begin(), order0.end()).size() == ds.size());
  CHECK(order0 == order3);
  CHECK(torch::equal(images0, images3));
  CHECK(order0 != order_next);
  // Augmentation changes pixels but never the cached originals.
  auto [order_plain, images_plain] = collect(2, 0, false);
  CHECK(order_plain == order0);
  CHECK_FALSE(torch::equal(images_plain, images0));
  auto [order_plain2, images_plain2] = collect(2, 0, false);
  CHECK(torch::equal(images_plain, images_plain2));
}

TEST_CASE("A corrupt patch is reported by name before training, with all the others", "[data]") {
  test::TempDir dir;
  auto manifest = synthetic_manifest(dir, 2, 6);
  const auto bad1 = manifest.absolute_path(1), bad2 = manifest.absolute_path(4);
  test::write_bytes(bad1, "this is not a png");
  { std::ofstream(bad2, std::ios::trunc); }
  data::PatchDataset ds(manifest, data::Preprocessing{});
  REQUIRE_THROWS_WITH(ds.preload(2), Catch::Contains("2 of 12 patches") && Catch::Contains(bad1.filename().string()) &&
                                         Catch::Contains(bad2.filename().string()));
  data::LoaderOptions o;
  data::BatchLoader loader(ds, o);
  REQUIRE_THROWS_WITH(loader.run_epoch(0, [](data::Batch&) {}), Catch::Contains(bad1.filename().string()));
}

TEST_CASE("The balanced sampler draws both classes equally often", "[data]") {
  test::TempDir dir;
  data::SyntheticOptions so;
  so.patients = 4;
  so.patches_per_patient = 50;
  so.positive_fraction = 0.2;
  const auto ds = test::synthetic_dataset(dir, so, 16);
  data::LoaderOptions o;
  o.shuffle = true;
  o.balanced = true;
  data::BatchLoader loader(ds, o);
  int64_t positives = 0, total = 0;
  for (int epoch = 0; epoch < 5; ++epoch) {
    for (auto i : loader.epoch_order(epoch)) {
      positives += ds.label(static_cast<size_t>(i));
      ++total;
    }
  }
  const double share = static_cast<double>(positives) / total;
  CHECK(share > 0.45);
  CHECK(share < 0.55);
  // The draw is a function of (seed, epoch) only: an independent loader with the same options
  // repeats an epoch exactly, another epoch or another seed draws differently.
  const data::BatchLoader same(ds, o);
  for (int epoch = 0; epoch < 3; ++epoch) CHECK(same.epoch_order(epoch) == loader.epoch_order(epoch));
  CHECK(loader.epoch_order(0) != loader.epoch_order(1));
  CHECK(loader.epoch_order(1) != loader.epoch_order(2));
  auto other_seed = o;
  other_seed.seed = o.seed + 1;
  const data::BatchLoader reseeded(ds, other_seed);
  CHECK(reseeded.epoch_order(0) != loader.epoch_order(0));
  CHECK(reseeded.epoch_order(1) != loader.epoch_order(1));
}

TEST_CASE("A stain-shifted view restains each patient one way, deterministically, leaving the original", "[data]") {
  test::TempDir dir;
  // Three copies of one tissue-like patch: two from patient A, one from patient B.
  cv::Mat patch(50, 50, CV_8UC3);
  cv::randu(patch, cv::Scalar(60, 20, 90), cv::Scalar(230, 200, 240));
  std::vector<data::PatchRecord> rows;
  for (const auto& [file, patient] : std::vector<std::pair<std::string, std::string>>{
           {"a1.png", "A"}, {"a2.png", "A"}, {"b1.png", "B"}}) {
    io::write_png(dir / file, patch);
    data::PatchRecord r;
    r.path = file;
    r.patient = patient;
    r.label = 1;
    rows.push_back(r);
  }
  data::Preprocessing pre;
  pre.image_size = 50;
  data::PatchDataset ds(data::Manifest(dir.path(), rows), pre);
  auto shifted = ds.with_stain_shift(0.1, 7);
  CHECK(shifted.stain_shift() == 0.1);
  auto equal = [](const cv::Mat& a, const cv::Mat& b) { return cv::norm(a, b, cv::NORM_INF) == 0; };
  CHECK(equal(shifted.image(0), shifted.image(1)));       // one patient, one restaining
  CHECK_FALSE(equal(shifted.image(0), shifted.image(2)));  // another patient, another
  CHECK_FALSE(equal(shifted.image(0), patch));
  CHECK(equal(ds.image(0), patch));  // the original view shares the cache, unchanged
  CHECK(equal(ds.with_stain_shift(0.1, 7).image(2), shifted.image(2)));  // same seed, same pixels
  CHECK_FALSE(equal(ds.with_stain_shift(0.1, 8).image(2), shifted.image(2)));
  CHECK(equal(ds.with_stain_shift(0.0, 7).image(2), patch));
  CHECK_THROWS_WITH(ds.with_stain_shift(-0.1, 7), Catch::Contains("stain shift"));
}

TEST_CASE("A per-patient cap draws at most N patches of each patient per epoch, afresh each epoch", "[data]") {
  test::TempDir dir;
  // Patients of 40, 40 and 6 patches: the cap of 10 leaves 10 + 10 + 6 per epoch.
  const auto full = synthetic_manifest(dir, 3, 40);
  const auto first = full.rows().front().patient;
  std::vector<data::PatchRecord> rows;
  std::map<std::string, int> kept;
  for (const auto& r : full.rows()) {
    if (r.patient == first && kept[r.patient] >= 6) continue;
    ++kept[r.patient];
    rows.push_back(r);
  }
  data::Preprocessing pre;
  pre.image_size = 16;
  const data::PatchDataset ds(data::Manifest(full.root(), rows), pre);
  data::LoaderOptions o;
  o.shuffle = true;
  o.batch_size = 4;
  o.max_per_patient = 10;
  const data::BatchLoader loader(ds, o);
  CHECK(loader.epoch_size() == 26);
  CHECK(loader.num_batches() == 7);
  std::set<int64_t> seen;
  for (int epoch = 0; epoch < 6; ++epoch) {
    const auto order = loader.epoch_order(epoch);
    REQUIRE(order.size() == 26);
    CHECK(std::set<int64_t>(order.begin(), order.end()).size() == 26);  // without replacement
    std::map<std::string, int> per_patient;
    for (auto i : order) ++per_patient[ds.manifest().rows()[static_cast<size_t>(i)].patient];
    for (const auto& [patient, n] : per_patient) CHECK(n == (patient == first ? 6 : 10));
    seen.insert(order.begin(), order.end());
  }
  // Other epochs draw other patches of the large patients: six epochs reach most of their 80.
  CHECK(seen.size() > 6 + 60);
  // Seeded: an independent loader repeats the draw; the batches follow it.
  CHECK(data::BatchLoader(ds, o).epoch_order(3) == loader.epoch_order(3));
  int64_t batched = 0;
  loader.run_epoch(0, [&](data::Batch& b) { batched += b.images.size(0); });
  CHECK(batched == 26);

  auto both = o;
  both.balanced = true;
  CHECK_THROWS_WITH(data::BatchLoader(ds, both), Catch::Contains("cannot be combined"));
  auto unshuffled = o;
  unshuffled.shuffle = false;  // evaluation: every patch, once
  CHECK(data::BatchLoader(ds, unshuffled).epoch_size() == 86);
}
