#include "histocnn/train/choices.h"

#include "histocnn/core/error.h"

#include <fmt/format.h>

#include <algorithm>

namespace histocnn::train {

template <>
const std::vector<std::string>& choice_names<OptimizerKind>() {
  static const std::vector<std::string> names = {"rmsprop", "adam", "adamw", "sgd"};
  return names;
}
template <>
const std::vector<std::string>& choice_names<Schedule>() {
  static const std::vector<std::string> names = {"constant", "cosine"};
  return names;
}
template <>
const std::vector<std::string>& choice_names<ClassWeight>() {
  static const std::vector<std::string> names = {"none", "balanced"};
  return names;
}
template <>
const std::vector<std::string>& choice_names<Sampler>() {
  static const std::vector<std::string> names = {"shuffle", "balanced"};
  return names;
}
template <>
const std::vector<std::string>& choice_names<MixedPrecision>() {
  static const std::vector<std::string> names = {"auto", "off", "bf16"};
  return names;
}

template <typename E>
E parse_choice(const std::string& option, const std::string& text) {
  const auto& names = choice_names<E>();
  const auto it = std::find(names.begin(), names.end(), text);
  HISTOCNN_CHECK(it != names.end(), "option '{}' got \"{}\"; choose one of: {}", option, text, fmt::join(names, ", "));
  return static_cast<E>(it - names.begin());
}

template OptimizerKind parse_choice<OptimizerKind>(const std::string&, const std::string&);
template Schedule parse_choice<Schedule>(const std::string&, const std::string&);
template ClassWeight parse_choice<ClassWeight>(const std::string&, const std::string&);
template Sampler parse_choice<Sampler>(const std::string&, const std::string&);
template MixedPrecision parse_choice<MixedPrecision>(const std::string&, const std::string&);

}  // namespace histocnn::train
