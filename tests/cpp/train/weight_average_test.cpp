#include "histocnn/data/split.h"
#include "histocnn/metrics/binary.h"
#include "histocnn/models/weights.h"
#include "histocnn/train/callbacks.h"
#include "histocnn/train/trainer.h"
#include "histocnn/train/weight_average.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <torch/torch.h>

using namespace histocnn;

namespace {

models::Classifier small_model() {
  return models::Classifier(
      models::ClassifierOptions().backbone("simple_cnn").freeze_backbone(false).hidden1(16).hidden2(8));
}

void fill_floats(models::Classifier& model, double value) {
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : models::state_dict(*model)) {
    if (at::isFloatingType(t.scalar_type())) t.fill_(value);
  }
}

/// The largest absolute difference between two state dicts over their floating-point tensors.
double max_difference(const io::TensorMap& a, const io::TensorMap& b) {
  double worst = 0;
  for (const auto& [name, t] : a) {
    if (at::isFloatingType(t.scalar_type())) worst = std::max(worst, (t - b.at(name)).abs().max().item<double>());
  }
  return worst;
}

/// Keeps its own moving average of the live weights after every batch, from the formula in
/// weight_average.h, and the last live weights.
class AverageOracle : public train::Callback {
 public:
  explicit AverageOracle(double decay) : decay_(decay) {}
  void on_train_begin(train::TrainContext& context) override { average = copy(context); }
  void on_batch_end(train::TrainContext& context, int64_t, double) override {
    last = copy(context);
    const double d = std::min(decay_, (1.0 + n_) / (10.0 + n_));
    for (auto& [name, t] : average) t = at::isFloatingType(t.scalar_type()) ? d * t + (1 - d) * last.at(name) : last.at(name);
    ++n_;
  }
  int64_t updates() const { return n_; }
  io::TensorMap average, last;

 private:
  static io::TensorMap copy(train::TrainContext& context) {
    io::TensorMap out;
    for (const auto& [name, t] : models::state_dict(*context.trainer->model())) out[name] = t.clone().to(torch::kDouble);
    return out;
  }
  double decay_;
  int64_t n_ = 0;
};

}  // namespace

TEST_CASE("WeightAverage follows d * average + (1 - d) * weights, with d warming up to the decay", "[train]") {
  torch::manual_seed(3);
  auto model = small_model();
  const io::TensorMap start = models::state_dict(*model);
  io::TensorMap initial;
  for (const auto& [name, t] : start) initial[name] = t.clone();
  train::WeightAverage average(model, 0.5);
  CHECK(average.next_factor() == Approx(0.1));  // (1 + 0) / (10 + 0)
  fill_floats(model, 1.0);
  average.update();
  CHECK(average.next_factor() == Approx(2.0 / 11.0));
  fill_floats(model, 2.0);
  average.update();
  CHECK(average.updates() == 2);

  const auto state = average.state();
  REQUIRE(state.size() == initial.size());
  const double d0 = 0.1, d1 = 2.0 / 11.0;
  int floats = 0, integers = 0;
  for (const auto& [name, t0] : initial) {
    INFO(name);
    if (at::isFloatingType(t0.scalar_type())) {
      const auto expected = d1 * (d0 * t0 + (1 - d0) * 1.0) + (1 - d1) * 2.0;
      CHECK(torch::allclose(state.at(name), expected, 1e-6, 1e-6));
      ++floats;
    } else {  // BatchNorm's batch counter: the model's own
      CHECK(torch::equal(state.at(name), models::state_dict(*model).at(name)));
      ++integers;
    }
  }
  CHECK(floats > 0);
  CHECK(integers > 0);  // simple_cnn has BatchNorm layers

  // After 10 updates the warm-up factor (11 / 20) passes the decay: the decay rules.
  for (int i = 0; i < 8; ++i) average.update();
  CHECK(average.next_factor() == Approx(0.5));

  // swap() exchanges the model's weights with the average; twice is a no-op.
  const auto averaged = average.state();
  {
    train::WeightAverage::Applied use(average);
    CHECK(max_difference(models::state_dict(*model), averaged) == 0.0);
  }
  for (const auto& [name, t] : models::state_dict(*model)) {
    if (at::isFloatingType(t.scalar_type())) CHECK(t.eq(2.0).all().item<bool>());
  }
  CHECK(max_difference(average.state(), averaged) == 0.0);

  // state() and load() round-trip, with the update count; a foreign state is refused by name.
  train::WeightAverage other(model, 0.5);
  other.load(averaged, average.updates());
  CHECK(max_difference(other.state(), averaged) == 0.0);
  CHECK(other.next_factor() == average.next_factor());
  io::TensorMap wrong = averaged;
  wrong.erase(wrong.begin());
  CHECK_THROWS_WITH(other.load(wrong, 1), Catch::Contains("tensors"));
  CHECK_THROWS_WITH(train::WeightAverage(model, 1.0), Catch::Contains("(0, 1)"));
}

TEST_CASE("Training with ema_decay validates with, and ends with, the moving average of every step's weights",
          "[train]") {
  test::TempDir dir;
  auto manifest = data::split_manifest(
      data::scan_directory(test::synthetic_folder(dir, test::synthetic_options(4, 16))).manifest, data::SplitOptions{});
  data::Preprocessing pre;
  pre.image_size = 32;
  data::PatchDataset train_ds(manifest.subset("train"), pre), val_ds(manifest.subset("val"), pre);
  torch::manual_seed(7);
  auto model = small_model();
  train::TrainerOptions o;
  o.epochs = 3;
  o.batch_size = 4;
  o.progress = false;
  o.device = "cpu";
  o.optimizer = train::OptimizerKind::adam;
  o.restore_best = false;  // the final weights are the last step's average
  o.ema_decay = 0.9;
  train::Trainer trainer(model, o);
  auto oracle = std::make_shared<AverageOracle>(o.ema_decay);
  trainer.add_callback(oracle);
  auto history = trainer.fit(train_ds, &val_ds);
  REQUIRE(history.epochs.size() == 3);
  REQUIRE(oracle->updates() > 10);
  io::TensorMap final_state;
  for (const auto& [name, t] : models::state_dict(*trainer.model())) final_state[name] = t.to(torch::kDouble);
  // The validation between the epochs swapped the average in and out without disturbing training
  // (the oracle saw every live step), and the model ends with the average, not the last step.
  CHECK(max_difference(final_state, oracle->average) < 1e-5);
  CHECK(max_difference(final_state, oracle->last) > 1e-3);
  // Validation measured the average: the last epoch's val AUC is the final model's.
  const auto p = trainer.predict(val_ds).p_positive;
  CHECK(metrics::roc_auc(val_ds.labels(), p) == Approx(history.epochs.back().val_auc).margin(1e-9));
}
