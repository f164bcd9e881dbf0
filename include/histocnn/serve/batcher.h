#pragma once
// Requests from all clients queue into micro-batches that run through one model together, with
// TensorFlow Serving's batching parameters.
//
//   histocnn::serve::BatchingOptions opt;            // max_batch_size 32, timeout 2 ms, ...
//   histocnn::serve::Batcher batcher([&](const torch::Tensor& x) { return predictor.predict_batch(x); }, opt);
//   torch::Tensor p = batcher.submit(prepared).get(); // [n, classes]; throws Unavailable when full
//   // Other work on the same model shares the queue, its capacity and its threads:
//   auto maps = batcher.submit(prepared, "gradcam:features", explain_batch).get();
#include <torch/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace histocnn::serve {

struct BatchingOptions {
  int64_t max_batch_size = 32;         ///< rows (patches) in one batch
  int64_t batch_timeout_micros = 2000;  ///< how long the first request of a batch waits for others
  int num_batch_threads = 1;           ///< batches running at once
  int64_t max_enqueued_batches = 64;   ///< queue capacity, in batches of max_batch_size rows
  void validate() const;
};

class Batcher {
 public:
  using RunBatch = std::function<torch::Tensor(const torch::Tensor&)>;
  /// Called after each batch with its number of rows (for metrics).
  using BatchObserver = std::function<void(int64_t rows)>;

  Batcher(RunBatch run, BatchingOptions options, BatchObserver observer = {});
  /// Runs what is queued, then stops the threads.
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  /// Queues a prepared batch [n, ...]; its rows come back in order. Throws Unavailable at once
  /// when the queue is full: nothing waits for room.
  std::future<torch::Tensor> submit(torch::Tensor rows);
  /// Queues rows for `run` instead of the batcher's own function (an explanation, say): rows of
  /// the same `kind` are batched together, never with other kinds; they count against the same
  /// capacity and run on the same threads.
  std::future<torch::Tensor> submit(torch::Tensor rows, std::string kind, RunBatch run);
  /// Rows waiting in the queue.
  int64_t queued_rows() const;

 private:
  struct Task {
    torch::Tensor rows;
    std::string kind;  ///< "" for run_
    RunBatch run;      ///< empty for run_
    std::promise<torch::Tensor> result;
    std::chrono::steady_clock::time_point enqueued;
  };
  void loop();

  RunBatch run_;
  BatchingOptions options_;
  BatchObserver observer_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> queue_;
  int64_t queued_rows_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace histocnn::serve
