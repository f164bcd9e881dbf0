#include "histocnn/data/synthetic.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <cmath>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "histocnn/core/error.h"
#include "histocnn/core/log.h"
#include "histocnn/data/balance.h"
#include "histocnn/data/filename.h"
#include "histocnn/io/image.h"

namespace histocnn::data {
namespace fs = std::filesystem;

namespace {

constexpr double kPi = 3.14159265358979323846;

uint64_t splitmix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
uint64_t mix(uint64_t a, uint64_t b) { return splitmix(splitmix(a) ^ (b * 0xD1B54A32D192ED03ULL)); }
uint64_t mix(uint64_t a, uint64_t b, uint64_t c) { return mix(mix(a, b), c); }

// Portable draws (std::uniform_real_distribution and std::normal_distribution differ between
// standard libraries; these do not).
class Rng {
 public:
  explicit Rng(uint64_t seed) : eng_(seed) {}
  uint64_t next() { return eng_(); }
  double uniform() { return static_cast<double>(eng_() >> 11) * 0x1.0p-53; }
  double uniform(double a, double b) { return a + (b - a) * uniform(); }
  uint64_t below(uint64_t n) { return uniform_below(eng_, n); }
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1;
    do u1 = uniform(); while (u1 <= 1e-300);
    const double u2 = uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    spare_ = radius * std::sin(2.0 * kPi * u2);
    has_spare_ = true;
    return radius * std::cos(2.0 * kPi * u2);
  }

