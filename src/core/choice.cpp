#include "histocnn/core/choice.h"

#include "histocnn/core/error.h"

#include <fmt/format.h>

#include <algorithm>

namespace histocnn::core {

size_t choice_index(const std::string& option, const std::string& text, const std::vector<std::string>& names) {
  const auto it = std::find(names.begin(), names.end(), text);
  HISTOCNN_CHECK(it != names.end(), "option '{}' got \"{}\"; choose one of: {}", option, text, fmt::join(names, ", "));
  return static_cast<size_t>(it - names.begin());
}

}  // namespace histocnn::core
