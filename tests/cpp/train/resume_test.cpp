#include "histocnn/data/split.h"
#include "histocnn/data/synthetic.h"
#include "histocnn/inference/predictor.h"
#include "histocnn/inference/saved_model.h"
#include "histocnn/train/callbacks.h"
#include "histocnn/train/checkpoint.h"
#include "histocnn/train/trainer.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <torch/torch.h>

using namespace histocnn;

namespace {

struct Fixture {
  test::TempDir dir;
  data::Manifest manifest;
  data::Preprocessing pre;
  /// Validation labels inverted: the better the model fits the training patches, the worse its
  /// val_loss, so a run cannot keep improving it.
  bool invert_val_labels = false;
  double ema_decay = 0;
  double mixup = 0;
  Fixture() {
    const auto synth = test::synthetic_options(4, 16);
    data::generate_synthetic(dir / "data", synth);
    manifest = data::split_manifest(data::scan_directory(dir / "data").manifest, data::SplitOptions{});
    pre.image_size = 32;
  }
  train::History fit(int epochs, const std::string& checkpoint, bool frozen, const std::string& augment = "none",
                     std::vector<double>* p_out = nullptr) {
    data::Manifest val = manifest.subset("val");
    if (invert_val_labels) {
      std::vector<data::PatchRecord> rows = val.rows();
      for (auto& r : rows) r.label = 1 - r.label;
      val = data::Manifest(val.root(), rows);
    }
    data::PatchDataset train_ds(manifest.subset("train"), pre), val_ds(val, pre);
    torch::manual_seed(1);
    models::Classifier model(models::ClassifierOptions().backbone("simple_cnn").freeze_backbone(frozen).hidden1(32)
                                 .hidden2(16));
    train::TrainerOptions o;
    o.epochs = epochs;
    o.batch_size = 8;
    o.progress = false;
    o.device = "cpu";
    o.checkpoint_dir = checkpoint;
    o.optimizer = train::OptimizerKind::adam;
    o.augment = data::AugmentOptions::preset(augment);
    o.reduce_lr_patience = 1;
    o.min_lr = 1e-5;
    o.ema_decay = ema_decay;
    o.mixup = mixup;
    train::Trainer trainer(model, o);
    auto h = trainer.fit(train_ds, &val_ds);
    if (p_out) *p_out = trainer.predict(val_ds).p_positive;
    return h;
  }
};

}  // namespace

TEST_CASE("A run continued from its checkpoint ends exactly as an uninterrupted run", "[train]") {
  Fixture f;
  for (bool frozen : {true, false}) {
    INFO("frozen backbone: " << frozen);
    const auto ck = f.dir / (frozen ? "ck-frozen" : "ck-trainable");
    std::vector<double> p_full, p_resumed;
    auto full = f.fit(4, "", frozen, frozen ? "none" : "histology", &p_full);
    auto part = f.fit(2, ck.string(), frozen, frozen ? "none" : "histology");
    REQUIRE(part.epochs.size() == 2);
    auto resumed = f.fit(4, ck.string(), frozen, frozen ? "none" : "histology", &p_resumed);
    CHECK(resumed.resumed_from_epoch == 2);
    CHECK(resumed.to_csv(false) == full.to_csv(false));
    CHECK(resumed.best_epoch == full.best_epoch);
    CHECK(p_resumed == p_full);
    // A finished run is not trained again.
    auto again = f.fit(4, ck.string(), frozen, frozen ? "none" : "histology");
    CHECK(again.resumed_from_epoch == 4);
    CHECK(again.to_csv(false) == full.to_csv(false));
  }
}

TEST_CASE("A run with a moving average of its weights continues from its checkpoint exactly", "[train]") {
  Fixture f;
  f.ema_decay = 0.9;
  const auto ck = f.dir / "ck-ema";
  std::vector<double> p_full, p_resumed;
  auto full = f.fit(3, "", false, "flips", &p_full);
  f.fit(1, ck.string(), false, "flips");
  CHECK(std::filesystem::exists(ck / "epoch-1" / "average.safetensors"));
  auto resumed = f.fit(3, ck.string(), false, "flips", &p_resumed);
  CHECK(resumed.resumed_from_epoch == 1);
  CHECK(resumed.to_csv(false) == full.to_csv(false));
  CHECK(p_resumed == p_full);
  // The average changes what validation sees: the same run without it validates other weights.
  f.ema_decay = 0;
  auto plain = f.fit(3, "", false, "flips");
  CHECK(plain.epochs[0].val_loss != full.epochs[0].val_loss);
}

