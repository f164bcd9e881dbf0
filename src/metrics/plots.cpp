#include "histocnn/metrics/plots.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "histocnn/core/error.h"
#include "histocnn/io/image.h"

namespace histocnn::metrics {
namespace {

// Colours are RGB: the canvas is RGB, as io::write_png expects. Matplotlib's "tab10" and "Blues".
const cv::Scalar kWhite(255, 255, 255);
const cv::Scalar kText(30, 30, 30);
const cv::Scalar kAxis(70, 70, 70);
const cv::Scalar kGrid(228, 228, 228);
const cv::Scalar kChance(150, 150, 150);
const cv::Scalar kBlue(31, 119, 180);
const cv::Scalar kOrange(255, 127, 14);
const cv::Scalar kGreen(44, 160, 44);
const cv::Scalar kRed(214, 39, 40);
const cv::Scalar kLightBlue(174, 207, 230);
const cv::Scalar kBarGray(170, 170, 170);

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
constexpr int kShift = 4;  // sub-pixel drawing: coordinates in 1/16 pixel
constexpr double kSub = 16.0;

// ---------------------------------------------------------------- input checks

void check_options(const PlotOptions& o) {
  HISTOCNN_CHECK(o.width >= 200 && o.width <= 8000 && o.height >= 150 && o.height <= 8000,
                 "options.width x options.height = {}x{} is not a plot size; use [200, 8000] x "
                 "[150, 8000], e.g. 640x480",
                 o.width, o.height);
}

void check_values(const std::vector<double>& v, const char* name, bool unit_interval) {
  HISTOCNN_CHECK(!v.empty(), "{} is empty; there is nothing to plot", name);
  for (size_t i = 0; i < v.size(); ++i) {
    HISTOCNN_CHECK(std::isfinite(v[i]), "{}[{}] = {} is not finite; plots need finite values", name, i, v[i]);
    if (unit_interval) {
      HISTOCNN_CHECK(v[i] >= 0.0 && v[i] <= 1.0, "{}[{}] = {} lies outside [0, 1]", name, i, v[i]);
    }
  }
}

void check_same_length(const std::vector<double>& a, const char* a_name, size_t b_size, const char* b_name) {
  HISTOCNN_CHECK(a.size() == b_size, "{} has {} values but {} has {}; pass one value per point", a_name,
                 a.size(), b_name, b_size);
}

void check_unit_number(double v, const char* name) {
  HISTOCNN_CHECK(std::isfinite(v) && v >= 0.0 && v <= 1.0, "{} = {} must be a finite number in [0, 1]", name, v);
}

// ---------------------------------------------------------------- text

// The Hershey font has ASCII only: one '?' per non-ASCII code point.
std::string ascii(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if ((c & 0xC0) != 0x80) {
      out += '?';
    }
  }
  return out;
}

// Sizes relative to a 640x480 figure, so that larger figures keep their proportions.
struct Style {
  double f = 1.0;
  double tick_font() const { return 0.42 * f; }
  double label_font() const { return 0.5 * f; }
  double title_font() const { return 0.6 * f; }
  int px(double v) const { return std::max(1, static_cast<int>(std::lround(v * f))); }
  int line() const { return px(2.0); }
  int thin() const { return std::max(1, px(1.0)); }
};

Style style_for(const PlotOptions& o) {
  Style s;
  s.f = std::clamp(std::min(o.width / 640.0, o.height / 480.0), 0.5, 4.0);
  return s;
}

enum class HAlign { left, center, right };
enum class VAlign { top, middle, bottom };

cv::Size text_size(const std::string& s, double scale, int thickness = 1) {
  int baseline = 0;
  return cv::getTextSize(ascii(s), kFont, scale, thickness, &baseline);
}

void put_text(cv::Mat& img, const std::string& s, cv::Point anchor, double scale, const cv::Scalar& color,
              HAlign h = HAlign::left, VAlign v = VAlign::bottom, int thickness = 1) {
  const std::string a = ascii(s);
  const cv::Size size = text_size(a, scale, thickness);
  int x = anchor.x, y = anchor.y;
  if (h == HAlign::center) x -= size.width / 2;
  if (h == HAlign::right) x -= size.width;
  if (v == VAlign::top) y += size.height;
  if (v == VAlign::middle) y += size.height / 2;
  cv::putText(img, a, {x, y}, kFont, scale, color, thickness, cv::LINE_AA);
}

// Text rotated by 90 degrees (reading upwards), centred on `center`: drawn as a mask, rotated and
// blended, so that its anti-aliased edges survive on any background.
void put_vertical_text(cv::Mat& img, const std::string& s, cv::Point center, double scale,
                       const cv::Scalar& color) {
  const std::string a = ascii(s);
  int baseline = 0;
  const cv::Size size = cv::getTextSize(a, kFont, scale, 1, &baseline);
  cv::Mat mask(size.height + baseline + 4, size.width + 4, CV_8UC1, cv::Scalar(0));
  cv::putText(mask, a, {2, size.height + 2}, kFont, scale, cv::Scalar(255), 1, cv::LINE_AA);
  cv::Mat rotated;
  cv::rotate(mask, rotated, cv::ROTATE_90_COUNTERCLOCKWISE);
  const int x0 = center.x - rotated.cols / 2, y0 = center.y - rotated.rows / 2;
  for (int r = 0; r < rotated.rows; ++r) {
    for (int c = 0; c < rotated.cols; ++c) {
      const int y = y0 + r, x = x0 + c;
      if (y < 0 || x < 0 || y >= img.rows || x >= img.cols) continue;
      const double alpha = rotated.at<uchar>(r, c) / 255.0;
      if (alpha == 0.0) continue;
      cv::Vec3b& p = img.at<cv::Vec3b>(y, x);
      for (int k = 0; k < 3; ++k) p[k] = cv::saturate_cast<uchar>(p[k] * (1.0 - alpha) + color[k] * alpha);
    }
  }
}

void put_title(cv::Mat& img, const Style& st, const std::string& title) {
  put_text(img, title, {img.cols / 2, st.px(12)}, st.title_font(), kText, HAlign::center, VAlign::top,
           std::max(1, st.px(1.0)));
}

// ---------------------------------------------------------------- ticks

struct Ticks {
  std::vector<double> values;
  int decimals = 0;
};

double nice_step(double range, int target) {
  const double raw = range / std::max(1, target);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double fraction = raw / magnitude;
  const double nice = fraction < 1.5 ? 1.0 : fraction < 3.0 ? 2.0 : fraction < 7.0 ? 5.0 : 10.0;
  return nice * magnitude;
}

Ticks make_ticks(double lo, double hi, int target = 5, double min_step = 0.0) {
  Ticks t;
  const double step = std::max(nice_step(hi - lo, target), min_step);
  t.decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + 1e-9 * step; k += 1.0) {
    const double v = k * step;
    t.values.push_back(std::fabs(v) < 1e-12 * step ? 0.0 : v);
  }
  return t;
}

// [lo, hi] widened by `pad` of its span and out to the next multiples of a nice step.
std::pair<double, double> nice_range(double lo, double hi, double pad = 0.05, int target = 5) {
  if (hi - lo < 1e-12 * std::max(1.0, std::fabs(hi))) {
    const double half = std::max(0.05 * std::fabs(hi), 1e-3);
    lo -= half;
    hi += half;
  }
  const double span = hi - lo;
  lo -= pad * span;
  hi += pad * span;
  const double step = nice_step(hi - lo, target);
  return {std::floor(lo / step) * step, std::ceil(hi / step) * step};
}

// ---------------------------------------------------------------- axes

