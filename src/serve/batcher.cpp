#include "histocnn/serve/batcher.h"

#include "histocnn/core/error.h"
#include "histocnn/serve/errors.h"

#include <torch/torch.h>

namespace histocnn::serve {

void BatchingOptions::validate() const {
  HISTOCNN_CHECK(max_batch_size >= 1, "max_batch_size must be >= 1, got {}", max_batch_size);
  HISTOCNN_CHECK(batch_timeout_micros >= 0, "batch_timeout_micros must be >= 0, got {}", batch_timeout_micros);
  HISTOCNN_CHECK(num_batch_threads >= 1, "num_batch_threads must be >= 1, got {}", num_batch_threads);
  HISTOCNN_CHECK(max_enqueued_batches >= 1, "max_enqueued_batches must be >= 1, got {}", max_enqueued_batches);
}

Batcher::Batcher(RunBatch run, BatchingOptions options, BatchObserver observer)
    : run_(std::move(run)), options_(options), observer_(std::move(observer)) {
  options_.validate();
  for (int i = 0; i < options_.num_batch_threads; ++i) threads_.emplace_back([this] { loop(); });
}

Batcher::~Batcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

std::future<torch::Tensor> Batcher::submit(torch::Tensor rows) { return submit(std::move(rows), "", {}); }

std::future<torch::Tensor> Batcher::submit(torch::Tensor rows, std::string kind, RunBatch run) {
  HISTOCNN_CHECK(rows.dim() >= 1 && rows.size(0) > 0, "an empty batch cannot be queued");
  HISTOCNN_CHECK(kind.empty() == !run, "a batch of another kind needs both a kind and a function to run it");
  Task task;
  task.rows = std::move(rows);
  task.kind = std::move(kind);
  task.run = std::move(run);
  task.enqueued = std::chrono::steady_clock::now();
  auto future = task.result.get_future();
  const int64_t n = task.rows.size(0);
  const int64_t capacity = options_.max_enqueued_batches * options_.max_batch_size;
  // Retrying cannot help a request the whole queue cannot hold: that is the client's to change.
  HISTOCNN_CHECK(n <= capacity,
                 "the request has {} instances, more than the batch queue holds ({} = --max-enqueued-batches x "
                 "--max-batch-size); send fewer instances per request or raise --max-enqueued-batches",
                 n, capacity);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ || queued_rows_ + n > capacity) {
      throw Unavailable(fmt::format("the batch queue is full ({} of {} patches waiting); retry shortly or raise "
                                    "--max-enqueued-batches",
                                    queued_rows_, capacity));
    }
    queued_rows_ += n;
    queue_.push_back(std::move(task));
  }
  wake_.notify_one();
  return future;
}

int64_t Batcher::queued_rows() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queued_rows_;
}

void Batcher::loop() {
  const auto timeout = std::chrono::microseconds(options_.batch_timeout_micros);
  while (true) {
    std::vector<Task> batch;
    bool more = false;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to run
      // Wait for a full batch or the first request's deadline, whichever comes first.
      const auto deadline = queue_.front().enqueued + timeout;
      wake_.wait_until(lock, deadline, [&] { return stopping_ || queued_rows_ >= options_.max_batch_size; });
      if (queue_.empty()) continue;  // another thread took them
      int64_t rows = 0;
      // The first task's kind, and the tasks of that kind right behind it, as rows allow.
      while (!queue_.empty() && (batch.empty() || (queue_.front().kind == batch.front().kind &&
                                                   rows + queue_.front().rows.size(0) <= options_.max_batch_size))) {
        rows += queue_.front().rows.size(0);
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      queued_rows_ -= rows;
      more = !queue_.empty();
    }
    if (more) wake_.notify_one();
    std::vector<torch::Tensor> parts;
    parts.reserve(batch.size());
    for (const auto& t : batch) parts.push_back(t.rows);
    try {
      const RunBatch& run = batch.front().run ? batch.front().run : run_;
      auto out = run(parts.size() == 1 ? parts.front() : torch::cat(parts));
      int64_t offset = 0;
      for (auto& t : batch) {
        const int64_t n = t.rows.size(0);
        t.result.set_value(out.narrow(0, offset, n).clone());
        offset += n;
      }
      if (observer_) observer_(offset);
    } catch (...) {
      for (auto& t : batch) t.result.set_exception(std::current_exception());
    }
  }
}

}  // namespace histocnn::serve
