#pragma once
// The trainer's string choices as enums. Text comes in at the edge (the options table, the
// bindings, a compare config) and is parsed there, once; the names are what options.json, the
// command line and Python use. The parsing is core/choice.h's.
//
//   auto o = histocnn::train::parse_choice<histocnn::train::OptimizerKind>("optimizer", "adam");
//   std::string name = histocnn::train::choice_name(o);                       // "adam"
#include "histocnn/core/choice.h"

#include <string>
#include <vector>

namespace histocnn::train {

enum class OptimizerKind { rmsprop, adam, adamw, sgd };
enum class Schedule { constant, cosine };         ///< per epoch, after any linear warm-up
enum class ClassWeight { none, balanced };        ///< balanced: loss weights inverse to class counts
enum class Sampler { shuffle, balanced };         ///< balanced: classes drawn equally, with replacement
enum class MixedPrecision { automatic, off, bf16 };  ///< automatic ("auto"): bfloat16 autocast on CUDA only

using core::choice_name;
using core::choice_names;
using core::parse_choice;

}  // namespace histocnn::train

namespace histocnn::core {
template <>
const std::vector<std::string>& choice_names<train::OptimizerKind>();
template <>
const std::vector<std::string>& choice_names<train::Schedule>();
template <>
const std::vector<std::string>& choice_names<train::ClassWeight>();
template <>
const std::vector<std::string>& choice_names<train::Sampler>();
template <>
const std::vector<std::string>& choice_names<train::MixedPrecision>();
}  // namespace histocnn::core