struct Axes {
  cv::Mat* img = nullptr;
  cv::Rect area;  // the plotting area in pixels
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  Style st;

  double fx(double x) const { return area.x + (x - x0) / (x1 - x0) * area.width; }
  double fy(double y) const { return area.y + area.height - (y - y0) / (y1 - y0) * area.height; }
  cv::Point sub(double x, double y) const {  // shifted point for anti-aliased sub-pixel drawing
    return {static_cast<int>(std::lround(fx(x) * kSub)), static_cast<int>(std::lround(fy(y) * kSub))};
  }
  cv::Point pixel(double x, double y) const {
    return {static_cast<int>(std::lround(fx(x))), static_cast<int>(std::lround(fy(y)))};
  }

  void line(double xa, double ya, double xb, double yb, const cv::Scalar& c, int thickness, bool dashed = false) const {
    if (!dashed) {
      cv::line(*img, sub(xa, ya), sub(xb, yb), c, thickness, cv::LINE_AA, kShift);
      return;
    }
    const double dx = fx(xb) - fx(xa), dy = fy(yb) - fy(ya);
    const double length = std::hypot(dx, dy);
    const double dash = 7.0 * st.f, gap = 5.0 * st.f;
    for (double s = 0.0; s < length; s += dash + gap) {
      const double e = std::min(length, s + dash);
      const double ta = s / length, tb = e / length;
      cv::line(*img, sub(xa + (xb - xa) * ta, ya + (yb - ya) * ta), sub(xa + (xb - xa) * tb, ya + (yb - ya) * tb),
               c, thickness, cv::LINE_AA, kShift);
    }
  }

  void polyline(const std::vector<double>& xs, const std::vector<double>& ys, const cv::Scalar& c, int thickness,
                bool dashed = false) const {
    if (xs.size() == 1) {
      marker(xs[0], ys[0], c, st.px(3));
      return;
    }
    if (dashed) {
      for (size_t i = 0; i + 1 < xs.size(); ++i) line(xs[i], ys[i], xs[i + 1], ys[i + 1], c, thickness, true);
      return;
    }
    std::vector<cv::Point> points;
    for (size_t i = 0; i < xs.size(); ++i) points.push_back(sub(xs[i], ys[i]));
    cv::polylines(*img, points, false, c, thickness, cv::LINE_AA, kShift);
  }

  void marker(double x, double y, const cv::Scalar& c, int radius) const {
    cv::circle(*img, sub(x, y), static_cast<int>(radius * kSub), c, cv::FILLED, cv::LINE_AA, kShift);
  }

  void bar(double xa, double xb, double ya, double yb, const cv::Scalar& fill, const cv::Scalar& border) const {
    const cv::Point a = pixel(xa, yb), b = pixel(xb, ya);
    if (b.x - a.x < 1) return;
    cv::rectangle(*img, a, b, fill, cv::FILLED);
    cv::rectangle(*img, a, b, border, 1);
  }

  // Grid, frame, ticks and their labels; empty axis labels are not drawn.
  void decorate(const Ticks& xt, const Ticks& yt, const std::string& x_label, const std::string& y_label,
                bool x_tick_labels = true) const {
    const int tick = st.px(5);
    for (double v : xt.values) {
      const int x = static_cast<int>(std::lround(fx(v)));
      cv::line(*img, {x, area.y}, {x, area.y + area.height}, kGrid, 1);
    }
    for (double v : yt.values) {
      const int y = static_cast<int>(std::lround(fy(v)));
      cv::line(*img, {area.x, y}, {area.x + area.width, y}, kGrid, 1);
    }
    cv::rectangle(*img, area, kAxis, 1);
    for (double v : xt.values) {
      const int x = static_cast<int>(std::lround(fx(v)));
      const int y = area.y + area.height;
      cv::line(*img, {x, y}, {x, y + tick}, kAxis, 1);
      if (x_tick_labels) {
        put_text(*img, fmt::format("{:.{}f}", v, xt.decimals), {x, y + tick + st.px(4)}, st.tick_font(), kText,
                 HAlign::center, VAlign::top);
      }
    }
    int widest = 0;
    for (double v : yt.values) {
      const int y = static_cast<int>(std::lround(fy(v)));
      cv::line(*img, {area.x - tick, y}, {area.x, y}, kAxis, 1);
      const std::string label = fmt::format("{:.{}f}", v, yt.decimals);
      widest = std::max(widest, text_size(label, st.tick_font()).width);
      put_text(*img, label, {area.x - tick - st.px(4), y}, st.tick_font(), kText, HAlign::right, VAlign::middle);
    }
    if (!x_label.empty()) {
      put_text(*img, x_label, {area.x + area.width / 2, area.y + area.height + tick + st.px(26)}, st.label_font(),
               kText, HAlign::center, VAlign::top);
    }
    if (!y_label.empty()) {
      put_vertical_text(*img, y_label, {area.x - tick - widest - st.px(16), area.y + area.height / 2},
                        st.label_font(), kText);
    }
  }
};

// ---------------------------------------------------------------- legend

struct LegendEntry {
  std::string label;
  cv::Scalar color;
  bool dashed = false;
  bool marker = false;
  bool box = false;
};

// Draws the legend in the corner (or side) of `ax` that covers the fewest of `points` (pixels).
void legend(const Axes& ax, const std::vector<LegendEntry>& entries, const std::vector<cv::Point>& points) {
  const Style& st = ax.st;
  const int pad = st.px(8), sample = st.px(28), row = st.px(20);
  int text_width = 0;
  for (const auto& e : entries) text_width = std::max(text_width, text_size(e.label, st.tick_font()).width);
  const int w = pad * 3 + sample + text_width, h = pad * 2 + row * static_cast<int>(entries.size()) - st.px(4);
  const int margin = st.px(8);
  const cv::Rect& a = ax.area;
  const int right_x = a.x + a.width - w - margin, left_x = a.x + margin, center_x = a.x + (a.width - w) / 2;
  const int bottom_y = a.y + a.height - h - margin, top_y = a.y + margin, middle_y = a.y + (a.height - h) / 2;
  // The corners first, then the middles of the sides.
  const std::array<cv::Rect, 8> corners = {
      cv::Rect(right_x, bottom_y, w, h),  cv::Rect(right_x, top_y, w, h),    cv::Rect(left_x, bottom_y, w, h),
      cv::Rect(left_x, top_y, w, h),      cv::Rect(right_x, middle_y, w, h), cv::Rect(left_x, middle_y, w, h),
      cv::Rect(center_x, top_y, w, h),    cv::Rect(center_x, bottom_y, w, h)};
  // Fewest points under the box first; among equals, the box farthest from the nearest point.
  cv::Rect box = corners[0];
  double best = std::numeric_limits<double>::infinity();
  const int reach = st.px(6);  // a marker's radius: a point just outside the box still shows under it
  for (const cv::Rect& r : corners) {
    const cv::Rect grown(r.x - reach, r.y - reach, r.width + 2 * reach, r.height + 2 * reach);
    double covered = 0.0, nearest = 1e9;
    for (const cv::Point& p : points) {
      covered += grown.contains(p) ? 1.0 : 0.0;
      const double dx = std::max({r.x - p.x, 0, p.x - (r.x + r.width)});
      const double dy = std::max({r.y - p.y, 0, p.y - (r.y + r.height)});
      nearest = std::min(nearest, std::hypot(dx, dy));
    }
    const double score = covered * 1e6 - std::min(nearest, 1e5);
    if (score < best) {
      best = score;
      box = r;
    }
  }
  cv::rectangle(*ax.img, box, kWhite, cv::FILLED);
  cv::rectangle(*ax.img, box, cv::Scalar(190, 190, 190), 1);
  for (size_t i = 0; i < entries.size(); ++i) {
    const LegendEntry& e = entries[i];
    const int y = box.y + pad + row * static_cast<int>(i) + row / 2 - st.px(2);
    const int xa = box.x + pad, xb = xa + sample;
    if (e.box) {
      cv::Rect swatch(xa + sample / 4, y - st.px(6), sample / 2, st.px(12));
      cv::rectangle(*ax.img, swatch, e.color, cv::FILLED);
      cv::rectangle(*ax.img, swatch, kBlue, 1);
    } else if (e.dashed) {
      const int dash = st.px(7), gap = st.px(4);
      for (int x = xa; x < xb; x += dash + gap) {
        cv::line(*ax.img, {x, y}, {std::min(xb, x + dash), y}, e.color, st.line(), cv::LINE_AA);
      }
    } else if (e.marker) {
      cv::line(*ax.img, {xa, y}, {xb, y}, e.color, st.thin(), cv::LINE_AA);
      cv::circle(*ax.img, {(xa + xb) / 2, y}, st.px(4), e.color, cv::FILLED, cv::LINE_AA);
    } else {
      cv::line(*ax.img, {xa, y}, {xb, y}, e.color, st.line(), cv::LINE_AA);
    }
    put_text(*ax.img, e.label, {xb + pad, y}, st.tick_font(), kText, HAlign::left, VAlign::middle);
  }
}


