#pragma once
// An exponential moving average of a model's weights (Polyak averaging), updated after every
// optimiser step. Validation and the final model can use the average instead of the last step's
// weights, which are noisier:
//
//   histocnn::train::WeightAverage average(model, 0.999);
//   ... optimizer.step(); average.update(); ...
//   { histocnn::train::WeightAverage::Applied use(average); evaluate(model); }  // the average in
//   // the model while `use` lives, the trained weights back after
//
// After n updates the average moves by 1 - d with d = min(decay, (1 + n) / (10 + n)), so that the
// random initial weights do not dominate it over the first steps. BatchNorm running statistics are
// averaged like the weights; integer buffers (BatchNorm's batch counter) take the model's value.
#include "histocnn/io/safetensors.h"
#include "histocnn/models/classifier.h"

#include <cstdint>
#include <utility>
#include <vector>

namespace histocnn::train {

class WeightAverage {
 public:
  /// decay in (0, 1): the average's memory is about 1 / (1 - decay) steps. Starts as the model's
  /// current weights.
  WeightAverage(const models::Classifier& model, double decay);

  /// Moves the average towards the model's current weights (call after each optimiser step).
  void update();
  int64_t updates() const { return updates_; }
  /// The factor the next update will use: min(decay, (1 + n) / (10 + n)) after n updates.
  double next_factor() const;

  /// The average, on the CPU, keyed like models::state_dict (for checkpoints).
  io::TensorMap state() const;
  /// Restores an average saved by state() after `updates` updates (a resumed run). Names and
  /// shapes must be the model's.
  void load(const io::TensorMap& state, int64_t updates);

  /// Exchanges the model's weights and the average: called twice, everything is as before.
  void swap();

  /// The average in the model for the guard's lifetime.
  class Applied {
   public:
    explicit Applied(WeightAverage& average) : average_(average) { average_.swap(); }
    ~Applied() { average_.swap(); }
    Applied(const Applied&) = delete;
    Applied& operator=(const Applied&) = delete;

   private:
    WeightAverage& average_;
  };

 private:
  double decay_;
  int64_t updates_ = 0;
  /// (the model's tensor, its average), in state_dict order.
  std::vector<std::pair<torch::Tensor, torch::Tensor>> pairs_;
  std::vector<std::string> names_;
};

}  // namespace histocnn::train
