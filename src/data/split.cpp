#include "histocnn/data/split.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <tuple>

#include "histocnn/core/error.h"
#include "histocnn/core/log.h"
#include "histocnn/data/balance.h"

namespace histocnn::data {
namespace {

constexpr std::array<const char*, 3> kSplitNames{"train", "val", "test"};
constexpr int kTrials = 64;

uint64_t mix_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

struct PatientStats {
  std::string id;
  int64_t patches = 0;
  int64_t positives = 0;
};

// Aggregates of one assignment, and its cost (see split.h).
struct Assignment {
  std::vector<int> split_of;  // per patient, 0..2
  std::array<int64_t, 3> patches{0, 0, 0};
  std::array<int64_t, 3> positives{0, 0, 0};
  std::array<int64_t, 3> members{0, 0, 0};
};

double cost_of(const Assignment& a, const std::array<double, 3>& f, int64_t total,
               double overall_ratio) {
  double c = 0;
  for (int s = 0; s < 3; ++s) {
    c += std::abs(static_cast<double>(a.patches[s]) / static_cast<double>(total) - f[s]);
    if (a.patches[s] > 0)
      c += f[s] * std::abs(static_cast<double>(a.positives[s]) / static_cast<double>(a.patches[s]) -
                           overall_ratio);
  }
  return c;
}

}  // namespace

void SplitOptions::validate() const {
  const SplitOptions& o = *this;
  const std::array<double, 3> f{o.train, o.val, o.test};
  for (int s = 0; s < 3; ++s)
    HISTOCNN_CHECK(std::isfinite(f[s]) && f[s] >= 0, "split fraction {} must be >= 0, got {}",
                   kSplitNames[s], f[s]);
  HISTOCNN_CHECK(o.train > 0, "split fraction train must be > 0, got {}", o.train);
  const double sum = o.train + o.val + o.test;
  HISTOCNN_CHECK(std::abs(sum - 1.0) <= 1e-6,
                 "split fractions must sum to 1, got train {} + val {} + test {} = {}", o.train,
                 o.val, o.test, sum);
}

namespace {

Manifest split_by_patch(const Manifest& m, const SplitOptions& o, int active) {
  log_warn("splitting by patch puts patches of the same patient into train, val and test: this "
           "leaks patients between splits and inflates every metric; split by patient for honest "
           "numbers");
  const auto& rows = m.rows();
  HISTOCNN_CHECK(static_cast<int64_t>(rows.size()) >= active,
                 "split_manifest: {} splits with a non-zero fraction need at least {} patches, the "
                 "manifest has {}",
                 active, active, rows.size());
  std::vector<PatchRecord> out = rows;
  for (int label = 0; label < 2; ++label) {
    std::vector<size_t> idx;
    for (size_t i = 0; i < rows.size(); ++i)
      if (rows[i].label == label) idx.push_back(i);
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
      return std::tie(rows[a].path, rows[a].patient, rows[a].x, rows[a].y) <
             std::tie(rows[b].path, rows[b].patient, rows[b].x, rows[b].y);
    });
    std::mt19937_64 rng(mix_seed(o.seed, 1000 + static_cast<uint64_t>(label)));
    seeded_shuffle(idx, rng);
    const double n = static_cast<double>(idx.size());
    auto cut = [&](double fraction) {
      return std::clamp<size_t>(static_cast<size_t>(std::llround(n * fraction)), 0, idx.size());
    };
    const size_t b1 = cut(o.train);
    const size_t b2 = o.test == 0 ? idx.size() : std::max(b1, cut(o.train + o.val));
    for (size_t k = 0; k < idx.size(); ++k)
      out[idx[k]].split = k < b1 ? "train" : (k < b2 ? "val" : "test");
  }
  return Manifest(m.root(), std::move(out));
}

}  // namespace

