#include "histocnn/data/manifest.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>
#include <set>
#include <stdexcept>
#include <system_error>
#include <unordered_map>

#include "histocnn/core/error.h"
#include "histocnn/core/hash.h"
#include "histocnn/core/log.h"
#include "histocnn/data/csv.h"
#include "histocnn/data/duplicates.h"
#include "histocnn/data/filename.h"
#include "histocnn/io/atomic_file.h"

namespace histocnn::data {
namespace fs = std::filesystem;

namespace {

const char* const kNamePattern = "<patient>_idx5_x<X>_y<Y>_class<C>.png";

bool valid_split(const std::string& s) {
  return s.empty() || s == "train" || s == "val" || s == "test";
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}


bool parse_int(const std::string& s, int& out) {
  if (s.empty()) return false;
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if (*b == '+') ++b;
  auto [ptr, ec] = std::from_chars(b, e, out);
  return ec == std::errc() && ptr == e;
}

std::string join_first(const std::vector<std::string>& items, size_t n, const char* sep) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < n; ++i) {
    if (i) out += sep;
    out += items[i];
  }
  if (items.size() > n) out += fmt::format("{}... ({} more)", sep, items.size() - n);
  return out;
}

bool ignored_file(const std::string& name) {
  if (!name.empty() && name[0] == '.') return true;
  const std::string ext = lower(fs::path(name).extension().string());
  return ext == ".csv" || ext == ".md" || ext == ".txt" || ext == ".json";
}

}  // namespace

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

bool split_csv_line(const std::string& line, std::vector<std::string>& fields, std::string* error) {
  fields.clear();
  std::string cur;
  size_t i = 0;
  for (;;) {
    cur.clear();
    if (i < line.size() && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            cur += '"';
            i += 2;
          } else {
            ++i;
            closed = true;
            break;
          }
        } else {
          cur += line[i++];
        }
      }
      if (!closed) {
        *error = "unterminated quoted field (fields cannot span lines)";
        return false;
      }
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      if (i < line.size() && line[i] != ',') {
        *error = "text after a closing quote";
        return false;
      }
    } else {
      while (i < line.size() && line[i] != ',') cur += line[i++];
    }
    fields.push_back(trim(cur));
    if (i >= line.size()) break;
    ++i;  // the comma
  }
  return true;
}

std::vector<std::string> csv_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    if (end == text.size()) break;
    start = end + 1;
  }
  if (!lines.empty() && lines[0].rfind("\xEF\xBB\xBF", 0) == 0) lines[0].erase(0, 3);  // UTF-8 BOM
  return lines;
}

Manifest::Manifest(fs::path root, std::vector<PatchRecord> rows)
    : root_(std::move(root)), rows_(std::move(rows)) {
  for (size_t i = 0; i < rows_.size(); ++i) {
    const auto& r = rows_[i];
    HISTOCNN_CHECK(r.label == 0 || r.label == 1, "manifest row {} ('{}'): label must be 0 or 1, got {}",
                   i, r.path, r.label);
    HISTOCNN_CHECK(valid_split(r.split),
                   "manifest row {} ('{}'): split must be empty, 'train', 'val' or 'test', got '{}'",
                   i, r.path, r.split);
  }
}

fs::path Manifest::absolute_path(size_t i) const {
  if (i >= rows_.size())
    throw std::out_of_range(fmt::format("manifest row {} out of range (size {})", i, rows_.size()));
  return root_ / rows_[i].path;
}

std::vector<std::string> Manifest::patients() const {
  std::set<std::string> s;
  for (const auto& r : rows_) s.insert(r.patient);
  return {s.begin(), s.end()};
}

std::array<int64_t, 2> Manifest::class_counts() const {
  std::array<int64_t, 2> c{0, 0};
  for (const auto& r : rows_) ++c[r.label == 1 ? 1 : 0];
  return c;
}

