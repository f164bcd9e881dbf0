#include "histocnn/train/mixup.h"

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <set>
#include <string>

using namespace histocnn;

TEST_CASE("mixup_batch blends each input with another of the batch, by one lambda, and takes its label", "[train]") {
  // Row i of the identity is sample i: a blended row holds lambda at i and 1 - lambda at its partner.
  const int64_t n = 16;
  const auto x = torch::eye(n);
  const auto labels = torch::arange(n, torch::kLong) * 10;
  for (uint64_t seed : {1u, 2u, 3u}) {
    const auto m = train::mixup_batch(x, labels, 0.4, seed);
    REQUIRE(m.lambda >= 0.5);
    REQUIRE(m.lambda <= 1.0);
    std::set<int64_t> partners;
    for (int64_t i = 0; i < n; ++i) {
      const auto row = m.input[i];
      CHECK(row.sum().item<double>() == Approx(1.0));
      const int64_t partner = m.other[i].item<int64_t>() / 10;
      partners.insert(partner);
      if (partner == i) {
        CHECK(row[i].item<double>() == Approx(1.0));
      } else {
        CHECK(row[i].item<double>() == Approx(m.lambda));
        CHECK(row[partner].item<double>() == Approx(1.0 - m.lambda));
      }
    }
    CHECK(partners.size() == static_cast<size_t>(n));  // a permutation: every sample is someone's partner
  }
  // The seed alone decides: the same seed draws the same blend, another seed another.
  const auto a = train::mixup_batch(x, labels, 0.4, 7), b = train::mixup_batch(x, labels, 0.4, 7),
             c = train::mixup_batch(x, labels, 0.4, 8);
  CHECK(a.lambda == b.lambda);
  CHECK(torch::equal(a.input, b.input));
  CHECK(a.lambda != c.lambda);
  CHECK_THROWS_WITH(train::mixup_batch(x, labels, 0, 1), Catch::Contains("alpha must be positive"));
}

TEST_CASE("mixup's lambda follows Beta(alpha, alpha), folded onto [0.5, 1]", "[train]") {
  const auto x = torch::zeros({2, 1});
  const auto y = torch::zeros({2}, torch::kLong);
  auto mean_lambda = [&](double alpha) {
    double sum = 0;
    const int draws = 4000;
    for (int i = 0; i < draws; ++i) sum += train::mixup_batch(x, y, alpha, static_cast<uint64_t>(i)).lambda;
    return sum / draws;
  };
  // Beta(1, 1) is uniform: max(U, 1 - U) is uniform on [0.5, 1], mean 0.75 (sd of the mean 0.0023).
  CHECK(mean_lambda(1.0) == Approx(0.75).margin(0.01));
  // A small alpha puts lambda near 0 or 1 (mostly a sample alone), a large one near 0.5: for
  // Beta(0.2, 0.2) E[max] = 0.5 + E|L - 0.5| = 0.5 + 0.5 * E|2L - 1|, about 0.90; Beta(50, 50) has sd 0.05.
  CHECK(mean_lambda(0.2) > 0.85);
  CHECK(mean_lambda(50.0) < 0.56);
}

TEST_CASE("weighted_cross_entropy is torch's weighted mean cross-entropy, and blends two targets by lambda",
          "[train]") {
  torch::manual_seed(3);
  const auto logits = torch::randn({6, 2}, torch::kDouble);
  const auto y = torch::tensor({0, 1, 1, 0, 1, 0}, torch::kLong);
  const auto other = torch::tensor({1, 1, 0, 0, 0, 1}, torch::kLong);
  const auto weights = torch::tensor({0.7, 1.9}, torch::kDouble);
  const auto plain = train::weighted_cross_entropy(logits, y, weights);
  const double torch_mean = torch::nn::functional::cross_entropy(
                                logits, y, torch::nn::functional::CrossEntropyFuncOptions().weight(weights))
                                .item<double>();
  CHECK(plain.sum.item<double>() / plain.weight_sum == Approx(torch_mean).epsilon(1e-12));
  // By hand: -log softmax at the target, times the target's class weight.
  const auto logp = torch::log_softmax(logits, 1);
  auto summed = [&](const torch::Tensor& t) {
    double s = 0, w = 0;
    for (int64_t i = 0; i < t.size(0); ++i) {
      const auto c = t[i].item<int64_t>();
      s -= weights[c].item<double>() * logp[i][c].item<double>();
      w += weights[c].item<double>();
    }
    return std::pair<double, double>{s, w};
  };
  const auto [s1, w1] = summed(y);
  const auto [s2, w2] = summed(other);
  const auto mixed = train::weighted_cross_entropy(logits, y, weights, other, 0.75);
  CHECK(mixed.sum.item<double>() == Approx(0.75 * s1 + 0.25 * s2).epsilon(1e-12));
  CHECK(mixed.weight_sum == Approx(0.75 * w1 + 0.25 * w2));
  // Without class weights the weight is the count.
  CHECK(train::weighted_cross_entropy(logits, y, {}, other, 0.6).weight_sum == Approx(6.0));
}
