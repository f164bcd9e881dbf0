#pragma once
// A choice among named values, as an enum inside the library and as text at its edges (the
// command line, Python, JSON files). Each enum names its values once, by specialising
// choice_names<E>() in the module that owns it; text is parsed where it comes in.
//
//   enum class Colour { red, green };
//   namespace histocnn::core {
//   template <> const std::vector<std::string>& choice_names<Colour>();   // {"red", "green"}
//   }
//   auto c = histocnn::core::parse_choice<Colour>("colour", "green");   // Colour::green
//   std::string name = histocnn::core::choice_name(c);                   // "green"
//   histocnn::core::parse_choice<Colour>("colour", "blue");
//   // std::invalid_argument: option 'colour' got "blue"; choose one of: red, green
#include <cstddef>
#include <string>
#include <vector>

namespace histocnn::core {

/// The names of an enum's values, in the order of the values (specialised by the enum's module).
template <typename E>
const std::vector<std::string>& choice_names();

/// The position of `text` among `names`; throws std::invalid_argument naming `option` and the
/// allowed names.
size_t choice_index(const std::string& option, const std::string& text, const std::vector<std::string>& names);

/// The value named `text`; throws std::invalid_argument naming `option` and the allowed names.
template <typename E>
E parse_choice(const std::string& option, const std::string& text) {
  return static_cast<E>(choice_index(option, text, choice_names<E>()));
}

template <typename E>
std::string choice_name(E value) {
  return choice_names<E>().at(static_cast<size_t>(value));
}

}  // namespace histocnn::core