TEST_CASE("A run with mixup draws the same blends when continued from its checkpoint", "[train]") {
  Fixture f;
  f.mixup = 0.4;
  for (bool frozen : {true, false}) {
    INFO("frozen backbone (mixup blends the cached features): " << frozen);
    const auto ck = f.dir / (frozen ? "ck-mixup-frozen" : "ck-mixup");
    std::vector<double> p_full, p_resumed;
    auto full = f.fit(3, "", frozen, frozen ? "none" : "flips", &p_full);
    f.fit(1, ck.string(), frozen, frozen ? "none" : "flips");
    auto resumed = f.fit(3, ck.string(), frozen, frozen ? "none" : "flips", &p_resumed);
    CHECK(resumed.resumed_from_epoch == 1);
    CHECK(resumed.to_csv(false) == full.to_csv(false));
    CHECK(p_resumed == p_full);
    // Mixup changes what is learned: the same run without it trains on other inputs and targets.
    f.mixup = 0;
    auto plain = f.fit(3, "", frozen, frozen ? "none" : "flips");
    CHECK(plain.epochs[0].train_loss != full.epochs[0].train_loss);
    f.mixup = 0.4;
  }
}

TEST_CASE("A checkpoint from other options is refused, not silently mixed in", "[train]") {
  Fixture f;
  const auto ck = f.dir / "ck";
  f.fit(1, ck.string(), true);
  f.pre.image_size = 40;
  CHECK_THROWS_WITH(f.fit(2, ck.string(), true), Catch::Contains("other options or data") &&
                                                      Catch::Contains(ck.string()));
}

TEST_CASE("Checkpoints are written atomically: a leftover temporary folder does not count", "[train]") {
  test::TempDir dir;
  train::TrainingCheckpoint ck;
  ck.history.epochs.push_back(train::EpochRecord{1, 0.5, 0.75});
  ck.model = {{"w", torch::ones({2})}};
  ck.fingerprint = "f";
  ck.optimizer = "opaque";
  train::save_checkpoint(dir.path(), ck);
  ck.history.epochs.push_back(train::EpochRecord{2, 0.25, 0.875});
  train::save_checkpoint(dir.path(), ck);
  // A run killed while writing epoch 3 leaves a staging folder and no new `latest`.
  std::filesystem::create_directories(dir / ".epoch-3.tmp-1");
  auto back = train::load_checkpoint(dir.path());
  REQUIRE(back);
  CHECK(back->history.epochs.size() == 2);
  CHECK(back->history.epochs[1].train_loss == 0.25);
  CHECK(back->optimizer == "opaque");
  CHECK(torch::equal(back->model.at("w"), torch::ones({2})));
  CHECK_FALSE(std::filesystem::exists(dir / "epoch-1"));
  CHECK_FALSE(train::load_checkpoint(dir / "nothing"));
}

TEST_CASE("EarlyStopping and ReduceLROnPlateau follow Keras' rules, also when replayed from a history",
          "[train]") {
  auto record = [](int epoch, double auc, double loss) {
    train::EpochRecord r;
    r.epoch = epoch;
    r.val_auc = auc;
    r.val_loss = loss;
    return r;
  };
  // val_auc: 0.70 0.80 0.79 0.80 0.75 -> no improvement over 0.80 for 3 epochs -> stop after epoch 5.
  const std::vector<train::EpochRecord> records = {record(1, 0.70, 1), record(2, 0.80, 1), record(3, 0.79, 1),
                                                   record(4, 0.80, 1), record(5, 0.75, 1)};
  train::History history;
  train::TrainContext ctx;
  ctx.history = &history;
  train::EarlyStopping stop("val_auc", 3);
  stop.on_train_begin(ctx);
  for (const auto& r : records) {
    stop.on_epoch_end(ctx, r);
    history.epochs.push_back(r);
    CHECK(ctx.stop_training == (r.epoch == 5));
  }
  CHECK(stop.stopped_epoch() == 5);

  // The same state rebuilt from the first four epochs stops at the fifth as well.
  train::History first4;
  first4.epochs.assign(records.begin(), records.begin() + 4);
  train::TrainContext ctx2;
  ctx2.history = &first4;
  train::EarlyStopping resumed("val_auc", 3);
  resumed.on_train_begin(ctx2);
  CHECK_FALSE(ctx2.stop_training);
  resumed.on_epoch_end(ctx2, records[4]);
  CHECK(ctx2.stop_training);

  CHECK_THROWS_WITH(train::EarlyStopping("val_f2"), Catch::Contains("val_f2"));
  CHECK_THROWS_AS(train::ReduceLROnPlateau("val_loss", 1.5), std::invalid_argument);
}

