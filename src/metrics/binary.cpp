#include "histocnn/metrics/binary.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>

#include "histocnn/core/error.h"

namespace histocnn::metrics {
namespace {

constexpr const char* kLabelHint = "expected 0 (IDC-negative) or 1 (IDC-positive)";

void check_labels(const std::vector<int>& labels, const char* name) {
  for (size_t i = 0; i < labels.size(); ++i) {
    HISTOCNN_CHECK(labels[i] == 0 || labels[i] == 1, "{}[{}] = {} is not a class label; {}", name, i,
                   labels[i], kLabelHint);
  }
}

void check_sizes(size_t n_true, size_t n_other, const char* other) {
  HISTOCNN_CHECK(n_true > 0, "y_true is empty; metrics need at least one sample");
  HISTOCNN_CHECK(n_true == n_other, "y_true has {} samples but {} has {}; pass one value per sample",
                 n_true, other, n_other);
}

void check_finite(const std::vector<double>& values, const char* name) {
  for (size_t i = 0; i < values.size(); ++i) {
    HISTOCNN_CHECK(std::isfinite(values[i]), "{}[{}] = {} is not finite; scores must be finite numbers",
                   name, i, values[i]);
  }
}

void check_probabilities(const std::vector<double>& p, const char* name) {
  for (size_t i = 0; i < p.size(); ++i) {
    HISTOCNN_CHECK(std::isfinite(p[i]) && p[i] >= 0.0 && p[i] <= 1.0,
                   "{}[{}] = {} is not a probability in [0, 1]; apply a softmax or sigmoid to logits "
                   "first",
                   name, i, p[i]);
  }
}

void check_scored(const std::vector<int>& y_true, const std::vector<double>& scores,
                  const char* scores_name) {
  check_sizes(y_true.size(), scores.size(), scores_name);
  check_labels(y_true, "y_true");
  check_finite(scores, scores_name);
}

void check_counts(const ConfusionMatrix& cm) {
  HISTOCNN_CHECK(cm.tn >= 0 && cm.fp >= 0 && cm.fn >= 0 && cm.tp >= 0,
                 "confusion matrix counts must be non-negative, got tn={} fp={} fn={} tp={}", cm.tn,
                 cm.fp, cm.fn, cm.tp);
}

void check_class_names(const std::vector<std::string>& class_names) {
  HISTOCNN_CHECK(class_names.size() == 2,
                 "class_names must name the 2 classes (0 then 1), got {} names", class_names.size());
}

// sklearn's _prf_divide with zero_division=0.
double divide_or_zero(int64_t numerator, int64_t denominator) {
  return denominator == 0 ? 0.0 : static_cast<double>(numerator) / static_cast<double>(denominator);
}

// sklearn (1.2) F-beta with beta = 1, in its operation order so that printed digits agree:
// (1 + beta2) * precision * recall / (beta2 * precision + recall), 0 when the denominator is 0.
double f1_from(double p, double r) {
  double denom = 1.0 * p + r;
  if (denom == 0.0) denom = 1.0;
  return (1.0 + 1.0) * p * r / denom;
}

// Indices of `scores` ordered by ascending score; ties are grouped by the callers.
std::vector<size_t> ascending_order(const std::vector<double>& scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  return order;
}

int64_t count_positives(const std::vector<int>& y_true) {
  return std::count(y_true.begin(), y_true.end(), 1);
}

// Python's len(): pads by code points, not bytes.
size_t display_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string pad_left(const std::string& s, size_t width) {
  size_t len = display_length(s);
  return len >= width ? s : std::string(width - len, ' ') + s;
}

}  // namespace

int64_t ConfusionMatrix::total() const { return tn + fp + fn + tp; }

ConfusionMatrix confusion_matrix(const std::vector<int>& y_true, const std::vector<int>& y_pred) {
  check_sizes(y_true.size(), y_pred.size(), "y_pred");
  check_labels(y_true, "y_true");
  check_labels(y_pred, "y_pred");
  ConfusionMatrix cm;
  for (size_t i = 0; i < y_true.size(); ++i) {
    if (y_true[i] == 1) {
      (y_pred[i] == 1 ? cm.tp : cm.fn) += 1;
    } else {
      (y_pred[i] == 1 ? cm.fp : cm.tn) += 1;
    }
  }
  return cm;
}

std::vector<int> threshold_scores(const std::vector<double>& scores, double threshold) {
  HISTOCNN_CHECK(std::isfinite(threshold), "threshold = {} is not finite", threshold);
  check_finite(scores, "scores");
  std::vector<int> labels(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) labels[i] = scores[i] >= threshold ? 1 : 0;
  return labels;
}

double accuracy(const ConfusionMatrix& cm) {
  check_counts(cm);
  HISTOCNN_CHECK(cm.total() > 0, "accuracy of an empty confusion matrix is undefined");
  return static_cast<double>(cm.tp + cm.tn) / static_cast<double>(cm.total());
}

double precision(const ConfusionMatrix& cm) {
  check_counts(cm);
  return divide_or_zero(cm.tp, cm.tp + cm.fp);
}

double recall(const ConfusionMatrix& cm) {
  check_counts(cm);
  return divide_or_zero(cm.tp, cm.tp + cm.fn);
}

double specificity(const ConfusionMatrix& cm) {
  check_counts(cm);
  return divide_or_zero(cm.tn, cm.tn + cm.fp);
}

double f1_score(const ConfusionMatrix& cm) { return f1_from(precision(cm), recall(cm)); }

double roc_auc(const std::vector<int>& y_true, const std::vector<double>& scores) {
  check_scored(y_true, scores, "scores");
  const int64_t n = static_cast<int64_t>(y_true.size());
  const int64_t positives = count_positives(y_true);
  const int64_t negatives = n - positives;
  HISTOCNN_CHECK(positives > 0 && negatives > 0,
                 "ROC AUC is undefined when y_true holds only one class ({} positives, {} negatives "
                 "of {}); evaluate on a split that contains both classes",
                 positives, negatives, n);
  // Twice the Mann-Whitney U in integers, so the only rounding is the final division.
  // 2 * positives * negatives <= n^2 / 2 must fit in int64.
  HISTOCNN_CHECK(n <= (int64_t{1} << 32), "roc_auc supports at most 2^32 samples, got {}", n);
  const std::vector<size_t> order = ascending_order(scores);
  int64_t twice_u = 0;
  int64_t negatives_below = 0;
  for (size_t i = 0; i < order.size();) {
    const double score = scores[order[i]];
    int64_t group_pos = 0, group_neg = 0;
    for (; i < order.size() && scores[order[i]] == score; ++i) {
      (y_true[order[i]] == 1 ? group_pos : group_neg) += 1;
    }
    twice_u += 2 * group_pos * negatives_below + group_pos * group_neg;
    negatives_below += group_neg;
  }
  return static_cast<double>(twice_u) /
         (2.0 * static_cast<double>(positives) * static_cast<double>(negatives));
}

RocCurve roc_curve(const std::vector<int>& y_true, const std::vector<double>& scores) {
  check_scored(y_true, scores, "scores");
  const int64_t positives = count_positives(y_true);
  const int64_t negatives = static_cast<int64_t>(y_true.size()) - positives;
  HISTOCNN_CHECK(positives > 0 && negatives > 0,
                 "the ROC curve is undefined when y_true holds only one class ({} positives, {} "
                 "negatives); evaluate on a split that contains both classes",
                 positives, negatives);
  const std::vector<size_t> order = ascending_order(scores);
  RocCurve curve;
  curve.fpr.push_back(0.0);
  curve.tpr.push_back(0.0);
  curve.thresholds.push_back(std::numeric_limits<double>::infinity());
  int64_t tps = 0, fps = 0;
  for (size_t k = order.size(); k > 0;) {  // descending scores, one point per distinct value
    const double score = scores[order[k - 1]];
    for (; k > 0 && scores[order[k - 1]] == score; --k) {
      (y_true[order[k - 1]] == 1 ? tps : fps) += 1;
    }
    curve.fpr.push_back(static_cast<double>(fps) / static_cast<double>(negatives));
    curve.tpr.push_back(static_cast<double>(tps) / static_cast<double>(positives));
    curve.thresholds.push_back(score);
  }
  return curve;
}

double log_loss(const std::vector<int>& y_true, const std::vector<double>& p_positive, double eps) {
  check_sizes(y_true.size(), p_positive.size(), "p_positive");
  check_labels(y_true, "y_true");
  check_probabilities(p_positive, "p_positive");
  HISTOCNN_CHECK(std::isfinite(eps) && eps >= 0.0 && eps < 0.5,
                 "eps = {} must lie in [0, 0.5); it clips probabilities to [eps, 1 - eps]", eps);
  // Same steps as sklearn: clip, expand to the two columns [1 - p, p], renormalise the rows.
  // Neumaier summation keeps the mean accurate for large n.
  double sum = 0.0, compensation = 0.0;
  for (size_t i = 0; i < y_true.size(); ++i) {
    const double p1 = std::clamp(p_positive[i], eps, 1.0 - eps);
    const double p0 = 1.0 - p1;
    const double row_sum = p0 + p1;
    const double term = -std::log((y_true[i] == 1 ? p1 : p0) / row_sum);
    if (std::isinf(term)) return term;  // eps = 0 and a certain wrong answer; keeps Neumaier NaN-free
    const double t = sum + term;
    compensation += std::fabs(sum) >= std::fabs(term) ? (sum - t) + term : (term - t) + sum;
    sum = t;
  }
  return (sum + compensation) / static_cast<double>(y_true.size());
}

BinaryMetrics evaluate_binary(const std::vector<int>& y_true, const std::vector<double>& p_positive,
                              double threshold) {
  check_sizes(y_true.size(), p_positive.size(), "p_positive");
  check_labels(y_true, "y_true");
  check_probabilities(p_positive, "p_positive");
  BinaryMetrics m;
  m.n = static_cast<int64_t>(y_true.size());
  m.threshold = threshold;
  m.cm = confusion_matrix(y_true, threshold_scores(p_positive, threshold));
  m.accuracy = accuracy(m.cm);
  m.precision = precision(m.cm);
  m.recall = recall(m.cm);
  m.specificity = specificity(m.cm);
  m.f1 = f1_score(m.cm);
  const int64_t positives = m.cm.tp + m.cm.fn;
  m.roc_auc = positives > 0 && positives < m.n ? roc_auc(y_true, p_positive)
                                               : std::numeric_limits<double>::quiet_NaN();
  m.log_loss = log_loss(y_true, p_positive);
  return m;
}

std::string classification_report(const std::vector<int>& y_true, const std::vector<int>& y_pred,
                                  const std::vector<std::string>& class_names, int digits) {
  check_class_names(class_names);
  HISTOCNN_CHECK(digits >= 0, "digits = {} must be non-negative", digits);
  const ConfusionMatrix cm = confusion_matrix(y_true, y_pred);

  // Per class c: tp = hits on c, pred = predicted c, support = true c (sklearn's MCM sums).
  const int64_t tp[2] = {cm.tn, cm.tp};
  const int64_t pred[2] = {cm.tn + cm.fn, cm.tp + cm.fp};
  const int64_t support[2] = {cm.tn + cm.fp, cm.tp + cm.fn};
  double p[2], r[2], f[2];
  for (int c = 0; c < 2; ++c) {
    p[c] = divide_or_zero(tp[c], pred[c]);
    r[c] = divide_or_zero(tp[c], support[c]);
    f[c] = f1_from(p[c], r[c]);
  }
  const int64_t n = cm.total();

  const std::string weighted_heading = "weighted avg";
  size_t width = std::max(display_length(class_names[0]), display_length(class_names[1]));
  width = std::max({width, weighted_heading.size(), static_cast<size_t>(digits)});

  auto row = [&](const std::string& heading, double a, double b, double c, int64_t s) {
    return fmt::format("{}  {:>9.{}f} {:>9.{}f} {:>9.{}f} {:>9}\n", pad_left(heading, width), a,
                       digits, b, digits, c, digits, s);
  };

  std::string report = fmt::format("{}  {:>9} {:>9} {:>9} {:>9}\n\n", std::string(width, ' '),
                                   "precision", "recall", "f1-score", "support");
  for (int c = 0; c < 2; ++c) report += row(class_names[c], p[c], r[c], f[c], support[c]);
  report += "\n";

  // Micro average: tp summed over classes is the number of hits, pred and true sums are n.
  const int64_t hits = cm.tn + cm.tp;
  const double micro_p = divide_or_zero(hits, n), micro_r = divide_or_zero(hits, n);
  const double micro_f = f1_from(micro_p, micro_r);
  // sklearn labels the micro row "accuracy" only when the given labels are exactly the classes
  // present in y_true and y_pred.
  const bool both_present = pred[0] + support[0] > 0 && pred[1] + support[1] > 0;
  if (both_present) {
    report += fmt::format("{}  {:>9} {:>9} {:>9.{}f} {:>9}\n", pad_left("accuracy", width), "", "",
                          micro_f, digits, n);
  } else {
    report += row("micro avg", micro_p, micro_r, micro_f, n);
  }

  // np.average: (a + b) / 2 and (a * w0 + b * w1) / (w0 + w1).
  auto macro = [](const double* v) { return (v[0] + v[1]) / 2.0; };
  const double w0 = static_cast<double>(support[0]), w1 = static_cast<double>(support[1]);
  auto weighted = [&](const double* v) { return (v[0] * w0 + v[1] * w1) / (w0 + w1); };
  report += row("macro avg", macro(p), macro(r), macro(f), n);
  report += row(weighted_heading, weighted(p), weighted(r), weighted(f), n);
  return report;
}

std::string confusion_matrix_table(const ConfusionMatrix& cm,
                                   const std::vector<std::string>& class_names) {
  check_class_names(class_names);
  check_counts(cm);
  const std::string corner = "true \\ predicted";
  const int64_t cells[2][2] = {{cm.tn, cm.fp}, {cm.fn, cm.tp}};
  size_t row_width = std::max(
      {display_length(corner), display_length(class_names[0]), display_length(class_names[1])});
  size_t col_width[2];
  for (int c = 0; c < 2; ++c) {
    col_width[c] = std::max({display_length(class_names[c]), fmt::formatted_size("{}", cells[0][c]),
                             fmt::formatted_size("{}", cells[1][c])});
  }
  std::string table = pad_left(corner, row_width);
  for (int c = 0; c < 2; ++c) table += "  " + pad_left(class_names[c], col_width[c]);
  table += "\n";
  for (int t = 0; t < 2; ++t) {
    table += pad_left(class_names[t], row_width);
    for (int c = 0; c < 2; ++c) table += "  " + pad_left(fmt::format("{}", cells[t][c]), col_width[c]);
    table += "\n";
  }
  return table;
}

std::string to_json(const BinaryMetrics& m) {
  // ordered_json keeps the declaration order; nlohmann writes NaN and infinities as null.
  nlohmann::ordered_json j;
  j["n"] = m.n;
  j["threshold"] = m.threshold;
  j["cm"] = {{"tn", m.cm.tn}, {"fp", m.cm.fp}, {"fn", m.cm.fn}, {"tp", m.cm.tp}};
  j["accuracy"] = m.accuracy;
  j["precision"] = m.precision;
  j["recall"] = m.recall;
  j["specificity"] = m.specificity;
  j["f1"] = m.f1;
  j["roc_auc"] = m.roc_auc;
  j["log_loss"] = m.log_loss;
  return j.dump();
}

}  // namespace histocnn::metrics
