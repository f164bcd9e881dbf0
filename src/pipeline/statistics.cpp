#include "histocnn/pipeline/statistics.h"

#include "histocnn/core/error.h"
#include "histocnn/core/hash.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/image.h"
#include "histocnn/metrics/plots.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <map>
#include <set>
#include <thread>

namespace histocnn::pipeline {

namespace fs = std::filesystem;
using json = nlohmann::json;

double linf_distance(const std::vector<double>& p, const std::vector<double>& q) {
  HISTOCNN_CHECK(p.size() == q.size(), "linf_distance: the distributions have {} and {} entries", p.size(), q.size());
  double sp = 0, sq = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    sp += p[i];
    sq += q[i];
  }
  double d = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double a = sp > 0 ? p[i] / sp : 0, b = sq > 0 ? q[i] / sq : 0;
    d = std::max(d, std::abs(a - b));
  }
  return d;
}

double jensen_shannon(const std::vector<double>& p, const std::vector<double>& q) {
  HISTOCNN_CHECK(p.size() == q.size(), "jensen_shannon: the histograms have {} and {} bins", p.size(), q.size());
  double sp = 0, sq = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    HISTOCNN_CHECK(p[i] >= 0 && q[i] >= 0, "jensen_shannon: bin {} is negative", i);
    sp += p[i];
    sq += q[i];
  }
  if (sp <= 0 || sq <= 0) return sp <= 0 && sq <= 0 ? 0.0 : 1.0;
  double js = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double a = p[i] / sp, b = q[i] / sq, m = 0.5 * (a + b);
    if (a > 0) js += 0.5 * a * std::log2(a / m);
    if (b > 0) js += 0.5 * b * std::log2(b / m);
  }
  return std::clamp(js, 0.0, 1.0);
}

namespace {

struct FileStats {
  bool read = false, decoded = false;
  std::string error;
  uint64_t hash = 0;
  size_t bytes = 0;
  int width = 0, height = 0, channels = 0;
  std::array<double, 3> sum{}, sum_sq{};
  std::array<std::array<int64_t, kHistogramBins>, 3> histogram{};
  int64_t background = 0, pixels = 0;
};

// The colour channels a PNG stores (its header's colour type), before decoding makes it RGB.
int stored_channels(const std::string& bytes, int decoded) {
  static const std::string signature("\x89PNG\r\n\x1a\n", 8);
  if (bytes.size() > 25 && bytes.compare(0, 8, signature) == 0) {
    switch (static_cast<unsigned char>(bytes[25])) {
      case 0: return 1;
      case 2: return 3;
      case 3: return 3;
      case 4: return 2;
      case 6: return 4;
    }
  }
  return decoded;
}

FileStats file_stats(const fs::path& path) {
  FileStats s;
  std::string bytes;
  try {
    bytes = io::read_file(path);
    s.read = true;
    s.hash = fnv1a64(bytes);
    s.bytes = bytes.size();
    const cv::Mat rgb = io::decode_image_rgb(bytes, path.string());
    s.decoded = true;
    s.width = rgb.cols;
    s.height = rgb.rows;
    s.channels = stored_channels(bytes, 3);
    for (int y = 0; y < rgb.rows; ++y) {
      const auto* row = rgb.ptr<cv::Vec3b>(y);
      for (int x = 0; x < rgb.cols; ++x) {
        const cv::Vec3b& px = row[x];
        for (int c = 0; c < 3; ++c) {
          const double v = px[c] / 255.0;
          s.sum[c] += v;
          s.sum_sq[c] += v * v;
          ++s.histogram[c][px[c] * kHistogramBins / 256];
        }
        if (px[0] >= kBackgroundLevel && px[1] >= kBackgroundLevel && px[2] >= kBackgroundLevel) ++s.background;
      }
    }
    s.pixels = static_cast<int64_t>(rgb.rows) * rgb.cols;
  } catch (const std::exception& e) {
    s.error = e.what();
  }
  return s;
}

struct SplitAccumulator {
  int64_t patches = 0, undecodable = 0;
  std::array<int64_t, 2> classes{};
  std::map<std::string, std::array<int64_t, 2>> per_patient;
  std::map<std::string, int64_t> sizes;
  std::map<int, int64_t> channels;
  int min_w = 0, max_w = 0, min_h = 0, max_h = 0;
  std::array<double, 3> sum{}, sum_sq{};
  std::array<std::array<int64_t, kHistogramBins>, 3> histogram{};
  int64_t background = 0, pixels = 0;

