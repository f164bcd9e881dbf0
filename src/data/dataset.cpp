#include "histocnn/data/dataset.h"

#include "histocnn/core/error.h"
#include "histocnn/core/hash.h"
#include "histocnn/core/progress.h"
#include "histocnn/data/augment.h"
#include "histocnn/io/image.h"

#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace histocnn::data {

struct PatchDataset::State {
  Manifest manifest;
  Preprocessing preprocessing;
  bool cache = true;
  std::vector<cv::Mat> images;
  std::vector<uint8_t> cached;
  std::mutex mu;
};

// Per-patient stain statistics of one view of the patches (a restained view has its own).
struct PatchDataset::StainGroups {
  std::mutex mu;
  std::map<std::string, StainStats> by_patient;
};

PatchDataset::PatchDataset(Manifest manifest, Preprocessing preprocessing, bool cache)
    : state_(std::make_shared<State>()), stain_groups_(std::make_shared<StainGroups>()) {
  preprocessing.validate();
  state_->manifest = std::move(manifest);
  state_->preprocessing = preprocessing;
  state_->cache = cache;
  state_->images.resize(state_->manifest.size());
  state_->cached.assign(state_->manifest.size(), 0);
}

size_t PatchDataset::size() const { return state_->manifest.size(); }
const Manifest& PatchDataset::manifest() const { return state_->manifest; }
const Preprocessing& PatchDataset::preprocessing() const { return state_->preprocessing; }

int PatchDataset::label(size_t i) const {
  HISTOCNN_CHECK(i < size(), "patch index {} is out of range for a dataset of {} patches", i, size());
  return state_->manifest.rows()[i].label;
}

std::vector<int> PatchDataset::labels() const {
  std::vector<int> out;
  out.reserve(size());
  for (const auto& r : state_->manifest.rows()) out.push_back(r.label);
  return out;
}

cv::Mat PatchDataset::image(size_t i) const {
  HISTOCNN_CHECK(i < size(), "patch index {} is out of range for a dataset of {} patches", i, size());
  auto& s = *state_;
  auto decode = [&]() -> cv::Mat {
    if (s.cache) {
      std::lock_guard<std::mutex> lock(s.mu);
      if (s.cached[i]) return s.images[i];
    }
    cv::Mat decoded = s.preprocessing.pad(io::read_image_rgb(s.manifest.absolute_path(i)));
    if (s.cache) {
      std::lock_guard<std::mutex> lock(s.mu);
      s.images[i] = decoded;
      s.cached[i] = 1;
    }
    return decoded;
  };
  if (stain_shift_ <= 0) return decode();
  std::mt19937_64 rng(stain_shift_seed_ ^ fnv1a64(s.manifest.rows()[i].patient));
  return jitter_stains(decode(), stain_shift_, rng);
}

PatchDataset PatchDataset::with_stain_shift(double sigma, uint64_t seed) const {
  HISTOCNN_CHECK(sigma >= 0 && sigma <= 1, "stain shift sigma must be in [0, 1], got {}", sigma);
  PatchDataset out = *this;
  out.stain_shift_ = sigma;
  out.stain_shift_seed_ = seed;
  out.stain_groups_ = std::make_shared<StainGroups>();
  return out;
}

const StainStats* PatchDataset::stain_source(size_t i) const {
  const auto& pre = state_->preprocessing;
  if (!pre.stain || pre.stain->fit_mode() != StainFit::slide) return nullptr;
  const auto& rows = state_->manifest.rows();
  HISTOCNN_CHECK(i < rows.size(), "patch index {} is out of range for a dataset of {} patches", i, rows.size());
  const std::string& patient = rows[i].patient;
  std::lock_guard<std::mutex> lock(stain_groups_->mu);
  auto found = stain_groups_->by_patient.find(patient);
  if (found != stain_groups_->by_patient.end()) return &found->second;
  std::vector<size_t> members;
  for (size_t j = 0; j < rows.size(); ++j) {
    if (rows[j].patient == patient) members.push_back(j);
  }
  constexpr size_t kMaxGroupPatches = 256;
  const size_t take = std::min(members.size(), kMaxGroupPatches);
  std::vector<cv::Mat> group;
  group.reserve(take);
  for (size_t k = 0; k < take; ++k) group.push_back(image(members[k * members.size() / take]));
  return &stain_groups_->by_patient.emplace(patient, pre.stain->source_stats(group)).first->second;
}

torch::Tensor PatchDataset::tensor(size_t i) const {
  const auto& pre = state_->preprocessing;
  auto out = torch::empty({3, pre.image_size, pre.image_size}, torch::kFloat32);
  pre.normalise_into(pre.prepare(image(i), stain_source(i)), out);
  return out;
}

void PatchDataset::preload(int workers, bool progress) const {
  if (workers <= 0) workers = std::max(1u, std::thread::hardware_concurrency());
  const size_t n = size();
  std::atomic<size_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex error_mu;
  std::vector<std::string> errors;
  size_t failed = 0;
  auto work = [&] {
    for (size_t i = next++; i < n; i = next++) {
      try {
        image(i);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(error_mu);
        ++failed;
        if (errors.size() < 20) errors.push_back(e.what());
      }
      ++done;
    }
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) threads.emplace_back(work);
  {
    ProgressBar bar(static_cast<int64_t>(n), "decoding", progress, "patches");
    int64_t shown = 0;
    while (shown < static_cast<int64_t>(n)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const int64_t d = done;
      bar.update(d - shown);
      shown = d;
    }
  }
  for (auto& t : threads) t.join();
  if (failed > 0) {
    std::string list;
    for (const auto& e : errors) list += "\n  " + e;
    HISTOCNN_FAIL("{} of {} patches could not be decoded (first {} shown); fix or remove these files, then "
                  "rescan the folder:{}",
                  failed, n, errors.size(), list);
  }
}

cv::Mat paired_examples(const PatchDataset& original, const PatchDataset& changed, int patients, int tile) {
  HISTOCNN_CHECK(changed.size() == original.size(), "paired_examples needs two views of the same patches ({} and {})",
                 original.size(), changed.size());
  std::vector<cv::Mat> top, bottom;
  std::set<std::string> seen;
  const auto& rows = original.manifest().rows();
  for (size_t i = 0; i < rows.size() && static_cast<int>(top.size()) < patients; ++i) {
    if (!seen.insert(rows[i].patient).second) continue;
    cv::Mat a, b;
    cv::resize(original.image(i), a, {tile, tile}, 0, 0, cv::INTER_NEAREST);
    cv::resize(changed.image(i), b, {tile, tile}, 0, 0, cv::INTER_NEAREST);
    top.push_back(a);
    bottom.push_back(b);
  }
  if (top.empty()) return {};
  cv::Mat upper, lower, sheet;
  cv::hconcat(top, upper);
  cv::hconcat(bottom, lower);
  cv::vconcat(upper, lower, sheet);
  return sheet;
}

}  // namespace histocnn::data