// Points along straight lines too, so that the legend avoids the segments between data points.
void add_segment_points(const Axes& ax, double xa, double ya, double xb, double yb, std::vector<cv::Point>* out) {
  for (int k = 0; k <= 40; ++k) {
    const double t = k / 40.0;
    out->push_back(ax.pixel(xa + (xb - xa) * t, ya + (yb - ya) * t));
  }
}

void add_polyline_points(const Axes& ax, const std::vector<double>& xs, const std::vector<double>& ys,
                         std::vector<cv::Point>* out) {
  for (size_t i = 0; i + 1 < xs.size(); ++i) add_segment_points(ax, xs[i], ys[i], xs[i + 1], ys[i + 1], out);
  if (xs.size() == 1) out->push_back(ax.pixel(xs[0], ys[0]));
}

// ---------------------------------------------------------------- canvas

cv::Mat blank(const PlotOptions& o) { return cv::Mat(o.height, o.width, CV_8UC3, kWhite); }

std::string or_default(const std::string& given, const std::string& fallback) {
  return given.empty() ? fallback : given;
}

// A square area for plots of rates in [0, 1], centred horizontally in the space left by the margins.
cv::Rect square_area(const PlotOptions& o, const Style& st) {
  const int top = st.px(44), bottom = st.px(60), left = st.px(74), right = st.px(20);
  const int side = std::min(o.height - top - bottom, o.width - left - right);
  const int x = left + (o.width - left - right - side) / 2;
  return {x, top, side, side};
}

void save(const std::filesystem::path& path, const cv::Mat& img) { io::write_png(path, img); }

std::string fixed(double v, int digits) { return fmt::format("{:.{}f}", v, digits); }

}  // namespace

// ================================================================ ROC

void plot_roc_curve(const std::filesystem::path& path, const std::vector<double>& fpr,
                    const std::vector<double>& tpr, double auc, const PlotOptions& options) {
  check_options(options);
  check_values(fpr, "fpr", true);
  check_values(tpr, "tpr", true);
  check_same_length(fpr, "fpr", tpr.size(), "tpr");
  check_unit_number(auc, "auc");

  const Style st = style_for(options);
  cv::Mat img = blank(options);
  Axes ax{&img, square_area(options, st), -0.01, 1.01, -0.01, 1.01, st};
  const Ticks t = make_ticks(0.0, 1.0, 5);
  ax.decorate(t, t, or_default(options.x_label, "false positive rate (1 - specificity)"),
              or_default(options.y_label, "true positive rate (sensitivity)"));
  ax.line(0, 0, 1, 1, kChance, st.thin(), true);
  ax.polyline(fpr, tpr, kBlue, st.line());
  std::vector<cv::Point> avoid;
  add_polyline_points(ax, fpr, tpr, &avoid);
  add_segment_points(ax, 0, 0, 1, 1, &avoid);
  legend(ax, {{fmt::format("ROC curve (AUC = {})", fixed(auc, 3)), kBlue}, {"chance (AUC = 0.5)", kChance, true}},
         avoid);
  put_title(img, st, or_default(options.title, "ROC curve"));
  save(path, img);
}

// ================================================================ PR

void plot_pr_curve(const std::filesystem::path& path, const std::vector<double>& recall,
                   const std::vector<double>& precision, double average_precision, double positive_rate,
                   const PlotOptions& options) {
  check_options(options);
  check_values(recall, "recall", true);
  check_values(precision, "precision", true);
  check_same_length(recall, "recall", precision.size(), "precision");
  check_unit_number(average_precision, "average_precision");
  check_unit_number(positive_rate, "positive_rate");

  const Style st = style_for(options);
  cv::Mat img = blank(options);
  Axes ax{&img, square_area(options, st), -0.01, 1.01, -0.01, 1.01, st};
  const Ticks t = make_ticks(0.0, 1.0, 5);
  ax.decorate(t, t, or_default(options.x_label, "recall (sensitivity)"), or_default(options.y_label, "precision"));
  ax.line(0, positive_rate, 1, positive_rate, kChance, st.thin(), true);
  // Steps as matplotlib's drawstyle="steps-post", which sklearn's PrecisionRecallDisplay uses.
  std::vector<double> xs, ys;
  for (size_t i = 0; i < recall.size(); ++i) {
    if (i > 0) {
      xs.push_back(recall[i]);
      ys.push_back(precision[i - 1]);
    }
    xs.push_back(recall[i]);
    ys.push_back(precision[i]);
  }
  ax.polyline(xs, ys, kBlue, st.line());
  std::vector<cv::Point> avoid;
  add_polyline_points(ax, xs, ys, &avoid);
  add_segment_points(ax, 0, positive_rate, 1, positive_rate, &avoid);
  legend(ax,
         {{fmt::format("PR curve (AP = {})", fixed(average_precision, 3)), kBlue},
          {fmt::format("chance (positive rate {})", fixed(positive_rate, 3)), kChance, true}},
         avoid);
  put_title(img, st, or_default(options.title, "Precision-recall curve"));
  save(path, img);
}

// ================================================================ confusion matrix

namespace {

// Matplotlib's "Blues" at a few stops, linearly interpolated.
cv::Scalar blues(double t) {
  static const std::array<cv::Vec3d, 5> stops = {cv::Vec3d(247, 251, 255), cv::Vec3d(198, 219, 239),
                                                 cv::Vec3d(107, 174, 214), cv::Vec3d(33, 113, 181),
                                                 cv::Vec3d(8, 48, 107)};
  t = std::clamp(t, 0.0, 1.0) * (stops.size() - 1);
  const size_t i = std::min(stops.size() - 2, static_cast<size_t>(t));
  const double u = t - static_cast<double>(i);
  const cv::Vec3d c = stops[i] * (1.0 - u) + stops[i + 1] * u;
  return {c[0], c[1], c[2]};
}

}  // namespace