  void add(const data::PatchRecord& r, const FileStats& f) {
    ++patches;
    ++classes[r.label == 1 ? 1 : 0];
    ++per_patient[r.patient][r.label == 1 ? 1 : 0];
    if (!f.decoded) {
      ++undecodable;
      return;
    }
    ++sizes[fmt::format("{}x{}", f.width, f.height)];
    ++channels[f.channels];
    const bool first = pixels == 0;
    min_w = first ? f.width : std::min(min_w, f.width);
    max_w = first ? f.width : std::max(max_w, f.width);
    min_h = first ? f.height : std::min(min_h, f.height);
    max_h = first ? f.height : std::max(max_h, f.height);
    for (int c = 0; c < 3; ++c) {
      sum[c] += f.sum[c];
      sum_sq[c] += f.sum_sq[c];
      for (int b = 0; b < kHistogramBins; ++b) histogram[c][b] += f.histogram[c][b];
    }
    background += f.background;
    pixels += f.pixels;
  }

  json to_json() const {
    json j;
    j["patches"] = patches;
    j["patients"] = per_patient.size();
    j["class_counts"] = classes;
    const double n = std::max<int64_t>(patches, 1);
    j["label_distribution"] = {classes[0] / n, classes[1] / n};
    json pp = json::object();
    for (const auto& [p, c] : per_patient) pp[p] = c;
    j["per_patient"] = pp;
    j["sizes"] = sizes;
    json ch = json::object();
    for (const auto& [c, count] : channels) ch[std::to_string(c)] = count;
    j["channels"] = ch;
    j["width"] = {{"min", min_w}, {"max", max_w}};
    j["height"] = {{"min", min_h}, {"max", max_h}};
    const double px = std::max<int64_t>(pixels, 1);
    std::array<double, 3> mean{}, stdev{};
    json hist = json::array();
    for (int c = 0; c < 3; ++c) {
      mean[c] = sum[c] / px;
      stdev[c] = std::sqrt(std::max(0.0, sum_sq[c] / px - mean[c] * mean[c]));
      std::vector<double> h(kHistogramBins);
      for (int b = 0; b < kHistogramBins; ++b) h[b] = histogram[c][b] / px;
      hist.push_back(h);
    }
    j["channel_mean"] = mean;
    j["channel_std"] = stdev;
    j["intensity_histogram"] = hist;
    j["background_fraction"] = background / px;
    j["pixels"] = pixels;
    j["undecodable"] = undecodable;
    return j;
  }
};

std::string split_key(const std::string& split) { return split.empty() ? "unassigned" : split; }

}  // namespace

std::string compute_statistics(const data::Manifest& m, int threads) {
  const size_t n = m.size();
  std::vector<FileStats> files(n);
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = static_cast<int>(std::min<size_t>(threads, std::max<size_t>(n, 1)));
  std::atomic<size_t> next{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      for (size_t i = next++; i < n; i = next++) files[i] = file_stats(m.absolute_path(i));
    });
  }
  for (auto& w : workers) w.join();

  std::map<std::string, SplitAccumulator> splits;
  SplitAccumulator all;
  json undecodable = json::array();
  std::map<std::string, std::set<std::string>> splits_of_patient;
  std::map<std::pair<uint64_t, size_t>, std::vector<size_t>> by_content;
  for (size_t i = 0; i < n; ++i) {
    const auto& r = m.rows()[i];
    splits[split_key(r.split)].add(r, files[i]);
    all.add(r, files[i]);
    splits_of_patient[r.patient].insert(split_key(r.split));
    if (!files[i].decoded) undecodable.push_back({{"path", r.path}, {"split", r.split}, {"error", files[i].error}});
    if (files[i].read) by_content[{files[i].hash, files[i].bytes}].push_back(i);
  }

  json within = json::object(), groups = json::array();
  int64_t across = 0, within_total = 0;
  for (const auto& [key, rows] : by_content) {
    if (rows.size() < 2) continue;
    std::map<std::string, int64_t> per_split;
    json group = json::array();
    for (size_t i : rows) {
      ++per_split[split_key(m.rows()[i].split)];
      group.push_back({{"path", m.rows()[i].path}, {"split", m.rows()[i].split}});
    }
    for (const auto& [s, count] : per_split) {
      if (count > 1) {
        within[s] = within.value(s, int64_t{0}) + count - 1;
        within_total += count - 1;
      }
    }
    if (per_split.size() > 1) ++across;
    if (groups.size() < 50) groups.push_back(group);
  }
  json several = json::array();
  for (const auto& [patient, s] : splits_of_patient) {
    if (s.size() > 1) several.push_back({{"patient", patient}, {"splits", s}});
  }

  json j;
  j["format"] = 1;
  j["patches"] = n;
  j["background_level"] = kBackgroundLevel;
  j["histogram_bins"] = kHistogramBins;
  j["splits"] = json::object();
  for (const auto& [name, acc] : splits) j["splits"][name] = acc.to_json();
  j["splits"]["all"] = all.to_json();
  j["undecodable"] = undecodable;
  j["duplicates"] = {{"within_split", within}, {"within_split_total", within_total}, {"across_splits", across},
                     {"groups", groups}};
  j["patients_in_several_splits"] = several;
  json skew = json::object();
  if (j["splits"].contains("train")) {
    const std::string text = j.dump();
    for (const char* s : {"val", "test"}) {
      if (j["splits"].contains(s)) skew[s] = json::parse(compare_statistics(text, text, "train", s));
    }
  }
  j["skew"] = skew;
  return j.dump();
}

