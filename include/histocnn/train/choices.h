#pragma once
// The trainer's string choices as enums. Text comes in at the edge (the options table, the
// bindings, a compare config) and is parsed there, once; the names are what options.json, the
// command line and Python use.
//
//   auto o = histocnn::train::parse_choice<histocnn::train::OptimizerKind>("optimizer", "adam");
//   std::string name = histocnn::train::choice_name(o);                       // "adam"
#include <string>
#include <vector>

namespace histocnn::train {

enum class OptimizerKind { rmsprop, adam, adamw, sgd };
enum class Schedule { constant, cosine };         ///< per epoch, after any linear warm-up
enum class ClassWeight { none, balanced };        ///< balanced: loss weights inverse to class counts
enum class Sampler { shuffle, balanced };         ///< balanced: classes drawn equally, with replacement
enum class MixedPrecision { automatic, off, bf16 };  ///< automatic ("auto"): bfloat16 autocast on CUDA only

/// The names of an enum's values, in the order of the values.
template <typename E>
const std::vector<std::string>& choice_names();

/// The value named `text`; throws std::invalid_argument naming `option` and the allowed names.
template <typename E>
E parse_choice(const std::string& option, const std::string& text);

template <typename E>
std::string choice_name(E value) {
  return choice_names<E>().at(static_cast<size_t>(value));
}

}  // namespace histocnn::train
