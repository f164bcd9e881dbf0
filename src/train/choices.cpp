#include "histocnn/train/choices.h"

namespace histocnn::core {

using namespace histocnn::train;

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

}  // namespace histocnn::core
