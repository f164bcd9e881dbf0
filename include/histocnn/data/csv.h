#pragma once
// The CSV dialect of every file histocnn writes and reads (manifests, predictions, tile and burden
// tables): comma-separated, "..." quoting with "" for a quote, one record per line.
//
//   text += histocnn::data::csv_field(path) + "," + ...;           // quotes only when needed
//   std::vector<std::string> fields; std::string error;
//   if (!histocnn::data::split_csv_line(line, fields, &error)) fail(error);
#include <string>
#include <vector>

namespace histocnn::data {

/// `s` as one CSV field: unchanged, or quoted when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& s);

/// Splits one CSV line into fields (surrounding blanks trimmed). Returns false and sets *error for
/// an unterminated quote or text after a closing quote.
bool split_csv_line(const std::string& line, std::vector<std::string>& fields, std::string* error);

/// The lines of a CSV text: '\n' or "\r\n" line ends, a leading UTF-8 byte-order mark dropped.
std::vector<std::string> csv_lines(const std::string& text);

}  // namespace histocnn::data
