#pragma once
// Byte-identical copies of one patch: downloads that merge two copies of the dataset hold every
// patch twice, and a copy filed under another patient would put one image on both sides of a
// patient split.
//
//   histocnn::data::ScanReport report;
//   auto unique = histocnn::data::drop_duplicate_files(histocnn::data::Manifest::load_csv("m.csv"), report);
//   // report.duplicates: "a.png: same bytes as b.png"; report.rejected: copies that disagree
#include "histocnn/data/manifest.h"

namespace histocnn::data {

/// The manifest without byte-identical copies: of each group of files with the same bytes, the
/// first in path order is kept and the others are listed in report.duplicates; a group whose copies
/// disagree on patient or label is dropped whole and listed in report.rejected (which one is right
/// is unknown). Rows keep their order. A file that cannot be read is kept when keep_unreadable
/// (whoever reads it next reports it by name), and is an error naming it otherwise.
Manifest drop_duplicate_files(const Manifest& manifest, ScanReport& report, bool keep_unreadable = false);

}  // namespace histocnn::data