 private:
  std::mt19937_64 eng_;
  double spare_ = 0;
  bool has_spare_ = false;
};

// One patient's slide: stain colours (optical density per unit of dye, R,G,B), strengths,
// background light and the patient's shift of the latent tumour score.
struct Stain {
  cv::Vec3f od_h, od_e;
  cv::Vec3f white;
  double h_gain = 1, e_gain = 1;
  double shift = 0;
};

cv::Vec3f unit(cv::Vec3f v) {
  for (int c = 0; c < 3; ++c) v[c] = std::max(v[c], 0.05f);
  return v / static_cast<float>(cv::norm(v));
}

Stain make_stain(uint64_t seed, const SyntheticOptions& o) {
  Rng r(seed);
  Stain s;
  s.od_h = unit({static_cast<float>(0.55 + 0.06 * r.normal()), static_cast<float>(0.78 + 0.05 * r.normal()),
                 static_cast<float>(0.40 + 0.06 * r.normal())});
  s.od_e = unit({static_cast<float>(0.20 + 0.05 * r.normal()), static_cast<float>(0.86 + 0.04 * r.normal()),
                 static_cast<float>(0.48 + 0.07 * r.normal())});
  s.h_gain = std::exp(0.15 * r.normal());
  s.e_gain = std::exp(0.18 * r.normal());
  const double base = std::clamp(242.0 + 4.0 * r.normal(), 228.0, 252.0);
  for (int c = 0; c < 3; ++c)
    s.white[c] = static_cast<float>(std::clamp(base + 3.0 * r.normal(), 220.0, 255.0));
  s.shift = (0.03 + 0.07 * o.difficulty) * r.normal();
  return s;
}

void validate(const SyntheticOptions& o) {
  HISTOCNN_CHECK(o.patients >= 1, "synthetic: patients must be >= 1, got {}", o.patients);
  HISTOCNN_CHECK(o.patients <= 9999, "synthetic: patients must be <= 9999, got {}", o.patients);
  HISTOCNN_CHECK(o.patches_per_patient >= 1, "synthetic: patches_per_patient must be >= 1, got {}",
                 o.patches_per_patient);
  HISTOCNN_CHECK(o.positive_fraction >= 0 && o.positive_fraction <= 1,
                 "synthetic: positive_fraction must be in [0, 1], got {}", o.positive_fraction);
  HISTOCNN_CHECK(o.patch_size >= 8 && o.patch_size <= 1024,
                 "synthetic: patch_size must be in [8, 1024], got {}", o.patch_size);
  HISTOCNN_CHECK(o.difficulty >= 0 && o.difficulty <= 1,
                 "synthetic: difficulty must be in [0, 1], got {}", o.difficulty);
  HISTOCNN_CHECK(o.border_patches >= 0, "synthetic: border_patches must be >= 0, got {}",
                 o.border_patches);
}

// A normal(0, 1) field on a coarse grid, smoothly upsampled: slow variation across the patch.
cv::Mat smooth_field(cv::RNG& cvr, int cells, int size) {
  cv::Mat coarse(cells, cells, CV_32F);
  cvr.fill(coarse, cv::RNG::NORMAL, 0.0, 1.0);
  cv::Mat out;
  cv::resize(coarse, out, cv::Size(size, size), 0, 0, cv::INTER_CUBIC);
  return out;
}

// White noise smeared along `angle` (blurred along x, then rotated): collagen fibres. Unit
// variance.
cv::Mat fibre_field(cv::RNG& cvr, int size, double angle, double length, double width) {
  const int big = static_cast<int>(std::ceil(size * 1.42)) + 2;
  cv::Mat noise(big, big, CV_32F);
  cvr.fill(noise, cv::RNG::NORMAL, 0.0, 1.0);
  const double sx = length / 3.0, sy = width;
  const int kx = 2 * static_cast<int>(std::ceil(3 * sx)) + 1, ky = 2 * static_cast<int>(std::ceil(3 * sy)) + 1;
  const cv::Mat gx = cv::getGaussianKernel(kx, sx, CV_32F), gy = cv::getGaussianKernel(ky, sy, CV_32F);
  cv::sepFilter2D(noise, noise, -1, gx, gy, cv::Point(-1, -1), 0, cv::BORDER_REFLECT);
  noise /= std::sqrt(gx.dot(gx) * gy.dot(gy));  // the variance of filtered unit white noise
  cv::Mat rot = cv::getRotationMatrix2D(cv::Point2f(big / 2.0f, big / 2.0f), angle * 180.0 / kPi, 1.0);
  rot.at<double>(0, 2) -= (big - size) / 2.0;
  rot.at<double>(1, 2) -= (big - size) / 2.0;
  cv::Mat out;
  cv::warpAffine(noise, out, rot, cv::Size(size, size), cv::INTER_LINEAR, cv::BORDER_REFLECT);
  return out;
}

cv::Mat render(int label, Rng& r, const Stain& st, const SyntheticOptions& o) {
  const int p = o.patch_size;
  const int S = 2 * p;  // drawn at twice the size, then area-averaged: cheap anti-aliasing
  const double k = S / 50.0;
  cv::RNG cvr(r.next() | 1);

  // Latent tumour score: everything visible below depends on it, so labels overlap by design.
  const double spread = 0.10 + 0.22 * o.difficulty;
  const double t = (label == 1 ? 0.7 : 0.3) + st.shift + spread * r.normal();
  const double d = std::clamp(t, 0.0, 1.0);

  // Stroma: eosin with fibres running mostly one way, slow density changes and thin white gaps.
  const double angle = r.uniform(0, kPi);
  cv::Mat f1 = fibre_field(cvr, S, angle, 9 * k, 0.35 * k);
  cv::Mat f2 = fibre_field(cvr, S, angle + 0.5 * r.normal(), 5 * k, 0.4 * k);
  cv::Mat fibre = 0.8 * f1 + 0.6 * f2;
  cv::Mat slow = smooth_field(cvr, 4, S);
  const double e_level = std::clamp(0.75 + 0.12 * r.normal(), 0.45, 1.05);
  cv::Mat E = e_level * (0.8 + 0.15 * fibre + 0.15 * slow);
  cv::Mat gaps;
  cv::min(cv::max((fibre + 2.0) / 0.6, 0.12), 1.0, gaps);
  E = E.mul(gaps);
  E = cv::max(E, 0.0);
  cv::Mat H(S, S, CV_32F, cv::Scalar(0.07));

  // Tumour nests: crowded epithelium with purple cytoplasm, covering more of the patch as t grows.
  const double nest_cover = std::clamp(1.25 * d - 0.35 + 0.12 * r.normal(), 0.0, 0.92);
  cv::Mat nest(S, S, CV_32F, cv::Scalar(0));
  if (nest_cover > 0.02) {
    cv::Mat field = smooth_field(cvr, 3 + static_cast<int>(r.uniform(0, 3)), S);
    std::vector<float> values(field.begin<float>(), field.end<float>());
    const size_t q = static_cast<size_t>((1.0 - nest_cover) * static_cast<double>(values.size() - 1));
    std::nth_element(values.begin(), values.begin() + static_cast<long>(q), values.end());
    cv::Mat mask = field > values[q];
    mask.convertTo(nest, CV_32F, 1.0 / 255.0);
    cv::GaussianBlur(nest, nest, cv::Size(0, 0), 1.5 * k);
    E = E.mul(1.0 - 0.45 * nest) + 0.12 * nest;
    H += (0.2 + 0.15 * d) * nest;
  }

  // Fat: packed white adipocytes with thin pink membranes, less of it as t grows.
  const double fat_target = std::clamp(0.62 - 0.8 * d + 0.18 * r.normal(), 0.0, 0.85);
  cv::Mat fat(S, S, CV_8U, cv::Scalar(0));
  // Cells grow in clusters: most new cells touch an earlier one, so they pack into polygons.
  const int membrane = std::max(1, static_cast<int>(std::lround(0.5 * k)));
  std::vector<std::pair<cv::Point2d, double>> cells;
  for (int i = 0; i < 80 && fat_target > 0.03; ++i) {
    if (cv::countNonZero(fat) >= fat_target * S * S) break;
    const double radius = (5.5 + 7.0 * r.uniform()) * k;
    cv::Point2d c;
    for (int attempt = 0; attempt < 10; ++attempt) {
      if (!cells.empty() && r.uniform() < 0.8) {
        const auto& prev = cells[static_cast<size_t>(r.below(cells.size()))];
        const double dir = r.uniform(0, 2 * kPi);
        c = prev.first + cv::Point2d(std::cos(dir), std::sin(dir)) * (0.85 * (prev.second + radius));
      } else {
        c = cv::Point2d(r.uniform(0, S), r.uniform(0, S));
      }
      const cv::Point pi(std::clamp(static_cast<int>(c.x), 0, S - 1), std::clamp(static_cast<int>(c.y), 0, S - 1));
      if (nest.at<float>(pi) < 0.3) break;
    }
    cells.emplace_back(c, radius);
    const cv::Size axes(static_cast<int>(radius), static_cast<int>(radius * r.uniform(0.7, 1.0)));
    const double tilt = r.uniform(0, 180);
    const cv::Size inner(std::max(1, axes.width - membrane), std::max(1, axes.height - membrane));
    cv::ellipse(E, c, inner, tilt, 0, 360, cv::Scalar(0.0), cv::FILLED);
    cv::ellipse(H, c, inner, tilt, 0, 360, cv::Scalar(0.0), cv::FILLED);
    cv::ellipse(nest, c, axes, tilt, 0, 360, cv::Scalar(0.0), cv::FILLED);
    cv::ellipse(E, c, axes, tilt, 0, 360, cv::Scalar(0.6 * e_level), membrane);
    cv::ellipse(fat, c, inner, tilt, 0, 360, cv::Scalar(255), cv::FILLED);
  }
  const double fat_share = cv::countNonZero(fat) / static_cast<double>(S * S);

  // Tears in the section: curved white streaks.
  if (r.uniform() < 0.2) {
    std::vector<cv::Point> line;
    cv::Point2d at(r.uniform(0, S), r.uniform(0, S));
    double dir = r.uniform(0, 2 * kPi);
    for (int i = 0; i < 5; ++i) {
      line.emplace_back(at);
      dir += 0.4 * r.normal();
      at += cv::Point2d(std::cos(dir), std::sin(dir)) * (8 * k);
    }
    const int width = std::max(1, static_cast<int>((1.0 + 2.0 * r.uniform()) * k));
    cv::polylines(E, line, false, cv::Scalar(0.02), width);
    cv::polylines(H, line, false, cv::Scalar(0.0), width);
  }

  // Nuclei: more, larger, rounder, more irregular and darker as t grows; in low-t tissue they are
  // small spindle-shaped fibroblasts lying along the fibres.
  const double area = (p / 50.0) * (p / 50.0);
  const double mean_count = area * (1.0 - fat_share) * (4.0 + 56.0 * std::pow(d, 1.3));
  const int count = std::max(0, static_cast<int>(std::lround(mean_count * std::exp(0.2 * r.normal()))));
  cv::Mat nuclei(S, S, CV_32F, cv::Scalar(0));
  std::vector<cv::Point> poly(12);
  for (int n = 0; n < count; ++n) {
    cv::Point2d c;
    bool placed = false;
    for (int attempt = 0; attempt < 12 && !placed; ++attempt) {
      c = cv::Point2d(r.uniform(0, S), r.uniform(0, S));
      const cv::Point pi(std::min(S - 1, static_cast<int>(c.x)), std::min(S - 1, static_cast<int>(c.y)));
      if (fat.at<uchar>(pi)) continue;
      const double accept = nest_cover > 0.02 ? 0.2 + 0.8 * nest.at<float>(pi) : 1.0;
      placed = r.uniform() < accept;
    }
    if (!placed) continue;
    const double a = std::max(0.7, 0.9 + 1.35 * d + 0.3 * r.normal()) * k;
    const double b = a * std::clamp(0.35 + 0.5 * d + 0.12 * r.normal(), 0.25, 1.0);
    const double theta = (d < 0.5 && r.uniform() < 0.7) ? angle + 0.2 * r.normal() : r.uniform(0, kPi);
    const double irregular = 0.04 + 0.25 * d;
    const double ph1 = r.uniform(0, 2 * kPi), ph2 = r.uniform(0, 2 * kPi);
    const double w1 = r.uniform(-1, 1), w2 = r.uniform(-1, 1);
    for (int v = 0; v < 12; ++v) {
      const double phi = 2 * kPi * v / 12;
      const double rad = 1.0 + irregular * (0.6 * w1 * std::sin(2 * phi + ph1) + 0.4 * w2 * std::sin(3 * phi + ph2));
      const double ex = a * rad * std::cos(phi), ey = b * rad * std::sin(phi);
      poly[v] = cv::Point(static_cast<int>(std::lround(c.x + ex * std::cos(theta) - ey * std::sin(theta))),
                          static_cast<int>(std::lround(c.y + ex * std::sin(theta) + ey * std::cos(theta))));
    }
    const double conc = std::max(0.4, 0.85 + 0.65 * d + 0.15 * r.normal());
    cv::fillConvexPoly(nuclei, poly, cv::Scalar(conc), cv::LINE_8);
  }
  cv::Mat chromatin(S, S, CV_32F);
  cvr.fill(chromatin, cv::RNG::NORMAL, 0.0, 1.0);
  cv::GaussianBlur(chromatin, chromatin, cv::Size(0, 0), 0.5 * k);
  nuclei = nuclei.mul(1.0 + 0.25 * chromatin);
  H += nuclei;
  E = E.mul(1.0 - 0.6 * cv::min(nuclei, 1.0));

  // Optics: focus blur, sensor resolution, Beer-Lambert absorption, sensor noise.
  cv::GaussianBlur(H, H, cv::Size(0, 0), 0.7 * k);
  cv::GaussianBlur(E, E, cv::Size(0, 0), 0.5 * k);
  cv::Mat h, e;
  cv::resize(H, h, cv::Size(p, p), 0, 0, cv::INTER_AREA);
  cv::resize(E, e, cv::Size(p, p), 0, 0, cv::INTER_AREA);
  const double hg = 1.25 * st.h_gain * std::exp(0.05 * r.normal());
  const double eg = 1.0 * st.e_gain * std::exp(0.05 * r.normal());
  cv::Mat noise(p, p, CV_32FC3);
  cvr.fill(noise, cv::RNG::NORMAL, 0.0, 2.5);
  cv::Mat rgb(p, p, CV_8UC3);
  for (int y = 0; y < p; ++y) {
    const float* hr = h.ptr<float>(y);
    const float* er = e.ptr<float>(y);
    const cv::Vec3f* nr = noise.ptr<cv::Vec3f>(y);
    cv::Vec3b* out = rgb.ptr<cv::Vec3b>(y);
    for (int x = 0; x < p; ++x) {
      for (int c = 0; c < 3; ++c) {
        const double od = hg * hr[x] * st.od_h[c] + eg * er[x] * st.od_e[c];
        out[x][c] = cv::saturate_cast<uchar>(st.white[c] * std::exp(-od) + nr[x][c]);
      }
    }
  }
  return rgb;
}

bool holds_patch_files(const fs::path& root, std::string* example) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    if (parse_patch_filename(it->path().filename().string())) {
      *example = it->path().string();
      return true;
    }
  }
  return false;
}