TEST_CASE("ReduceLROnPlateau lowers the learning rate after epochs without a better val_loss", "[train]") {
  Fixture f;
  f.invert_val_labels = true;
  auto h = f.fit(5, "", true);
  REQUIRE(h.epochs.size() == 5);
  CHECK(h.epochs[0].learning_rate == Approx(train::TrainerOptions{}.learning_rate));
  int reductions = 0;
  double best = h.epochs[0].val_loss;
  for (size_t i = 1; i < h.epochs.size(); ++i) {
    const auto& e = h.epochs[i];
    const double previous_lr = h.epochs[i - 1].learning_rate;
    // patience 1: the epoch after one without improvement runs at 0.2x (not below min_lr)
    const bool improved = e.val_loss < best;
    if (improved) best = e.val_loss;
    if (i + 1 < h.epochs.size()) {
      const double next_lr = h.epochs[i + 1].learning_rate;
      CHECK(next_lr == Approx(improved ? e.learning_rate : std::max(e.learning_rate * 0.2, 1e-5)));
    }
    CHECK(e.learning_rate <= previous_lr);
    if (e.learning_rate < previous_lr) ++reductions;
  }
  // The rule above holds trivially when val_loss improves every epoch; this run cannot, so the
  // callback must have acted.
  INFO(h.to_csv(false));
  CHECK(reductions >= 1);
}

TEST_CASE("ModelCheckpoint writes a bundle that loads and gives the probabilities of the model it saved",
          "[train]") {
  Fixture f;
  const data::PatchDataset train_ds(f.manifest.subset("train"), f.pre), val_ds(f.manifest.subset("val"), f.pre);
  for (bool best_only : {false, true}) {
    INFO("save_best_only: " << best_only);
    const auto bundle = f.dir / (best_only ? "best" : "every-epoch");
    torch::manual_seed(1);
    models::Classifier model(models::ClassifierOptions().backbone("simple_cnn").freeze_backbone(false).hidden1(32)
                                 .hidden2(16));
    train::TrainerOptions o;
    o.epochs = 3;
    o.batch_size = 8;
    o.progress = false;
    o.device = "cpu";
    o.optimizer = train::OptimizerKind::adam;
    // Every epoch saved: the bundle holds the last epoch, which the run ends with when it does not
    // restore. Best only: the bundle holds the best val_auc epoch, which restore_best ends with.
    o.restore_best = best_only;
    inference::ModelCard card;
    card.preprocessing = f.pre;
    train::Trainer trainer(model, o);
    trainer.add_callback(std::make_shared<train::ModelCheckpoint>(bundle, card, "val_auc", best_only));
    const auto history = trainer.fit(train_ds, &val_ds);
    REQUIRE(history.epochs.size() == 3);
    const auto expected = trainer.predict(val_ds).p_positive;

    const auto saved = inference::load_model(bundle);
    CHECK(saved.card.provenance.best_epoch == (best_only ? history.best_epoch : 3));
    CHECK(saved.card.preprocessing.to_json() == f.pre.to_json());
    const inference::Predictor predictor(bundle, "cpu");
    const auto got = predictor.predict_dataset(val_ds).p_positive;
    REQUIRE(got.size() == expected.size());
    REQUIRE_FALSE(got.empty());
    for (size_t i = 0; i < got.size(); ++i) {
      INFO("patch " << i);
      CHECK(got[i] == Approx(expected[i]).margin(1e-6));
    }
  }
}