void plot_confusion_matrix(const std::filesystem::path& path, const ConfusionMatrix& cm,
                           const std::vector<std::string>& class_names, const PlotOptions& options) {
  check_options(options);
  HISTOCNN_CHECK(cm.tn >= 0 && cm.fp >= 0 && cm.fn >= 0 && cm.tp >= 0,
                 "cm counts must be non-negative, got tn={} fp={} fn={} tp={}", cm.tn, cm.fp, cm.fn, cm.tp);
  HISTOCNN_CHECK(class_names.size() == 2, "class_names must name the 2 classes (0 then 1), got {} names",
                 class_names.size());

  const Style st = style_for(options);
  cv::Mat img = blank(options);
  const int64_t cells[2][2] = {{cm.tn, cm.fp}, {cm.fn, cm.tp}};
  const char* names[2][2] = {{"TN", "FP"}, {"FN", "TP"}};
  const int64_t row_total[2] = {cm.tn + cm.fp, cm.fn + cm.tp};

  int name_width = 0;
  for (const auto& n : class_names) name_width = std::max(name_width, text_size(n, st.label_font()).width);
  const int top = st.px(50), bottom = st.px(72);
  const int colorbar = st.px(70);
  const int left = name_width + st.px(48);
  const int side = std::max(st.px(60), std::min(options.height - top - bottom, options.width - left - colorbar - st.px(20)));
  const int x0 = left + std::max(0, (options.width - left - colorbar - side) / 2);
  const int cell = side / 2;

  for (int r = 0; r < 2; ++r) {
    for (int c = 0; c < 2; ++c) {
      const double share = row_total[r] > 0 ? static_cast<double>(cells[r][c]) / static_cast<double>(row_total[r]) : 0.0;
      const cv::Rect rect(x0 + c * cell, top + r * cell, cell, cell);
      cv::rectangle(img, rect, blues(share), cv::FILLED);
      const cv::Scalar ink = share > 0.55 ? kWhite : kText;
      const cv::Point center(rect.x + cell / 2, rect.y + cell / 2);
      put_text(img, fmt::format("{}", cells[r][c]), {center.x, center.y - st.px(4)}, 0.9 * st.f, ink,
               HAlign::center, VAlign::bottom, std::max(1, st.px(2.0)));
      put_text(img, row_total[r] > 0 ? fmt::format("{:.1f} % of true", 100.0 * share) : "no samples",
               {center.x, center.y + st.px(10)}, st.tick_font(), ink, HAlign::center, VAlign::top);
      put_text(img, names[r][c], {rect.x + st.px(8), rect.y + st.px(8)}, st.tick_font(), ink, HAlign::left,
               VAlign::top);
    }
  }
  cv::rectangle(img, {x0, top, 2 * cell, 2 * cell}, kAxis, 1);
  cv::line(img, {x0 + cell, top}, {x0 + cell, top + 2 * cell}, kWhite, 2);
  cv::line(img, {x0, top + cell}, {x0 + 2 * cell, top + cell}, kWhite, 2);

  for (int k = 0; k < 2; ++k) {
    put_text(img, class_names[k], {x0 + k * cell + cell / 2, top + 2 * cell + st.px(10)}, st.label_font(), kText,
             HAlign::center, VAlign::top);
    put_text(img, class_names[k], {x0 - st.px(10), top + k * cell + cell / 2}, st.label_font(), kText,
             HAlign::right, VAlign::middle);
  }
  put_text(img, or_default(options.x_label, "predicted class"), {x0 + cell, top + 2 * cell + st.px(38)},
           st.label_font(), kText, HAlign::center, VAlign::top);
  put_vertical_text(img, or_default(options.y_label, "true class"), {x0 - name_width - st.px(30), top + cell},
                    st.label_font(), kText);

  // Colour bar: the share of the true class.
  const cv::Rect bar(x0 + 2 * cell + st.px(20), top, st.px(14), 2 * cell);
  for (int y = 0; y < bar.height; ++y) {
    const double t = 1.0 - static_cast<double>(y) / std::max(1, bar.height - 1);
    cv::line(img, {bar.x, bar.y + y}, {bar.x + bar.width - 1, bar.y + y}, blues(t), 1);
  }
  cv::rectangle(img, bar, kAxis, 1);
  for (int k = 0; k <= 4; ++k) {
    const int y = bar.y + bar.height - static_cast<int>(std::lround(k / 4.0 * bar.height));
    cv::line(img, {bar.x + bar.width, y}, {bar.x + bar.width + st.px(4), y}, kAxis, 1);
    put_text(img, fmt::format("{}%", 25 * k), {bar.x + bar.width + st.px(7), y}, st.tick_font(), kText,
             HAlign::left, VAlign::middle);
  }
  const double accuracy = cm.total() > 0 ? static_cast<double>(cm.tn + cm.tp) / static_cast<double>(cm.total()) : 0.0;
  put_title(img, st,
            or_default(options.title, fmt::format("Confusion matrix (n = {}, accuracy {})", cm.total(), fixed(accuracy, 3))));
  save(path, img);
}

// ================================================================ reliability

void plot_reliability_diagram(const std::filesystem::path& path, const std::vector<ReliabilityBin>& bins,
                              double ece, const PlotOptions& options) {
  check_options(options);
  HISTOCNN_CHECK(!bins.empty(), "bins is empty; pass reliability_table(y_true, p_positive)");
  HISTOCNN_CHECK(std::isfinite(ece) && ece >= 0.0 && ece <= 1.0, "ece = {} must be a finite number in [0, 1]", ece);
  int64_t max_count = 0;
  for (size_t i = 0; i < bins.size(); ++i) {
    const ReliabilityBin& b = bins[i];
    HISTOCNN_CHECK(std::isfinite(b.lower) && std::isfinite(b.upper) && 0.0 <= b.lower && b.lower < b.upper &&
                       b.upper <= 1.0,
                   "bins[{}] covers ({}, {}], which is not an interval inside [0, 1]", i, b.lower, b.upper);
    HISTOCNN_CHECK(b.count >= 0, "bins[{}].count = {} is negative", i, b.count);
    if (b.count > 0) {
      HISTOCNN_CHECK(std::isfinite(b.mean_confidence) && b.mean_confidence >= 0.0 && b.mean_confidence <= 1.0,
                     "bins[{}].mean_confidence = {} must be a probability for a non-empty bin", i, b.mean_confidence);
      HISTOCNN_CHECK(std::isfinite(b.positive_rate) && b.positive_rate >= 0.0 && b.positive_rate <= 1.0,
                     "bins[{}].positive_rate = {} must be a probability for a non-empty bin", i, b.positive_rate);
    }
    max_count = std::max(max_count, b.count);
  }
  HISTOCNN_CHECK(max_count > 0, "every bin is empty; there is nothing to plot");

  const Style st = style_for(options);
  cv::Mat img = blank(options);
  const int top = st.px(44), left = st.px(74), right = st.px(20), bottom = st.px(58);
  const int gap = st.px(12);
  const int available = options.height - top - bottom - gap;
  const int main_h = available * 3 / 4, hist_h = available - main_h;
  const int width = std::min(options.width - left - right, static_cast<int>(main_h * 1.45));
  const int x = left + (options.width - left - right - width) / 2;

  Axes main{&img, {x, top, width, main_h}, -0.01, 1.01, -0.01, 1.01, st};
  const Ticks t = make_ticks(0.0, 1.0, 5);
  main.decorate(t, t, "", or_default(options.y_label, "observed positive rate"), false);
  std::vector<double> mx, my;
  for (const ReliabilityBin& b : bins) {
    if (b.count == 0) continue;
    main.bar(b.lower, b.upper, 0.0, b.positive_rate, kLightBlue, kBlue);
    mx.push_back(b.mean_confidence);
    my.push_back(b.positive_rate);
  }
  main.line(0, 0, 1, 1, kChance, st.thin(), true);
  main.polyline(mx, my, kOrange, st.thin());
  for (size_t i = 0; i < mx.size(); ++i) main.marker(mx[i], my[i], kOrange, st.px(4));
  std::vector<cv::Point> avoid;
  add_polyline_points(main, mx, my, &avoid);
  add_segment_points(main, 0, 0, 1, 1, &avoid);
  for (const ReliabilityBin& b : bins) {
    if (b.count == 0) continue;
    for (int k = 0; k <= 10; ++k) {
      const double y = b.positive_rate * k / 10.0;
      add_segment_points(main, b.lower, y, b.upper, y, &avoid);
    }
  }
  legend(main,
         {{"observed positive rate per bin", kLightBlue, false, false, true},
          {"observed at mean predicted P", kOrange, false, true},
          {"perfect calibration", kChance, true}},
         avoid);

  const auto [c0, c1] = nice_range(0.0, static_cast<double>(max_count), 0.0, 2);
  Axes hist{&img, {x, top + main_h + gap, width, hist_h}, -0.01, 1.01, c0, c1, st};
  Ticks count_ticks = make_ticks(c0, c1, 2, 1.0);
  hist.decorate(t, count_ticks, or_default(options.x_label, "predicted probability of class 1"), "count");
  for (const ReliabilityBin& b : bins) {
    if (b.count > 0) hist.bar(b.lower, b.upper, 0.0, static_cast<double>(b.count), kBarGray, kAxis);
  }
  put_title(img, st, or_default(options.title, fmt::format("Reliability diagram (ECE = {})", fixed(ece, 3))));
  save(path, img);
}