Manifest split_manifest(const Manifest& m, const SplitOptions& o) {
  o.validate();
  HISTOCNN_CHECK(!m.empty(), "split_manifest: the manifest is empty; scan a folder with patches first");
  const std::array<double, 3> f{o.train, o.val, o.test};
  int active = 0;
  for (double x : f) active += x > 0 ? 1 : 0;
  if (o.by_patch) return split_by_patch(m, o, active);

  // Per-patient counts, in sorted order of patient id (independent of the row order).
  std::map<std::string, PatientStats> by_id;
  for (const auto& r : m.rows()) {
    auto& p = by_id[r.patient];
    p.id = r.patient;
    ++p.patches;
    p.positives += r.label;
  }
  std::vector<PatientStats> patients;
  for (auto& kv : by_id) patients.push_back(kv.second);
  const int P = static_cast<int>(patients.size());
  HISTOCNN_CHECK(P >= active,
                 "split_manifest: {} splits with a non-zero fraction need at least {} patients, the "
                 "manifest has {}; add patients, set val or test to 0, or split by patch",
                 active, active, P);
  std::stable_sort(patients.begin(), patients.end(), [](const PatientStats& a, const PatientStats& b) {
    // Compare positive fractions exactly by cross-multiplication.
    const int64_t l = a.positives * b.patches, r = b.positives * a.patches;
    return l != r ? l < r : a.id < b.id;
  });

  int64_t total = 0, total_pos = 0;
  for (const auto& p : patients) {
    total += p.patches;
    total_pos += p.positives;
  }
  const double overall = static_cast<double>(total_pos) / static_cast<double>(total);
  std::array<double, 3> target{};
  for (int s = 0; s < 3; ++s) target[s] = f[s] * static_cast<double>(total);

  auto assign = [&](Assignment& a, int p, int s, int sign) {
    a.patches[s] += sign * patients[p].patches;
    a.positives[s] += sign * patients[p].positives;
    a.members[s] += sign;
  };

  Assignment best;
  double best_cost = std::numeric_limits<double>::infinity();
  for (int trial = 0; trial < kTrials; ++trial) {
    std::mt19937_64 rng(mix_seed(o.seed, static_cast<uint64_t>(trial)));
    std::vector<int> order(P);
    std::iota(order.begin(), order.end(), 0);
    for (int start = 0; start < P; start += active) {
      std::vector<int> stratum(order.begin() + start, order.begin() + std::min(P, start + active));
      seeded_shuffle(stratum, rng);
      std::copy(stratum.begin(), stratum.end(), order.begin() + start);
    }
    Assignment a;
    a.split_of.assign(P, -1);
    for (int k = 0; k < P; ++k) {
      const int p = order[k];
      const int remaining = P - k;
      int empty = 0;
      for (int s = 0; s < 3; ++s) empty += (f[s] > 0 && a.members[s] == 0) ? 1 : 0;
      const bool only_empty = remaining <= empty;
      int chosen = -1;
      double deficit = -std::numeric_limits<double>::infinity();
      for (int s = 0; s < 3; ++s) {
        if (f[s] <= 0 || (only_empty && a.members[s] > 0)) continue;
        const double d = target[s] - static_cast<double>(a.patches[s]);
        if (d > deficit) {
          deficit = d;
          chosen = s;
        }
      }
      a.split_of[p] = chosen;
      assign(a, p, chosen, +1);
    }
    const double c = cost_of(a, f, total, overall);
    if (c < best_cost) {
      best_cost = c;
      best = a;
    }
  }

  // Local search: single moves and pairwise swaps that lower the cost, in a fixed order.
  for (int pass = 0; pass < 100; ++pass) {
    bool improved = false;
    for (int p = 0; p < P; ++p) {
      const int from = best.split_of[p];
      if (best.members[from] <= 1) continue;
      for (int s = 0; s < 3; ++s) {
        if (s == from || f[s] <= 0) continue;
        assign(best, p, from, -1);
        assign(best, p, s, +1);
        const double c = cost_of(best, f, total, overall);
        if (c < best_cost - 1e-12) {
          best_cost = c;
          best.split_of[p] = s;
          improved = true;
          break;
        }
        assign(best, p, s, -1);
        assign(best, p, from, +1);
      }
    }
    for (int p = 0; p < P; ++p) {
      for (int q = p + 1; q < P; ++q) {
        const int sp = best.split_of[p], sq = best.split_of[q];
        if (sp == sq) continue;
        assign(best, p, sp, -1);
        assign(best, q, sq, -1);
        assign(best, p, sq, +1);
        assign(best, q, sp, +1);
        const double c = cost_of(best, f, total, overall);
        if (c < best_cost - 1e-12) {
          best_cost = c;
          best.split_of[p] = sq;
          best.split_of[q] = sp;
          improved = true;
          continue;
        }
        assign(best, p, sq, -1);
        assign(best, q, sp, -1);
        assign(best, p, sp, +1);
        assign(best, q, sq, +1);
      }
    }
    if (!improved) break;
  }

  std::map<std::string, int> split_of_patient;
  for (int p = 0; p < P; ++p) split_of_patient[patients[p].id] = best.split_of[p];
  std::vector<PatchRecord> out = m.rows();
  for (auto& r : out) r.split = kSplitNames[split_of_patient.at(r.patient)];
  return Manifest(m.root(), std::move(out));
}

std::vector<SplitSummary> summarize_splits(const Manifest& m) {
  const std::array<std::string, 4> order{"train", "val", "test", ""};
  std::array<SplitSummary, 4> acc{};
  std::array<std::set<std::string>, 4> patients;
  for (const auto& r : m.rows()) {
    const size_t k = static_cast<size_t>(std::find(order.begin(), order.end(), r.split) - order.begin());
    if (k >= order.size()) continue;  // unreachable: Manifest validates split names
    ++acc[k].patches;
    acc[k].positives += r.label == 1 ? 1 : 0;
    acc[k].negatives += r.label == 1 ? 0 : 1;
    patients[k].insert(r.patient);
  }
  std::vector<SplitSummary> out;
  for (size_t k = 0; k < order.size(); ++k) {
    if (acc[k].patches == 0) continue;
    acc[k].split = order[k];
    acc[k].patients = static_cast<int64_t>(patients[k].size());
    out.push_back(acc[k]);
  }
  return out;
}

std::string format_split_summary(const std::vector<SplitSummary>& summary) {
  int64_t total = 0;
  for (const auto& s : summary) total += s.patches;
  std::string out = fmt::format("{:<10} {:>8} {:>8} {:>6} {:>9} {:>9} {:>6}\n", "split", "patients",
                                "patches", "share", "negatives", "positives", "pos %");
  for (const auto& s : summary) {
    const double share = total ? 100.0 * static_cast<double>(s.patches) / static_cast<double>(total) : 0.0;
    const double pos = s.patches ? 100.0 * static_cast<double>(s.positives) / static_cast<double>(s.patches) : 0.0;
    out += fmt::format("{:<10} {:>8} {:>8} {:>5.1f}% {:>9} {:>9} {:>5.1f}%\n",
                       s.split.empty() ? "(none)" : s.split, s.patients, s.patches, share,
                       s.negatives, s.positives, pos);
  }
  return out;
}

}  // namespace histocnn::data