std::string compare_statistics(const std::string& a_text, const std::string& b_text, const std::string& a_split,
                               const std::string& b_split) {
  const json a = json::parse(a_text), b = json::parse(b_text);
  HISTOCNN_CHECK(a.contains("splits") && a["splits"].contains(a_split), "the reference statistics have no split '{}'",
                 a_split);
  HISTOCNN_CHECK(b.contains("splits") && b["splits"].contains(b_split), "the statistics have no split '{}'", b_split);
  const auto& sa = a["splits"][a_split];
  const auto& sb = b["splits"][b_split];
  json d;
  d["label_linf"] = linf_distance(sa["class_counts"].get<std::vector<double>>(),
                                  sb["class_counts"].get<std::vector<double>>());
  std::vector<double> js;
  for (int c = 0; c < 3; ++c) {
    js.push_back(jensen_shannon(sa["intensity_histogram"][c].get<std::vector<double>>(),
                                sb["intensity_histogram"][c].get<std::vector<double>>()));
  }
  d["intensity_js"] = js;
  d["intensity_js_max"] = *std::max_element(js.begin(), js.end());
  d["background_diff"] = std::abs(sa["background_fraction"].get<double>() - sb["background_fraction"].get<double>());
  return d.dump();
}

void plot_statistics(const std::string& statistics_json, const fs::path& png) {
  const json s = json::parse(statistics_json);
  std::vector<std::string> names;
  for (const char* k : {"train", "val", "test", "unassigned"}) {
    if (s["splits"].contains(k)) names.push_back(k);
  }
  names.push_back("all");
  metrics::PlotOptions po;
  po.width = 800;
  po.height = 360;

  metrics::BarChart counts;
  counts.categories = names;
  counts.series = {"IDC-negative", "IDC-positive"};
  counts.values.assign(2, {});
  metrics::BarChart channels;
  channels.categories = names;
  channels.series = {"R", "G", "B"};
  channels.values.assign(3, {});
  channels.decimals = 3;
  metrics::BarChart quality;
  quality.categories = names;
  quality.series = {"background share", "undecodable share"};
  quality.values.assign(2, {});
  quality.decimals = 3;
  for (const auto& name : names) {
    const auto& sp = s["splits"][name];
    for (int c = 0; c < 2; ++c) counts.values[c].push_back(sp["class_counts"][c].get<double>());
    for (int c = 0; c < 3; ++c) channels.values[c].push_back(sp["channel_mean"][c].get<double>());
    quality.values[0].push_back(sp["background_fraction"].get<double>());
    quality.values[1].push_back(sp["undecodable"].get<double>() / std::max(1.0, sp["patches"].get<double>()));
  }
  // The most common image sizes over all splits.
  std::vector<std::pair<int64_t, std::string>> sizes;
  for (const auto& [size, count] : s["splits"]["all"]["sizes"].items()) sizes.emplace_back(count.get<int64_t>(), size);
  std::sort(sizes.rbegin(), sizes.rend());
  metrics::BarChart size_chart;
  size_chart.series = {"patches"};
  size_chart.values.assign(1, {});
  for (size_t i = 0; i < sizes.size() && i < 8; ++i) {
    size_chart.categories.push_back(sizes[i].second);
    size_chart.values[0].push_back(static_cast<double>(sizes[i].first));
  }
  if (size_chart.categories.empty()) {
    size_chart.categories = {"none decoded"};
    size_chart.values[0] = {0};
  }

  std::vector<std::pair<metrics::BarChart, std::string>> charts = {
      {counts, "Patches per split and class"},
      {channels, "Mean intensity per channel (0-1)"},
      {quality, fmt::format("Near-white background (R, G, B >= {}) and undecodable files", kBackgroundLevel)},
      {size_chart, "Image sizes (most common, all splits)"}};
  std::vector<cv::Mat> panels;
  const fs::path folder = png.parent_path().empty() ? fs::path(".") : png.parent_path();
  for (size_t i = 0; i < charts.size(); ++i) {
    const fs::path part = folder / fmt::format(".{}.part{}.png", png.stem().string(), i);
    po.title = charts[i].second;
    metrics::plot_bar_chart(part, charts[i].first, po);
    panels.push_back(io::read_image_rgb(part));
    fs::remove(part);
  }
  cv::Mat figure;
  cv::vconcat(panels, figure);
  io::write_png(png, figure);
}

}  // namespace histocnn::pipeline