Manifest Manifest::subset(const std::string& split) const {
  HISTOCNN_CHECK(valid_split(split), "unknown split '{}': use 'train', 'val', 'test' or ''", split);
  return filter([&](const PatchRecord& r) { return r.split == split; });
}

Manifest::SplitState Manifest::split_state() const {
  size_t assigned = 0;
  for (const auto& r : rows_) assigned += r.split.empty() ? 0 : 1;
  if (assigned == 0) return SplitState::none;
  return assigned == rows_.size() ? SplitState::complete : SplitState::partial;
}

Manifest Manifest::select_split(const std::string& split) const {
  if (split == "all") return *this;
  HISTOCNN_CHECK(split == "train" || split == "val" || split == "test",
                 "unknown split '{}': use train, val, test or all", split);
  const auto state = split_state();
  HISTOCNN_CHECK(state != SplitState::none,
                 "the manifest has no split column, so split '{}' would score every patch, training patients "
                 "included: pass a run's manifest.csv (it records the split), or --split all to score every patch",
                 split);
  HISTOCNN_CHECK(state != SplitState::partial,
                 "only some rows of the manifest have a split; fill the split column of every row (or clear it) "
                 "so that split '{}' is well defined", split);
  auto out = subset(split);
  HISTOCNN_CHECK(!out.empty(), "the manifest has no rows in split '{}'; use --split train|val|test|all", split);
  return out;
}

Manifest Manifest::filter(const std::function<bool(const PatchRecord&)>& keep) const {
  Manifest out;
  out.root_ = root_;
  for (const auto& r : rows_)
    if (keep(r)) out.rows_.push_back(r);
  return out;
}

void Manifest::save_csv(const fs::path& csv) const {
  // Paths are written relative to the CSV's own folder (load_csv's default root), so a manifest
  // saved elsewhere than its patches (e.g. in a run folder) still finds them.
  const fs::path csv_dir = fs::absolute(csv).parent_path().lexically_normal();
  const fs::path root = fs::absolute(root_).lexically_normal();
  const bool same_root = root == csv_dir;
  std::string text = "path,patient,label,x,y,split\n";
  text.reserve(rows_.size() * 64 + text.size());
  for (const auto& r : rows_) {
    fs::path p = r.path;
    if (!same_root && !p.is_absolute()) {
      p = (root / p).lexically_relative(csv_dir);
      if (p.empty()) p = root / r.path;
    }
    text += csv_field(p.generic_string());
    text += ',';
    text += csv_field(r.patient);
    text += fmt::format(",{},{},{},", r.label, r.x, r.y);
    text += csv_field(r.split);
    text += '\n';
  }
  io::write_file_atomic(csv, text);
}

