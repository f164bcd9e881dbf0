#include "histocnn/data/synthetic.h"
#include "histocnn/inference/predictor.h"
#include "histocnn/io/image.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

using namespace histocnn;

TEST_CASE("A Predictor gives the classifier's own probabilities, from images or files", "[inference]") {
  test::TempDir dir;
  torch::manual_seed(2);
  models::Classifier model(models::ClassifierOptions().backbone("simple_cnn"));
  model->eval();
  data::Preprocessing pre;
  pre.image_size = 40;
  inference::ModelCard card;
  card.preprocessing = pre;
  card.threshold = 0.3;
  inference::save_model(model, card, dir / "model" / "1");

  data::SyntheticOptions so;
  std::vector<cv::Mat> patches;
  std::vector<std::filesystem::path> files;
  for (int i = 0; i < 5; ++i) {
    patches.push_back(data::render_synthetic_patch(i % 2, 100 + i, so));
    files.push_back(dir / ("p" + std::to_string(i) + ".png"));
    io::write_png(files.back(), patches.back());
  }
  patches.push_back(cv::Mat(1, 50, CV_8UC3, cv::Scalar(200, 150, 180)));  // a border patch

  inference::Predictor predictor(dir / "model", "cpu");
  CHECK(predictor.threshold() == 0.3);
  CHECK(predictor.preprocessing().image_size == 40);
  auto probs = predictor.predict_proba(patches, 4);
  REQUIRE(probs.sizes() == torch::IntArrayRef({6, 2}));
  CHECK(torch::allclose(probs.sum(1), torch::ones({6}), 1e-5, 1e-6));

  // The oracle: the same classifier on tensors made by the preprocessing directly.
  std::vector<torch::Tensor> xs;
  for (const auto& p : patches) xs.push_back(pre.to_tensor(p));
  torch::NoGradGuard no_grad;
  auto expected = torch::softmax(model->forward(torch::stack(xs)), 1);
  CHECK(torch::allclose(probs, expected, 1e-5, 1e-6));

  auto from_files = predictor.predict_files(files);
  auto from_images = predictor.predict(std::vector<cv::Mat>(patches.begin(), patches.begin() + 5));
  REQUIRE(from_files.size() == 5);
  for (size_t i = 0; i < 5; ++i) CHECK(from_files[i] == Approx(from_images[i]).margin(1e-7));

  CHECK_THROWS_WITH(predictor.predict({cv::Mat(5, 5, CV_8UC1)}), Catch::Contains("patch 0"));
  CHECK_THROWS_WITH(predictor.predict_files({dir / "missing.png"}), Catch::Contains("missing.png"));
  CHECK_THROWS_WITH(inference::Predictor(dir / "nope"), Catch::Contains("nope"));
}