// ================================================================ training curves

namespace {

struct Series {
  const std::vector<double>* values;
  const char* name;
  std::string label;
  cv::Scalar color;
  bool dashed;
};

void draw_panel(cv::Mat& img, const Style& st, const cv::Rect& area, size_t epochs, const std::vector<Series>& series,
                const std::string& y_label, bool unit_range, const std::string& panel_title) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Series& s : series) {
    for (double v : *s.values) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  auto [y0, y1] = nice_range(lo, hi, 0.08);
  if (unit_range && lo >= 0.0 && hi <= 1.0) {
    y0 = std::max(0.0, y0);
    y1 = std::min(1.0, y1);
  }
  const double x0 = epochs == 1 ? 0.5 : 1.0 - 0.03 * (epochs - 1), x1 = epochs == 1 ? 1.5 : epochs + 0.03 * (epochs - 1);
  Axes ax{&img, area, x0, x1, y0, y1, st};
  const Ticks xt = make_ticks(std::ceil(x0), std::floor(x1), 6, 1.0);
  ax.decorate(xt, make_ticks(y0, y1, 5), "epoch", y_label);
  std::vector<double> xs(epochs);
  for (size_t e = 0; e < epochs; ++e) xs[e] = static_cast<double>(e + 1);
  std::vector<LegendEntry> entries;
  std::vector<cv::Point> avoid;
  for (const Series& s : series) {
    ax.polyline(xs, *s.values, s.color, st.line(), s.dashed);
    if (epochs <= 40) {
      for (size_t e = 0; e < epochs; ++e) ax.marker(xs[e], (*s.values)[e], s.color, st.px(3));
    }
    add_polyline_points(ax, xs, *s.values, &avoid);
    entries.push_back({s.label, s.color, s.dashed});
  }
  legend(ax, entries, avoid);
  put_text(img, panel_title, {area.x + area.width / 2, area.y - st.px(6)}, st.label_font(), kText, HAlign::center,
           VAlign::bottom);
}

}  // namespace

void plot_training_curves(const std::filesystem::path& path, const TrainingCurves& curves,
                          const PlotOptions& options) {
  check_options(options);
  const std::vector<std::pair<const std::vector<double>*, const char*>> all = {
      {&curves.train_loss, "train_loss"},         {&curves.val_loss, "val_loss"},
      {&curves.train_accuracy, "train_accuracy"}, {&curves.val_accuracy, "val_accuracy"},
      {&curves.train_auc, "train_auc"},           {&curves.val_auc, "val_auc"}};
  size_t epochs = 0;
  const char* first = nullptr;
  for (const auto& [values, name] : all) {
    if (values->empty()) continue;
    if (first == nullptr) {
      epochs = values->size();
      first = name;
    }
    HISTOCNN_CHECK(values->size() == epochs, "{} has {} values but {} has {}; pass one value per epoch", name,
                   values->size(), first, epochs);
    check_values(*values, name, false);
  }
  HISTOCNN_CHECK(first != nullptr, "every series of curves is empty; there is nothing to plot");
  for (const auto& [values, name] : all) {
    if (std::string(name).find("loss") != std::string::npos) continue;
    for (size_t i = 0; i < values->size(); ++i) {
      HISTOCNN_CHECK((*values)[i] >= 0.0 && (*values)[i] <= 1.0, "{}[{}] = {} lies outside [0, 1]", name, i,
                     (*values)[i]);
    }
  }

  const Style st = style_for(options);
  cv::Mat img = blank(options);
  std::vector<Series> loss, scores;
  if (!curves.train_loss.empty()) loss.push_back({&curves.train_loss, "train_loss", "train", kBlue, false});
  if (!curves.val_loss.empty()) loss.push_back({&curves.val_loss, "val_loss", "validation", kOrange, false});
  if (!curves.train_accuracy.empty())
    scores.push_back({&curves.train_accuracy, "train_accuracy", "train accuracy", kBlue, false});
  if (!curves.val_accuracy.empty())
    scores.push_back({&curves.val_accuracy, "val_accuracy", "val accuracy", kOrange, false});
  if (!curves.train_auc.empty()) scores.push_back({&curves.train_auc, "train_auc", "train AUC", kBlue, true});
  if (!curves.val_auc.empty()) scores.push_back({&curves.val_auc, "val_auc", "val AUC", kOrange, true});

  const int top = st.px(66), bottom = st.px(62), left = st.px(66), right = st.px(16), between = st.px(70);
  const int height = options.height - top - bottom;
  const bool two = !loss.empty() && !scores.empty();
  const int width = two ? (options.width - left - right - between) / 2 : options.width - left - right;
  cv::Rect first_area(left, top, width, height);
  cv::Rect second_area(left + width + between, top, width, height);
  if (!loss.empty()) draw_panel(img, st, first_area, epochs, loss, "loss", false, "loss");
  if (!scores.empty()) {
    const bool has_auc = !curves.train_auc.empty() || !curves.val_auc.empty();
    const bool has_acc = !curves.train_accuracy.empty() || !curves.val_accuracy.empty();
    const std::string label = has_auc && has_acc ? "accuracy / AUC" : has_auc ? "AUC" : "accuracy";
    draw_panel(img, st, two ? second_area : first_area, epochs, scores, label, true, label);
  }
  put_title(img, st, or_default(options.title, fmt::format("Training curves ({} epoch{})", epochs, epochs == 1 ? "" : "s")));
  save(path, img);
}

// ================================================================ accuracy vs size

