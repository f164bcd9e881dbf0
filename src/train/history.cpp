#include "histocnn/train/history.h"

#include "histocnn/core/error.h"

#include <fmt/format.h>

#include <cmath>
#include <sstream>

namespace histocnn::train {

namespace {
const char* kLearnedColumns = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,val_auc,learning_rate";

// Shortest text that reads back as the same double, so a resumed run sees exactly what it wrote.
std::string num(double v) { return std::isfinite(v) ? fmt::format("{}", v) : std::string(); }

double parse_num(const std::string& s) {
  if (s.empty()) return std::numeric_limits<double>::quiet_NaN();
  size_t used = 0;
  double v = std::stod(s, &used);
  HISTOCNN_CHECK(used == s.size(), "history value '{}' is not a number", s);
  return v;
}
}  // namespace

std::string History::to_csv(bool with_timings) const {
  std::string s = kLearnedColumns;
  s += with_timings ? ",seconds,images_per_second\n" : "\n";
  for (const auto& e : epochs) {
    s += fmt::format("{},{},{},{},{},{},{}", e.epoch, num(e.train_loss), num(e.train_accuracy), num(e.val_loss),
                     num(e.val_accuracy), num(e.val_auc), num(e.learning_rate));
    s += with_timings ? fmt::format(",{},{}\n", num(e.seconds), num(e.images_per_second)) : "\n";
  }
  return s;
}

History History::from_csv(const std::string& text) {
  History h;
  std::istringstream in(text);
  std::string line;
  HISTOCNN_CHECK(std::getline(in, line) && line.rfind(kLearnedColumns, 0) == 0,
                 "history CSV does not start with the expected header '{}'", kLearnedColumns);
  const bool with_timings = line.find("seconds") != std::string::npos;
  int line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    std::vector<std::string> f;
    std::stringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) f.push_back(cell);
    if (!line.empty() && line.back() == ',') f.emplace_back();
    HISTOCNN_CHECK(f.size() == (with_timings ? 9u : 7u), "history CSV line {} has {} fields", line_no, f.size());
    try {
      EpochRecord e;
      e.epoch = std::stoi(f[0]);
      e.train_loss = parse_num(f[1]);
      e.train_accuracy = parse_num(f[2]);
      e.val_loss = parse_num(f[3]);
      e.val_accuracy = parse_num(f[4]);
      e.val_auc = parse_num(f[5]);
      e.learning_rate = parse_num(f[6]);
      if (with_timings) {
        e.seconds = parse_num(f[7]);
        e.images_per_second = parse_num(f[8]);
      }
      h.epochs.push_back(e);
    } catch (const std::logic_error& e) {
      HISTOCNN_FAIL("history CSV line {} is malformed: {}", line_no, e.what());
    }
  }
  return h;
}

}  // namespace histocnn::train