Manifest Manifest::load_csv(const fs::path& csv, std::optional<fs::path> root) {
  const std::string text = io::read_file(csv);  // throws NotFoundError or std::runtime_error naming the file
  const std::string file = csv.string();

  const std::vector<std::string> lines = csv_lines(text);
  HISTOCNN_CHECK(!lines.empty() && !trim(lines[0]).empty(),
                 "manifest '{}' is empty: expected a header line such as "
                 "'path,patient,label,x,y,split'",
                 file);

  std::vector<std::string> header;
  std::string error;
  HISTOCNN_CHECK(split_csv_line(lines[0], header, &error), "manifest '{}' line 1 (header): {}", file,
                 error);
  std::map<std::string, size_t> column;
  for (size_t i = 0; i < header.size(); ++i) column.emplace(lower(header[i]), i);
  auto find = [&](std::initializer_list<const char*> names) -> std::optional<size_t> {
    for (const char* n : names) {
      auto it = column.find(n);
      if (it != column.end()) return it->second;
    }
    return std::nullopt;
  };
  const auto c_path = find({"path"});
  const auto c_label = find({"label"});
  const auto c_patient = find({"patient", "patient_id"});
  const auto c_x = find({"x"});
  const auto c_y = find({"y"});
  const auto c_split = find({"split"});
  HISTOCNN_CHECK(c_path && c_label,
                 "manifest '{}' line 1: the header needs columns 'path' and 'label' (and "
                 "'patient'/'patient_id', 'x', 'y' unless the file names carry them); found: {}",
                 file, lines[0]);

  std::vector<PatchRecord> rows;
  rows.reserve(lines.size());
  std::vector<std::string> fields;
  for (size_t li = 1; li < lines.size(); ++li) {
    const size_t line_no = li + 1;
    if (trim(lines[li]).empty()) continue;
    HISTOCNN_CHECK(split_csv_line(lines[li], fields, &error), "manifest '{}' line {}: {}", file,
                   line_no, error);
    auto get = [&](size_t col) -> const std::string& {
      HISTOCNN_CHECK(col < fields.size(),
                     "manifest '{}' line {}: column '{}' is missing (the row has {} fields, the "
                     "header {})",
                     file, line_no, header[col], fields.size(), header.size());
      return fields[col];
    };
    auto get_int = [&](size_t col) {
      const std::string& v = get(col);
      int out = 0;
      HISTOCNN_CHECK(parse_int(v, out), "manifest '{}' line {}: column '{}' must be an integer, got '{}'",
                     file, line_no, header[col], v);
      return out;
    };
    PatchRecord r;
    r.path = get(*c_path);
    HISTOCNN_CHECK(!r.path.empty(), "manifest '{}' line {}: column 'path' is empty", file, line_no);
    std::replace(r.path.begin(), r.path.end(), '\\', '/');
    r.label = get_int(*c_label);
    HISTOCNN_CHECK(r.label == 0 || r.label == 1, "manifest '{}' line {}: column '{}' must be 0 or 1, got {}",
                   file, line_no, header[*c_label], r.label);

    std::optional<PatchName> parsed;
    if (!c_patient || !c_x || !c_y) {
      std::string why;
      parsed = parse_patch_filename(fs::path(r.path).filename().string(), &why);
      HISTOCNN_CHECK(parsed.has_value(),
                     "manifest '{}' line {}: the header has no '{}' column and the file name '{}' "
                     "does not carry it ({}; expected {})",
                     file, line_no, !c_patient ? "patient" : (!c_x ? "x" : "y"), r.path, why,
                     kNamePattern);
    }
    r.patient = c_patient ? get(*c_patient) : parsed->patient;
    HISTOCNN_CHECK(!r.patient.empty(), "manifest '{}' line {}: column '{}' is empty", file, line_no,
                   c_patient ? header[*c_patient] : std::string("patient"));
    r.x = c_x ? get_int(*c_x) : parsed->x;
    r.y = c_y ? get_int(*c_y) : parsed->y;
    if (c_split) {
      r.split = lower(get(*c_split));
      HISTOCNN_CHECK(valid_split(r.split),
                     "manifest '{}' line {}: column '{}' must be empty, 'train', 'val' or 'test', "
                     "got '{}'",
                     file, line_no, header[*c_split], r.split);
    }
    rows.push_back(std::move(r));
  }

  fs::path base = root ? *root : csv.parent_path();
  if (base.empty()) base = ".";
  return Manifest(std::move(base), std::move(rows));
}

namespace {

}  // namespace