void plot_accuracy_vs_size(const std::filesystem::path& path, const std::vector<std::string>& labels,
                           const std::vector<double>& sizes, const std::vector<double>& accuracies,
                           const PlotOptions& options) {
  check_options(options);
  check_values(sizes, "sizes", false);
  check_values(accuracies, "accuracies", false);
  check_same_length(sizes, "sizes", accuracies.size(), "accuracies");
  HISTOCNN_CHECK(labels.size() == sizes.size(), "labels has {} names but sizes has {}; pass one name per model",
                 labels.size(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    HISTOCNN_CHECK(sizes[i] >= 0.0, "sizes[{}] = {} is negative", i, sizes[i]);
  }

  const Style st = style_for(options);
  cv::Mat img = blank(options);
  const double max_size = *std::max_element(sizes.begin(), sizes.end());
  const auto [ya, yb] = std::minmax_element(accuracies.begin(), accuracies.end());
  auto [x0, x1] = nice_range(0.0, max_size, 0.0);
  x1 += (x1 - x0) * 0.08;  // room for the labels of the largest models
  auto [y0, y1] = nice_range(*ya, *yb, 0.15);
  if (*ya >= 0.0 && *yb <= 1.0) {
    y0 = std::max(0.0, y0);
    y1 = std::min(1.0, y1);
  }
  const int top = st.px(44), bottom = st.px(60), left = st.px(74), right = st.px(24);
  Axes ax{&img, {left, top, options.width - left - right, options.height - top - bottom}, x0, x1, y0, y1, st};
  ax.decorate(make_ticks(x0, x1, 6), make_ticks(y0, y1, 5), or_default(options.x_label, "parameters (millions)"),
              or_default(options.y_label, "accuracy"));

  // Labels go right of their point, else left, above or below, avoiding one another and the frame;
  // when all of those are taken, further above or below, joined to their point by a thin line.
  std::vector<cv::Rect> taken;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const cv::Point p = ax.pixel(sizes[i], accuracies[i]);
    const int r = st.px(5);
    taken.push_back({p.x - r, p.y - r, 2 * r, 2 * r});
  }
  for (size_t i = 0; i < sizes.size(); ++i) ax.marker(sizes[i], accuracies[i], kBlue, st.px(5));
  for (size_t i = 0; i < sizes.size(); ++i) {
    const std::string text = ascii(labels[i]);
    const cv::Size size = text_size(text, st.tick_font());
    const cv::Point p = ax.pixel(sizes[i], accuracies[i]);
    const int d = st.px(9), w = size.width, h = size.height;
    std::vector<cv::Rect> candidates = {
        cv::Rect(p.x + d, p.y - h / 2, w, h),     cv::Rect(p.x - d - w, p.y - h / 2, w, h),
        cv::Rect(p.x - w / 2, p.y - d - h, w, h), cv::Rect(p.x - w / 2, p.y + d, w, h),
        cv::Rect(p.x + d, p.y - d - h, w, h),     cv::Rect(p.x + d, p.y + d, w, h)};
    const size_t near = candidates.size();
    for (int k = 1; k <= 8; ++k) {
      const int step = k * (h + st.px(6));
      candidates.push_back({p.x + d, p.y - d - h - step, w, h});
      candidates.push_back({p.x + d, p.y + d + step, w, h});
      candidates.push_back({p.x - d - w, p.y - d - h - step, w, h});
      candidates.push_back({p.x - d - w, p.y + d + step, w, h});
    }
    const cv::Rect inside = ax.area;
    size_t chosen = 0;
    int64_t best_score = std::numeric_limits<int64_t>::max();
    for (size_t k = 0; k < candidates.size(); ++k) {
      const cv::Rect& c = candidates[k];
      const cv::Rect padded(c.x - st.px(2), c.y - st.px(2), c.width + st.px(4), c.height + st.px(4));
      int64_t score = 0;
      for (const cv::Rect& t : taken) score += (padded & t).area();
      score += static_cast<int64_t>(c.area() - (c & inside).area()) * 4;  // leaving the frame is worse
      score = score * 8 + static_cast<int64_t>(k / 4);                     // then: nearer is better
      if (score < best_score) {
        best_score = score;
        chosen = k;
      }
    }
    const cv::Rect& at = candidates[chosen];
    taken.push_back(at);
    if (chosen >= near) {
      const cv::Point end(std::clamp(p.x, at.x, at.x + at.width), at.y > p.y ? at.y - st.px(2) : at.y + at.height + st.px(2));
      cv::line(img, p, end, kChance, 1, cv::LINE_AA);
    }
    put_text(img, text, {at.x, at.y + at.height}, st.tick_font(), kText, HAlign::left, VAlign::bottom);
  }
  put_title(img, st, or_default(options.title, "Accuracy vs model size"));
  save(path, img);
}

// ================================================================ bar chart

namespace {

// `text` split at '\n' and wrapped at spaces into lines no wider than `width` pixels at `scale`; a
// word wider than that is cut into pieces that fit.
std::vector<std::string> wrap_text(const std::string& text, double scale, int width) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (true) {
    const size_t end = text.find('\n', start);
    const std::string paragraph = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    std::string line;
    size_t pos = 0;
    while (pos < paragraph.size()) {
      const size_t space = paragraph.find(' ', pos);
      std::string word = paragraph.substr(pos, space == std::string::npos ? std::string::npos : space - pos);
      pos = space == std::string::npos ? paragraph.size() : space + 1;
      if (word.empty()) continue;
      while (word.size() > 1 && text_size(word, scale).width > width) {
        size_t n = word.size() - 1;
        while (n > 1 && text_size(word.substr(0, n), scale).width > width) --n;
        if (!line.empty()) lines.push_back(line);
        line.clear();
        lines.push_back(word.substr(0, n));
        word = word.substr(n);
      }
      const std::string joined = line.empty() ? word : line + " " + word;
      if (line.empty() || text_size(joined, scale).width <= width) {
        line = joined;
      } else {
        lines.push_back(line);
        line = word;
      }
    }
    lines.push_back(line);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return lines;
}

// The widest space-separated word of `text`, in pixels at `scale`.
int widest_word(const std::string& text, double scale) {
  int widest = 0;
  std::string word;
  for (char c : text + " ") {
    if (c == ' ' || c == '\n') {
      if (!word.empty()) widest = std::max(widest, text_size(word, scale).width);
      word.clear();
    } else {
      word += c;
    }
  }
  return widest;
}

bool whole(double v) { return std::fabs(v - std::round(v)) < 1e-9; }

void check_bar_chart(const BarChart& c) {
  const size_t nc = c.categories.size(), ns = c.series.size();
  HISTOCNN_CHECK(nc > 0, "chart.categories is empty; there is nothing to plot");
  HISTOCNN_CHECK(ns > 0, "chart.series is empty; name each series (row of chart.values)");
  HISTOCNN_CHECK(c.values.size() == ns, "chart.values has {} rows but chart.series names {}; pass one row per series",
                 c.values.size(), ns);
  for (size_t s = 0; s < ns; ++s) {
    HISTOCNN_CHECK(c.values[s].size() == nc,
                   "chart.values[{}] has {} values but there are {} categories; pass one value per category", s,
                   c.values[s].size(), nc);
    for (size_t i = 0; i < nc; ++i) {
      const double v = c.values[s][i];
      HISTOCNN_CHECK(std::isfinite(v) && v >= 0.0, "chart.values[{}][{}] = {} must be finite and >= 0", s, i, v);
    }
  }
  const bool whiskers = !c.lower.empty() || !c.upper.empty();
  if (whiskers) {
    HISTOCNN_CHECK(c.lower.size() == ns && c.upper.size() == ns,
                   "chart.lower and chart.upper have {} and {} rows but there are {} series; give both the shape "
                   "of chart.values, or neither", c.lower.size(), c.upper.size(), ns);
    for (size_t s = 0; s < ns; ++s) {
      HISTOCNN_CHECK(c.lower[s].size() == nc && c.upper[s].size() == nc,
                     "chart.lower[{}] and chart.upper[{}] need {} values each (one per category), got {} and {}", s, s,
                     nc, c.lower[s].size(), c.upper[s].size());
      for (size_t i = 0; i < nc; ++i) {
        const double lo = c.lower[s][i], hi = c.upper[s][i];
        if (std::isnan(lo) && std::isnan(hi)) continue;
        HISTOCNN_CHECK(std::isfinite(lo) && std::isfinite(hi) && 0.0 <= lo && lo <= hi,
                       "chart.lower[{0}][{1}] = {2} and chart.upper[{0}][{1}] = {3} are not an interval (0 <= lower "
                       "<= upper, or both NaN for none)", s, i, lo, hi);
      }
    }
  }
  HISTOCNN_CHECK(c.decimals >= -1 && c.decimals <= 8, "chart.decimals = {} must be -1 (automatic) or in [0, 8]",
                 c.decimals);
  HISTOCNN_CHECK(c.highlight >= -1 && c.highlight < static_cast<int>(nc),
                 "chart.highlight = {} is not a category index (0 to {}) nor -1 (none)", c.highlight, nc - 1);
  HISTOCNN_CHECK(c.highlight < 0 || ns == 1, "chart.highlight needs a single series, but there are {}", ns);
}

}  // namespace

