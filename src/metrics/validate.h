#pragma once
// Input checks shared by the metrics sources (not installed). Messages follow binary.cpp's: they
// name the argument, the index and the value, and say what is expected.
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "histocnn/core/error.h"

namespace histocnn::metrics::detail {

inline void check_labels(const std::vector<int>& labels, const char* name) {
  for (size_t i = 0; i < labels.size(); ++i) {
    HISTOCNN_CHECK(labels[i] == 0 || labels[i] == 1,
                   "{}[{}] = {} is not a class label; expected 0 (IDC-negative) or 1 (IDC-positive)",
                   name, i, labels[i]);
  }
}

inline void check_sizes(size_t n_true, size_t n_other, const char* other) {
  HISTOCNN_CHECK(n_true > 0, "y_true is empty; metrics need at least one sample");
  HISTOCNN_CHECK(n_true == n_other, "y_true has {} samples but {} has {}; pass one value per sample",
                 n_true, other, n_other);
}

inline void check_finite(const std::vector<double>& values, const char* name) {
  for (size_t i = 0; i < values.size(); ++i) {
    HISTOCNN_CHECK(std::isfinite(values[i]),
                   "{}[{}] = {} is not finite; scores must be finite numbers", name, i, values[i]);
  }
}

inline void check_probabilities(const std::vector<double>& p, const char* name) {
  for (size_t i = 0; i < p.size(); ++i) {
    HISTOCNN_CHECK(std::isfinite(p[i]) && p[i] >= 0.0 && p[i] <= 1.0,
                   "{}[{}] = {} is not a probability in [0, 1]; apply a softmax or sigmoid to "
                   "logits first",
                   name, i, p[i]);
  }
}

inline void check_scored(const std::vector<int>& y_true, const std::vector<double>& scores,
                         const char* scores_name) {
  check_sizes(y_true.size(), scores.size(), scores_name);
  check_labels(y_true, "y_true");
  check_finite(scores, scores_name);
}

inline void check_patients(const std::vector<std::string>& patients, size_t n) {
  HISTOCNN_CHECK(patients.size() == n,
                 "patients has {} ids but y_true has {} samples; pass one patient id per sample",
                 patients.size(), n);
}

}  // namespace histocnn::metrics::detail
