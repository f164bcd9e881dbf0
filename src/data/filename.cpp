#include "histocnn/data/filename.h"

#include <cctype>
#include <limits>

#include "histocnn/core/error.h"

namespace histocnn::data {
namespace {

bool is_patient_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-';
}

bool valid_patient(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_patient_char(c)) return false;
  return true;
}

bool iequals(const std::string& a, const char* b) {
  size_t n = std::char_traits<char>::length(b);
  if (a.size() != n) return false;
  for (size_t i = 0; i < n; ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != b[i]) return false;
  return true;
}

// Reads a non-negative decimal int starting at `pos`; advances `pos`. False if no digit or overflow.
bool read_int(const std::string& s, size_t& pos, int& out) {
  size_t start = pos;
  long long value = 0;
  while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
    value = value * 10 + (s[pos] - '0');
    if (value > std::numeric_limits<int>::max()) return false;
    ++pos;
  }
  if (pos == start) return false;
  out = static_cast<int>(value);
  return true;
}

bool expect(const std::string& s, size_t& pos, const char* literal) {
  size_t n = std::char_traits<char>::length(literal);
  if (s.compare(pos, n, literal) != 0) return false;
  pos += n;
  return true;
}

std::optional<PatchName> fail(std::string* why, const char* reason) {
  if (why) *why = reason;
  return std::nullopt;
}

}  // namespace

std::optional<PatchName> parse_patch_filename(const std::string& filename) {
  return parse_patch_filename(filename, nullptr);
}

std::optional<PatchName> parse_patch_filename(const std::string& filename, std::string* why) {
  if (filename.find('/') != std::string::npos || filename.find('\\') != std::string::npos)
    return fail(why, "a file name must not contain a folder part");
  if (filename.size() < 4 || !iequals(filename.substr(filename.size() - 4), ".png"))
    return fail(why, "not a .png file");
  const std::string stem = filename.substr(0, filename.size() - 4);

  const size_t idx = stem.find("_idx5_");
  if (idx == std::string::npos) return fail(why, "no '_idx5_' after the patient id");
  PatchName name;
  name.patient = stem.substr(0, idx);
  if (!valid_patient(name.patient))
    return fail(why, "the patient id must be one or more letters, digits or '-'");

  size_t pos = idx + 6;
  if (!expect(stem, pos, "x") || !read_int(stem, pos, name.x))
    return fail(why, "no 'x<X>' coordinate after '_idx5_'");
  if (!expect(stem, pos, "_y") || !read_int(stem, pos, name.y))
    return fail(why, "no '_y<Y>' coordinate after the x coordinate");
  if (!expect(stem, pos, "_class")) return fail(why, "no '_class<C>' after the y coordinate");
  if (pos + 1 != stem.size() || (stem[pos] != '0' && stem[pos] != '1'))
    return fail(why, "the class must be a single 0 or 1 just before '.png'");
  name.label = stem[pos] - '0';
  return name;
}

std::string format_patch_filename(const PatchName& name) {
  HISTOCNN_CHECK(valid_patient(name.patient),
                 "patient id '{}' must be one or more letters, digits or '-'", name.patient);
  HISTOCNN_CHECK(name.x >= 0 && name.y >= 0, "patch coordinates must be >= 0, got x={} y={}",
                 name.x, name.y);
  HISTOCNN_CHECK(name.label == 0 || name.label == 1, "patch label must be 0 or 1, got {}",
                 name.label);
  return fmt::format("{}_idx5_x{}_y{}_class{}.png", name.patient, name.x, name.y, name.label);
}

}  // namespace histocnn::data
