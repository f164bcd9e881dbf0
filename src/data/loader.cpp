#include "histocnn/data/loader.h"

#include "histocnn/core/error.h"

#include <torch/torch.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>

namespace histocnn::data {

BatchLoader::BatchLoader(PatchDataset dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), options_(options) {
  HISTOCNN_CHECK(options_.batch_size > 0, "batch_size must be positive, got {}", options_.batch_size);
  HISTOCNN_CHECK(options_.workers >= 0, "workers must be >= 0, got {}", options_.workers);
  HISTOCNN_CHECK(options_.prefetch >= 1, "prefetch must be >= 1, got {}", options_.prefetch);
  HISTOCNN_CHECK(dataset_.size() > 0, "cannot make batches from an empty dataset");
  HISTOCNN_CHECK(options_.max_per_patient >= 0, "max_per_patient must be >= 0 (0: every patch), got {}",
                 options_.max_per_patient);
  HISTOCNN_CHECK(options_.max_per_patient == 0 || !options_.balanced,
                 "a per-patient cap and class-balanced sampling cannot be combined: choose one");
  epoch_size_ = static_cast<int64_t>(dataset_.size());
  if (options_.shuffle && options_.max_per_patient > 0) {
    std::map<std::string, size_t> slot;
    const auto& rows = dataset_.manifest().rows();
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto [it, added] = slot.emplace(rows[i].patient, patients_.size());
      if (added) patients_.emplace_back();
      patients_[it->second].push_back(static_cast<int64_t>(i));
    }
    epoch_size_ = 0;
    for (const auto& p : patients_) epoch_size_ += std::min<int64_t>(options_.max_per_patient, p.size());
  }
  HISTOCNN_CHECK(options_.shard_count >= 1 && options_.shard_index >= 0 && options_.shard_index < options_.shard_count,
                 "shard_index must be in [0, shard_count), got {} of {}", options_.shard_index, options_.shard_count);
}

std::pair<int64_t, int64_t> shard_range(int64_t n, int index, int count) {
  return {n * index / count, n * (index + 1) / count};
}

namespace {
// Fisher-Yates over the first n draws of `v` (our own draws: std::shuffle differs between standard
// libraries): a full shuffle when n == v.size(), a uniform sample of n in front otherwise.
void shuffle_prefix(std::vector<int64_t>& v, size_t n, std::mt19937_64& rng) {
  for (size_t i = 0; i < n && i + 1 < v.size(); ++i) std::swap(v[i], v[i + rng() % (v.size() - i)]);
}
}  // namespace

int64_t BatchLoader::num_batches() const {
  const int64_t n = epoch_size_;
  return options_.drop_last ? n / options_.batch_size : (n + options_.batch_size - 1) / options_.batch_size;
}

std::vector<int64_t> BatchLoader::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order(dataset_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  if (options_.shuffle && options_.balanced) {
    std::vector<int64_t> by_class[2];
    for (size_t i = 0; i < order.size(); ++i) by_class[dataset_.label(i) ? 1 : 0].push_back(static_cast<int64_t>(i));
    HISTOCNN_CHECK(!by_class[0].empty() && !by_class[1].empty(),
                   "balanced sampling needs both classes in the training set");
    std::mt19937_64 rng(sample_seed(options_.seed, epoch, -2));
    for (auto& slot : order) {
      const auto& pool = by_class[rng() & 1];
      slot = pool[rng() % pool.size()];
    }
    return order;
  }
  if (options_.shuffle && !patients_.empty()) {
    std::mt19937_64 rng(sample_seed(options_.seed, epoch, -3));
    order.clear();
    for (auto patient : patients_) {
      const size_t n = std::min<size_t>(options_.max_per_patient, patient.size());
      shuffle_prefix(patient, n, rng);
      order.insert(order.end(), patient.begin(), patient.begin() + static_cast<std::ptrdiff_t>(n));
    }
    shuffle_prefix(order, order.size(), rng);
    return order;
  }
  if (options_.shuffle) {
    std::mt19937_64 rng(sample_seed(options_.seed, epoch, -1));
    for (size_t i = order.size(); i > 1; --i) {
      size_t j = static_cast<size_t>(rng() % i);
      std::swap(order[i - 1], order[j]);
    }
  }
  return order;
}

Batch BatchLoader::make_batch(const std::vector<int64_t>& order, int64_t b, int64_t epoch) const {
  int64_t begin = b * options_.batch_size;
  int64_t end = std::min<int64_t>(begin + options_.batch_size, static_cast<int64_t>(order.size()));
  if (options_.shard_count > 1) {
    const auto part = shard_range(end - begin, options_.shard_index, options_.shard_count);
    end = begin + part.second;
    begin += part.first;
  }
  const auto& pre = dataset_.preprocessing();
  const int s = pre.image_size;
  Batch batch;
  batch.images = torch::empty({end - begin, 3, s, s}, torch::kFloat32);
  batch.labels = torch::empty({end - begin}, torch::kInt64);
  auto labels = batch.labels.accessor<int64_t, 1>();
  for (int64_t k = begin; k < end; ++k) {
    const int64_t idx = order[k];
    cv::Mat img = dataset_.image(static_cast<size_t>(idx));
    if (options_.augment.enabled) {
      std::mt19937_64 rng(sample_seed(options_.seed, epoch, idx));
      img = augment_patch(img, options_.augment, rng);
    }
    pre.normalise_into(pre.prepare(img, dataset_.stain_source(static_cast<size_t>(idx))), batch.images[k - begin]);
    labels[k - begin] = dataset_.label(static_cast<size_t>(idx));
    batch.indices.push_back(idx);
  }
  return batch;
}

void BatchLoader::run_epoch(int64_t epoch, const std::function<void(Batch&)>& fn) const {
  const auto order = epoch_order(epoch);
  const int64_t total = num_batches();
  if (options_.workers == 0) {
    for (int64_t b = 0; b < total; ++b) {
      Batch batch = make_batch(order, b, epoch);
      fn(batch);
    }
    return;
  }

  std::mutex mu;
  std::condition_variable cv;
  std::map<int64_t, Batch> ready;
  int64_t next_to_make = 0;
  int64_t consumed = 0;
  bool stop = false;
  std::exception_ptr worker_error;

  auto worker = [&] {
    while (true) {
      int64_t b;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || next_to_make >= total || next_to_make < consumed + options_.prefetch; });
        if (stop || next_to_make >= total) return;
        b = next_to_make++;
      }
      try {
        Batch batch = make_batch(order, b, epoch);
        std::lock_guard<std::mutex> lock(mu);
        ready.emplace(b, std::move(batch));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!worker_error) worker_error = std::current_exception();
        stop = true;
      }
      cv.notify_all();
    }
  };

  std::vector<std::thread> threads;
  for (int w = 0; w < options_.workers; ++w) threads.emplace_back(worker);
  std::exception_ptr error;
  try {
    for (int64_t b = 0; b < total; ++b) {
      Batch batch;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return ready.count(b) > 0 || worker_error; });
        if (worker_error) break;
        batch = std::move(ready[b]);
        ready.erase(b);
        consumed = b + 1;
      }
      cv.notify_all();
      fn(batch);
    }
  } catch (...) {
    error = std::current_exception();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
  }
  cv.notify_all();
  for (auto& t : threads) t.join();
  if (worker_error) std::rethrow_exception(worker_error);
  if (error) std::rethrow_exception(error);
}

}  // namespace histocnn::data