void plot_bar_chart(const std::filesystem::path& path, const BarChart& c, const PlotOptions& options) {
  check_options(options);
  check_bar_chart(c);
  const size_t nc = c.categories.size(), ns = c.series.size();
  const bool whiskers = !c.lower.empty();
  double top_value = 0.0;
  bool all_whole = true;
  for (size_t s = 0; s < ns; ++s) {
    for (size_t i = 0; i < nc; ++i) {
      top_value = std::max(top_value, c.values[s][i]);
      if (whiskers && std::isfinite(c.upper[s][i])) top_value = std::max(top_value, c.upper[s][i]);
      all_whole = all_whole && whole(c.values[s][i]);
    }
  }
  const int decimals = c.decimals >= 0 ? c.decimals : all_whole ? 0 : 3;

  const Style st = style_for(options);
  cv::Mat img = blank(options);
  const int top = st.px(44), left = st.px(74), right = st.px(20), tick = st.px(5);
  const int area_width = options.width - left - right;
  const double group = static_cast<double>(area_width) / static_cast<double>(nc);

  // Category labels: one font size for all, small enough that every word fits its group.
  const int label_room = std::max(8, static_cast<int>(group) - st.px(8));
  double label_scale = st.tick_font();
  int widest = 0;
  for (const auto& name : c.categories) widest = std::max(widest, widest_word(name, label_scale));
  if (widest > label_room) label_scale = std::max(0.3 * st.f, label_scale * label_room / widest);
  std::vector<std::vector<std::string>> labels;
  size_t max_lines = 1;
  for (const auto& name : c.categories) {
    labels.push_back(wrap_text(name, label_scale, label_room));
    max_lines = std::max(max_lines, labels.back().size());
  }
  const int line_h = text_size("Ag", label_scale).height + st.px(6);
  const std::string x_label = options.x_label;
  const int bottom = tick + st.px(8) + static_cast<int>(max_lines) * line_h + (x_label.empty() ? 0 : st.px(30)) +
                     st.px(10);
  const int area_height = options.height - top - bottom;
  HISTOCNN_CHECK(area_height >= st.px(60),
                 "options.height = {} leaves no room for the bars above {} lines of category labels; make the plot "
                 "taller or the labels shorter", options.height, max_lines);

  // Value labels: one font size, no wider than a bar's share of its group.
  auto value_text = [&](double v) { return fmt::format("{:.{}f}", v, decimals); };
  const double slot = group * 0.8 / static_cast<double>(ns);
  double value_scale = st.tick_font();
  int widest_value = 0;
  for (const auto& row : c.values) {
    for (double v : row) widest_value = std::max(widest_value, text_size(value_text(v), value_scale).width);
  }
  if (widest_value > slot - st.px(2)) value_scale = std::max(0.28 * st.f, value_scale * (slot - st.px(2)) / widest_value);
  const int value_h = text_size("0", value_scale).height + st.px(6);

  // The y range leaves room above the tallest bar for its value label and for the legend.
  const bool has_legend = ns > 1 || c.highlight >= 0;
  const size_t legend_rows = c.highlight >= 0 ? 2 : ns;
  const int legend_h = has_legend ? st.px(8) * 2 + st.px(20) * static_cast<int>(legend_rows) + st.px(12) : 0;
  const int usable = std::max(area_height / 3, area_height - value_h - legend_h);
  double y1 = top_value > 0.0 ? top_value * area_height / usable : 1.0;
  const double step = std::max(nice_step(y1, 5), all_whole && c.decimals <= 0 ? 1.0 : 0.0);
  y1 = std::ceil(y1 / step - 1e-9) * step;
  if (y1 * usable < top_value * area_height * (1.0 - 1e-9)) y1 += step;

  Axes ax{&img, {left, top, area_width, area_height}, 0.0, static_cast<double>(nc), 0.0, y1, st};
  const std::string y_label = or_default(options.y_label, ns == 1 ? c.series[0] : "");
  ax.decorate(Ticks{}, make_ticks(0.0, y1, 5, all_whole && c.decimals <= 0 ? 1.0 : 0.0), "", y_label, false);

  const std::array<cv::Scalar, 4> colours = {kBlue, kOrange, kGreen, kRed};
  std::vector<cv::Point> avoid;
  for (size_t i = 0; i < nc; ++i) {
    for (size_t s = 0; s < ns; ++s) {
      const double width = 0.8 / static_cast<double>(ns);
      const double xa = i + 0.1 + s * width + width * 0.06, xb = i + 0.1 + (s + 1) * width - width * 0.06;
      const double v = c.values[s][i];
      const cv::Scalar colour = static_cast<int>(i) == c.highlight ? kOrange : colours[s % colours.size()];
      ax.bar(xa, xb, 0.0, v, colour, colour);
      double label_at = v;
      if (whiskers && std::isfinite(c.lower[s][i])) {
        const double mid = (xa + xb) / 2, cap = (xb - xa) * 0.18;
        ax.line(mid, c.lower[s][i], mid, c.upper[s][i], kText, st.thin());
        ax.line(mid - cap, c.lower[s][i], mid + cap, c.lower[s][i], kText, st.thin());
        ax.line(mid - cap, c.upper[s][i], mid + cap, c.upper[s][i], kText, st.thin());
        label_at = std::max(v, c.upper[s][i]);
      }
      const cv::Point p = ax.pixel((xa + xb) / 2, label_at);
      put_text(img, value_text(v), {p.x, p.y - st.px(4)}, value_scale, kText, HAlign::center, VAlign::bottom);
      // What the legend must not cover: the bar and its label.
      const cv::Point a = ax.pixel(xa, label_at), b = ax.pixel(xb, 0.0);
      for (int y = a.y - value_h; y <= b.y; y += st.px(6)) {
        for (int k = 0; k <= 4; ++k) avoid.push_back({a.x + (b.x - a.x) * k / 4, y});
      }
    }
    const int cx = static_cast<int>(std::lround(left + (i + 0.5) * group));
    for (size_t l = 0; l < labels[i].size(); ++l) {
      put_text(img, labels[i][l], {cx, top + area_height + tick + st.px(6) + static_cast<int>(l) * line_h}, label_scale,
               kText, HAlign::center, VAlign::top);
    }
  }
  if (!x_label.empty()) {
    put_text(img, x_label,
             {left + area_width / 2, top + area_height + tick + st.px(12) + static_cast<int>(max_lines) * line_h},
             st.label_font(), kText, HAlign::center, VAlign::top);
  }
  if (has_legend) {
    std::vector<LegendEntry> entries;
    for (size_t s = 0; s < ns; ++s) entries.push_back({c.series[s], colours[s % colours.size()], false, false, true});
    if (c.highlight >= 0) entries.push_back({or_default(c.highlight_label, "highlighted"), kOrange, false, false, true});
    legend(ax, entries, avoid);
  }
  put_title(img, st, or_default(options.title, ns == 1 ? c.series[0] : "Bar chart"));
  save(path, img);
}