struct BorderSize {
  int w, h;
};
// Sizes of the real border patches (at 50x50), most common first.
constexpr std::array<BorderSize, 7> kBorderSizes{{{50, 42}, {50, 1}, {50, 30}, {32, 50}, {50, 35}, {12, 50}, {42, 1}}};

}  // namespace

cv::Mat render_synthetic_patch(int label, uint64_t seed, const SyntheticOptions& o) {
  validate(o);
  HISTOCNN_CHECK(label == 0 || label == 1, "synthetic: label must be 0 or 1, got {}", label);
  const Stain stain = make_stain(mix(seed, 0x5741494EULL), o);
  Rng r(mix(seed, 0x50415443ULL));
  return render(label, r, stain, o);
}

SyntheticSummary generate_synthetic(const fs::path& root, const SyntheticOptions& o) {
  validate(o);
  std::error_code ec;
  if (fs::exists(root, ec)) {
    HISTOCNN_CHECK(fs::is_directory(root, ec), "synthetic: '{}' is a file; pass an empty or new folder",
                   root.string());
    std::string example;
    HISTOCNN_CHECK(!holds_patch_files(root, &example),
                   "synthetic: '{}' already holds patch files (e.g. '{}'); pass an empty or new "
                   "folder so that generated and existing patches do not mix",
                   root.string(), example);
  }
  fs::create_directories(root, ec);
  HISTOCNN_CHECK_IO(!ec, "synthetic: cannot create folder '{}': {}", root.string(), ec.message());

  // Patients are independent (each has its own seeds), so they are written by a few threads: the
  // work is mostly waiting for fsync of the atomic writes. The files do not depend on the order.
  std::atomic<int64_t> written{0}, positives_written{0};
  std::atomic<int> next_patient{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  const int p = o.patch_size;

  auto do_patient = [&](int i) {
    const std::string patient = std::to_string(90001 + i);
    Rng pr(mix(o.seed, static_cast<uint64_t>(i), 1));
    const Stain stain = make_stain(mix(o.seed, static_cast<uint64_t>(i), 2), o);
    const double patient_fraction = std::clamp(o.positive_fraction * (0.5 + pr.uniform()), 0.0, 1.0);

    // Positions: a random subset of a grid; positives are the patches nearest a tumour centre.
    const int n = o.patches_per_patient;
    const int grid = static_cast<int>(std::ceil(std::sqrt(n * 1.6)));
    const auto cells = seeded_permutation(static_cast<size_t>(grid) * grid, mix(o.seed, i, 3));
    const cv::Point2d centre(pr.uniform(0, grid), pr.uniform(0, grid));
    std::vector<std::pair<double, int>> near;
    for (int j = 0; j < n; ++j) {
      const double cx = static_cast<double>(cells[j] % grid) + 0.5, cy = static_cast<double>(cells[j] / grid) + 0.5;
      near.emplace_back(std::hypot(cx - centre.x, cy - centre.y) + 0.15 * grid * pr.normal(), j);
    }
    std::sort(near.begin(), near.end());
    const int positives = static_cast<int>(std::lround(n * patient_fraction));
    std::vector<int> label(n, 0);
    for (int j = 0; j < positives; ++j) label[near[j].second] = 1;

    auto write = [&](int lab, int gx, int gy, const cv::Mat& rgb) {
      const PatchName name{patient, 1 + gx * p, 1 + gy * p, lab};
      io::write_png(root / patient / std::to_string(lab) / format_patch_filename(name), rgb);
      ++written;
      if (lab) ++positives_written;
    };
    for (int j = 0; j < n && !failed; ++j) {
      Rng r(mix(o.seed, static_cast<uint64_t>(i), 1000 + static_cast<uint64_t>(j)));
      write(label[j], static_cast<int>(cells[j] % grid), static_cast<int>(cells[j] / grid), render(label[j], r, stain, o));
    }

    // Border patches, cut at the right or bottom edge of the slide.
    const int borders = o.border_patches / o.patients + (i < o.border_patches % o.patients ? 1 : 0);
    int right = 0, bottom = 0;
    for (int j = 0; j < borders && !failed; ++j) {
      Rng r(mix(o.seed, static_cast<uint64_t>(i), 1000000 + static_cast<uint64_t>(j)));
      const int lab = r.uniform() < patient_fraction ? 1 : 0;
      const BorderSize bs = kBorderSizes[static_cast<size_t>(j) % kBorderSizes.size()];
      const int w = std::clamp(static_cast<int>(std::lround(bs.w * p / 50.0)), 1, p);
      const int h = std::clamp(static_cast<int>(std::lround(bs.h * p / 50.0)), 1, p);
      cv::Mat full = render(lab, r, stain, o);
      cv::Mat cut = full(cv::Rect(0, 0, w, h)).clone();
      if (h < p) {  // bottom edge
        write(lab, bottom % grid, grid + bottom / grid, cut);
        ++bottom;
      } else {      // right edge
        write(lab, grid + right / grid, right % grid, cut);
        ++right;
      }
    }
  };
  auto worker = [&]() {
    for (int i = next_patient++; i < o.patients && !failed; i = next_patient++) {
      try {
        do_patient(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  };
  const int threads = std::clamp(static_cast<int>(std::thread::hardware_concurrency()) * 2, 2, 8);
  std::vector<std::thread> pool;
  for (int t = 1; t < std::min(threads, o.patients); ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);

  SyntheticSummary summary;
  summary.patients = o.patients;
  summary.written = written;
  summary.positives = positives_written;
  summary.negatives = summary.written - summary.positives;
  log_info("synthetic: wrote {} patches ({} negative, {} positive) from {} patients under '{}'",
           summary.written, summary.negatives, summary.positives, summary.patients, root.string());
  return summary;
}

}  // namespace histocnn::data
