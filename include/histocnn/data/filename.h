#pragma once
// Names of Kaggle IDC patches: `<patient>_idx5_x<X>_y<Y>_class<C>.png`.
//
//   auto name = histocnn::data::parse_patch_filename("8863_idx5_x1001_y1251_class1.png");
//   if (name) fmt::print("{} {} {} {}", name->patient, name->x, name->y, name->label);  // 8863 1001 1251 1
//   std::string file = histocnn::data::format_patch_filename({"8863", 1001, 1251, 1});
//
// The patient id is one or more of [A-Za-z0-9-] (digits in the real data), X and Y are
// non-negative decimal integers (the patch's top-left corner in the slide), C is 0 (IDC-negative)
// or 1 (IDC-positive), and the extension is .png in any letter case. Anything else, including a
// folder part, does not parse.
#include <optional>
#include <string>

namespace histocnn::data {

struct PatchName {
  std::string patient;
  int x = 0;
  int y = 0;
  int label = 0;
};

/// The parts of a patch file name (the name only, no folders), or nullopt when it does not match.
std::optional<PatchName> parse_patch_filename(const std::string& filename);

/// As above; when the name does not match and `why` is not null, *why says which part is wrong
/// (used by the directory scan to report rejected files).
std::optional<PatchName> parse_patch_filename(const std::string& filename, std::string* why);

/// `<patient>_idx5_x<X>_y<Y>_class<C>.png`. Throws std::invalid_argument for a patient id that
/// would not parse back, negative coordinates or a label other than 0/1.
std::string format_patch_filename(const PatchName& name);

}  // namespace histocnn::data