// ================================================================ image grid

void plot_image_grid(const std::filesystem::path& path, const std::vector<ImageRow>& rows,
                     const ImageGridOptions& options) {
  HISTOCNN_CHECK(!rows.empty(), "rows is empty; there is nothing to draw");
  HISTOCNN_CHECK(options.tile >= 32 && options.tile <= 1024, "options.tile = {} must be in [32, 1024] pixels",
                 options.tile);
  HISTOCNN_CHECK(options.columns >= 1 && options.columns <= 64, "options.columns = {} must be in [1, 64]",
                 options.columns);
  const Style st;  // pixel sizes as given: a grid is not scaled
  const int tile = options.tile, cols = options.columns;
  const int gap = st.px(12), margin = st.px(16), line_h = st.px(16), row_title_h = st.px(30);
  const int title_h = options.title.empty() ? margin : st.px(46);
  size_t caption_lines = 0;
  for (const auto& row : rows) {
    for (const auto& t : row.tiles) caption_lines = std::max(caption_lines, t.caption.size());
  }
  const int cell_h = tile + st.px(6) + static_cast<int>(caption_lines) * line_h + gap;
  int width = 2 * margin + cols * tile + (cols - 1) * gap;
  width = std::max(width, text_size(options.title, st.title_font(), 1).width + 2 * margin);
  int height = title_h;
  for (const auto& row : rows) {
    width = std::max(width, text_size(row.title, st.label_font()).width + 2 * margin);
    const int lines = std::max<int>(1, static_cast<int>((row.tiles.size() + cols - 1) / cols));
    height += row_title_h + lines * cell_h;
  }
  height += margin - gap;
  HISTOCNN_CHECK(width <= 8000 && height <= 8000,
                 "the grid would be {}x{} pixels (at most 8000x8000); draw fewer images or a smaller tile", width,
                 height);

  cv::Mat img(height, width, CV_8UC3, kWhite);
  if (!options.title.empty()) put_title(img, st, options.title);
  int y = title_h;
  for (const auto& row : rows) {
    put_text(img, row.title, {margin, y + row_title_h - st.px(10)}, st.label_font(), kText, HAlign::left,
             VAlign::bottom);
    y += row_title_h;
    if (row.tiles.empty()) {
      const cv::Rect box(margin, y, tile, tile);
      cv::rectangle(img, box, kGrid, 1);
      put_text(img, "none", {box.x + tile / 2, box.y + tile / 2}, st.label_font(), kChance, HAlign::center,
               VAlign::middle);
      y += cell_h;
      continue;
    }
    for (size_t k = 0; k < row.tiles.size(); ++k) {
      const ImageTile& t = row.tiles[k];
      const int column = static_cast<int>(k % cols), line = static_cast<int>(k / cols);
      const cv::Rect box(margin + column * (tile + gap), y + line * cell_h, tile, tile);
      cv::Mat image;
      try {
        image = io::read_image_rgb(t.image);
      } catch (const std::exception&) {
        image.release();
      }
      if (image.empty()) {
        cv::rectangle(img, box, kGrid, cv::FILLED);
        put_text(img, "not readable", {box.x + tile / 2, box.y + tile / 2}, 0.35, kText, HAlign::center,
                 VAlign::middle);
      } else {
        // Whole-number enlargement keeps a small patch's pixels square and sharp.
        const double fit = std::min(static_cast<double>(tile) / image.cols, static_cast<double>(tile) / image.rows);
        const double scale = fit >= 1.0 ? std::floor(fit) : fit;
        const cv::Size size(std::max(1, static_cast<int>(std::lround(image.cols * scale))),
                            std::max(1, static_cast<int>(std::lround(image.rows * scale))));
        cv::Mat resized;
        cv::resize(image, resized, size, 0, 0, fit >= 1.0 ? cv::INTER_NEAREST : cv::INTER_AREA);
        const cv::Rect at(box.x + (tile - size.width) / 2, box.y + (tile - size.height) / 2, size.width, size.height);
        resized.copyTo(img(at));
        cv::rectangle(img, {at.x - 1, at.y - 1, at.width + 2, at.height + 2}, kAxis, 1);
      }
      for (size_t l = 0; l < t.caption.size(); ++l) {
        double scale = st.tick_font();
        const int w = text_size(t.caption[l], scale).width;
        if (w > tile + gap - st.px(2)) scale = std::max(0.3, scale * (tile + gap - st.px(2)) / w);
        put_text(img, t.caption[l], {box.x + tile / 2, box.y + tile + st.px(6) + static_cast<int>(l) * line_h},
                 scale, kText, HAlign::center, VAlign::top);
      }
    }
    const int lines = static_cast<int>((row.tiles.size() + cols - 1) / cols);
    y += lines * cell_h;
  }
  save(path, img);
}

// ================================================================ all of an evaluation

std::vector<std::filesystem::path> write_evaluation_plots(const std::filesystem::path& folder,
                                                          const EvaluationReport& report, const std::string& prefix,
                                                          const PlotOptions& options) {
  std::vector<std::filesystem::path> written;
  auto titled = [&](const std::string& title) {
    PlotOptions o = options;
    if (o.title.empty()) o.title = title;
    return o;
  };
  // "test_" -> "test": the split named in the titles.
  const std::string split = prefix.substr(0, prefix.find_last_not_of("_-. ") + 1);
  const std::string where = split.empty() ? "" : " (" + split + ")";
  const std::string lead = split.empty() ? " (" : " (" + split + ", ";
  if (!report.roc.fpr.empty() && std::isfinite(report.metrics.roc_auc)) {
    written.push_back(folder / (prefix + "roc.png"));
    plot_roc_curve(written.back(), report.roc.fpr, report.roc.tpr, report.metrics.roc_auc, titled("ROC curve" + where));
  }
  if (!report.pr.recall.empty() && std::isfinite(report.pr_auc)) {
    written.push_back(folder / (prefix + "pr.png"));
    plot_pr_curve(written.back(), report.pr.recall, report.pr.precision, report.pr_auc, report.positive_rate,
                  titled("Precision-recall curve" + where));
  }
  written.push_back(folder / (prefix + "confusion_matrix.png"));
  const ConfusionMatrix& cm = report.metrics.cm;
  const double accuracy = cm.total() > 0 ? static_cast<double>(cm.tn + cm.tp) / static_cast<double>(cm.total()) : 0.0;
  plot_confusion_matrix(written.back(), cm, report.class_names,
                        titled(fmt::format("Confusion matrix{}threshold {:.3g}, accuracy {})", lead, report.threshold,
                                           fixed(accuracy, 3))));
  written.push_back(folder / (prefix + "reliability.png"));
  plot_reliability_diagram(written.back(), report.calibration.bins, report.calibration.ece,
                           titled(fmt::format("Reliability diagram{}ECE = {})", lead, fixed(report.calibration.ece, 3))));
  return written;
}

}  // namespace histocnn::metrics