Manifest drop_duplicate_files(const Manifest& manifest, ScanReport& report, bool keep_unreadable) {
  const auto& rows = manifest.rows();
  std::vector<size_t> order(rows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rows[a].path < rows[b].path; });
  auto read = [&](size_t i) -> std::optional<std::string> {
    try {
      return io::read_file(manifest.absolute_path(i));
    } catch (const std::exception&) {
      if (!keep_unreadable) throw;
      return std::nullopt;
    }
  };
  std::unordered_map<std::string, std::vector<size_t>> by_content;  // size:hash -> rows, in path order
  std::vector<std::string> keys(rows.size());  // empty: unreadable
  for (size_t i : order) {
    const auto bytes = read(i);
    if (!bytes) continue;
    keys[i] = fmt::format("{}:{:016x}", bytes->size(), fnv1a64(*bytes));
    by_content[keys[i]].push_back(i);
  }
  std::vector<bool> drop(rows.size(), false);
  for (size_t i : order) {
    if (keys[i].empty()) continue;
    const auto& group = by_content[keys[i]];
    if (group.size() < 2 || group.front() != i) continue;
    const auto first = read(i);
    bool conflict = false;
    std::vector<size_t> same;  // equal bytes, not just an equal hash
    for (size_t k = 1; k < group.size(); ++k) {
      const auto& other = rows[group[k]];
      if (read(group[k]) != first) continue;
      same.push_back(group[k]);
      conflict |= other.patient != rows[i].patient || other.label != rows[i].label;
    }
    for (size_t j : same) {
      drop[j] = true;
      report.duplicates.push_back(fmt::format("{}: same bytes as {}", rows[j].path, rows[i].path));
    }
    if (conflict) {
      drop[i] = true;
      for (size_t j : same) {
        report.rejected.push_back(fmt::format("{}: the same image as {} under another patient or label; every "
                                              "copy rejected", rows[j].path, rows[i].path));
      }
    }
  }
  std::vector<PatchRecord> kept;
  kept.reserve(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!drop[i]) kept.push_back(rows[i]);
  }
  if (!report.duplicates.empty()) {
    log_warn("'{}': dropped {} duplicate file(s) with the same bytes as another, e.g. {}", manifest.root().string(),
             report.duplicates.size(), join_first(report.duplicates, 3, "; "));
  }
  return Manifest(manifest.root(), std::move(kept));
}

Manifest join_manifests(const std::vector<Manifest>& parts) {
  HISTOCNN_CHECK(!parts.empty(), "join_manifests: no manifests given");
  if (parts.size() == 1) return parts.front();
  // The deepest folder holding every root.
  fs::path common = fs::absolute(parts.front().root()).lexically_normal();
  for (const auto& part : parts) {
    const fs::path root = fs::absolute(part.root()).lexically_normal();
    fs::path shared;
    auto a = common.begin(), b = root.begin();
    for (; a != common.end() && b != root.end() && *a == *b; ++a, ++b) shared /= *a;
    common = shared;
  }
  std::map<std::string, fs::path> owner;  // patient -> the folder it came from
  std::vector<PatchRecord> rows;
  for (const auto& part : parts) {
    const fs::path root = fs::absolute(part.root()).lexically_normal();
    for (const auto& patient : part.patients()) {
      auto [it, inserted] = owner.emplace(patient, part.root());
      HISTOCNN_CHECK(inserted,
                         "patient '{}' is in both '{}' and '{}': a patient may be in only one data folder "
                         "(the split is by patient); remove it from one of them",
                         patient, it->second.string(), part.root().string());
    }
    const fs::path prefix = root.lexically_relative(common);
    for (auto r : part.rows()) {
      r.path = (prefix / r.path).lexically_normal().generic_string();
      rows.push_back(std::move(r));
    }
  }
  return Manifest(common, std::move(rows));
}

