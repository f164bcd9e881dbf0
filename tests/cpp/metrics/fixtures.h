#pragma once
// Fixed inputs shared by the metrics tests; the expected values in each test were computed from
// these with scikit-learn (see the comment at the top of each test file).
#include <vector>

namespace histocnn::test::metrics_fixtures {

inline const std::vector<int> kTiesY = {0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0};
inline const std::vector<double> kTiesP = {0.2, 0.2, 0.4, 0.4, 0.4, 0.5, 0.5, 0.5, 0.6, 0.6, 0.8, 0.8};

inline const std::vector<int> kRandomY = {1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
                                   1, 0, 0, 0, 1, 0, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1,
                                   0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1, 0, 1};
inline const std::vector<double> kRandomP = {
    0.65, 0.47, 0.31, 0.43, 0.78, 0.44, 0.56, 0.0,  0.58, 0.11, 0.19, 0.92, 0.66, 0.59, 0.45,
    0.82, 0.06, 0.68, 0.36, 0.61, 0.55, 0.42, 0.04, 0.27, 0.53, 0.11, 0.87, 0.27, 0.69, 0.71,
    0.72, 0.75, 0.77, 0.41, 0.61, 0.47, 0.58, 0.37, 0.68, 0.45, 0.47, 0.21, 0.91, 0.46, 0.39,
    0.89, 0.66, 0.63, 0.4,  0.1,  0.13, 0.95, 0.69, 0.13, 0.92, 0.75, 0.7,  0.56, 0.29, 0.47};

}  // namespace histocnn::test::metrics_fixtures