ScanReport scan_directory(const fs::path& root) {
  std::error_code ec;
  const bool exists = fs::exists(root, ec);
  HISTOCNN_CHECK_FOUND(exists, "patch folder '{}' does not exist; pass the folder that holds the "
                    "patches (Kaggle layout <patient>/<C>/{})",
                    root.string(), kNamePattern);
  HISTOCNN_CHECK_IO(fs::is_directory(root, ec),
                    "'{}' is a file, not a folder; pass the folder that holds the patches (Kaggle "
                    "layout <patient>/<C>/{})",
                    root.string(), kNamePattern);

  std::vector<std::string> files;  // relative, '/' separated
  std::vector<std::string> unreadable;
  // Symlinked folders are followed (data is often linked in). A link loop ends where the system
  // stops resolving links; what it reached twice is dropped below as a duplicate.
  fs::recursive_directory_iterator it(
      root, fs::directory_options::skip_permission_denied | fs::directory_options::follow_directory_symlink, ec);
  HISTOCNN_CHECK_IO(!ec, "cannot list patch folder '{}': {}", root.string(), ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    HISTOCNN_CHECK_IO(!ec, "cannot list patch folder '{}': {}", root.string(), ec.message());
    const fs::path& p = it->path();
    const std::string name = p.filename().string();
    std::error_code sec;
    if (it->is_directory(sec)) {
      if (!name.empty() && name[0] == '.') it.disable_recursion_pending();
      continue;
    }
    std::string rel = p.lexically_relative(root).generic_string();
    if (ignored_file(name)) continue;
    if (!it->is_regular_file(sec)) {
      unreadable.push_back(rel);
      continue;
    }
    files.push_back(std::move(rel));
  }
  std::sort(files.begin(), files.end());
  std::sort(unreadable.begin(), unreadable.end());

  ScanReport report;
  for (const auto& u : unreadable) report.rejected.push_back(u + ": not a regular file");
  std::vector<PatchRecord> rows;
  rows.reserve(files.size());
  for (const auto& rel : files) {
    const fs::path rp(rel);
    std::string why;
    auto name = parse_patch_filename(rp.filename().string(), &why);
    if (!name) {
      report.rejected.push_back(fmt::format("{}: {} (expected {})", rel, why, kNamePattern));
      continue;
    }
    std::vector<std::string> parts;
    for (const auto& part : rp) parts.push_back(part.string());
    std::string mismatch;
    if (parts.size() >= 2) {
      const std::string& label_dir = parts[parts.size() - 2];
      if (label_dir == "0" || label_dir == "1") {
        if (label_dir[0] - '0' != name->label) {
          mismatch = fmt::format("folder label {} but the file name says class{}", label_dir,
                                 name->label);
        } else if (parts.size() >= 3) {
          const std::string& patient_dir = parts[parts.size() - 3];
          if (all_digits(patient_dir) && patient_dir != name->patient)
            mismatch = fmt::format("patient folder {} but the file name says patient {}",
                                   patient_dir, name->patient);
        }
      }
    }
    if (!mismatch.empty()) {
      std::string entry = rel + ": " + mismatch;
      report.label_mismatches.push_back(entry);
      report.rejected.push_back(entry);
      continue;
    }
    rows.push_back(PatchRecord{rel, name->patient, name->label, name->x, name->y, ""});
  }

  rows = drop_duplicate_files(Manifest(root, std::move(rows)), report).rows();

  if (rows.empty()) {
    std::string msg = fmt::format(
        "no patches found under '{}': expected PNG files named {} (C is 0 or 1), e.g. in the "
        "Kaggle layout <patient>/<C>/<patient>_idx5_x<X>_y<Y>_class<C>.png",
        root.string(), kNamePattern);
    if (!report.rejected.empty())
      msg += fmt::format("; {} file(s) were rejected: {}", report.rejected.size(),
                         join_first(report.rejected, 5, "; "));
    HISTOCNN_FAIL_IO("{}", msg);
  }
  if (!report.rejected.empty()) {
    log_warn("scan of '{}': {} file(s) not taken, e.g. {}", root.string(), report.rejected.size(),
             join_first(report.rejected, 5, "; "));
  }
  if (!report.label_mismatches.empty()) {
    log_warn("scan of '{}': {} file(s) rejected because their <patient>/<C>/ folders disagree "
             "with the file name, e.g. {}",
             root.string(), report.label_mismatches.size(),
             join_first(report.label_mismatches, 3, "; "));
  }
  report.manifest = Manifest(root, std::move(rows));
  const auto counts = report.manifest.class_counts();
  log_info("scanned '{}': {} patches from {} patients ({} negative, {} positive)", root.string(),
           report.manifest.size(), report.manifest.patients().size(), counts[0], counts[1]);
  return report;
}

}  // namespace histocnn::data
