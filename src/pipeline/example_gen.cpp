// ExampleGen: the data of a pipeline run as one manifest with its split.
#include "histocnn/core/error.h"
#include "histocnn/core/log.h"
#include "histocnn/data/balance.h"
#include "histocnn/data/duplicates.h"
#include "histocnn/data/split.h"
#include "histocnn/data/synthetic.h"
#include "histocnn/io/atomic_file.h"

#include "component_impl.h"

#include <map>

namespace histocnn::pipeline::detail {

namespace {

constexpr size_t kListed = 200;  // file names listed in examples.json per kind (the counts are complete)

json listed(const std::vector<std::string>& items) {
  json j = json::array();
  for (size_t i = 0; i < items.size() && i < kListed; ++i) j.push_back(items[i]);
  return j;
}

// Synthetic patches, generated once into the artifact (a half-written folder from a killed run is
// generated again).
fs::path synthetic_data(const fs::path& examples, const json& s) {
  const fs::path data = examples / "data";
  if (fs::exists(data / ".complete")) return data;
  const fs::path partial = examples / "data.partial";
  fs::remove_all(partial);
  fs::remove_all(data);
  data::SyntheticOptions o;
  o.patients = s.value("patients", o.patients);
  o.patches_per_patient = s.value("patches_per_patient", o.patches_per_patient);
  o.positive_fraction = s.value("positive_fraction", o.positive_fraction);
  o.patch_size = s.value("patch_size", o.patch_size);
  o.seed = s.value("seed", o.seed);
  o.difficulty = s.value("difficulty", o.difficulty);
  o.border_patches = s.value("border_patches", o.border_patches);
  data::generate_synthetic(partial, o);
  io::write_file_atomic(partial / ".complete", "");
  fs::rename(partial, data);
  return data;
}

}  // namespace

ComponentResult run_example_gen(const ComponentCall& call, const json& config) {
  const fs::path out = output_dir(call, "examples");
  json source;
  std::vector<std::string> duplicates, rejected, mismatches;
  data::Manifest manifest;
  if (config.contains("synthetic") && config["synthetic"].is_object()) {
    const fs::path data = synthetic_data(out, config["synthetic"]);
    auto report = data::scan_directory(data);
    manifest = report.manifest;
    duplicates = report.duplicates;
    rejected = report.rejected;
    source = {{"synthetic", config["synthetic"]}, {"folder", data.string()}};
  } else if (config.contains("data_dirs") && !config["data_dirs"].empty()) {
    std::vector<data::Manifest> parts;
    for (const auto& d : config["data_dirs"]) {
      auto report = data::scan_directory(d.get<std::string>());
      parts.push_back(report.manifest);
      duplicates.insert(duplicates.end(), report.duplicates.begin(), report.duplicates.end());
      rejected.insert(rejected.end(), report.rejected.begin(), report.rejected.end());
      mismatches.insert(mismatches.end(), report.label_mismatches.begin(), report.label_mismatches.end());
    }
    manifest = data::join_manifests(parts);
    source = {{"data_dirs", config["data_dirs"]}};
  } else {
    const fs::path csv = config["manifest"].get<std::string>();
    // Unreadable files are kept here: StatisticsGen reports them, by name.
    data::ScanReport report;
    manifest = data::drop_duplicate_files(data::Manifest::load_csv(csv), report, /*keep_unreadable=*/true);
    duplicates = report.duplicates;
    rejected = report.rejected;
    source = {{"manifest", csv.string()}};
  }
  HISTOCNN_CHECK(!manifest.empty(), "ExampleGen: no patches found in {}", source.dump());

  const int64_t balance = config.value("balance_per_class", int64_t{0});
  data::SplitOptions split;
  if (config.contains("split")) {
    const auto& s = config["split"];
    split.train = s.value("train", split.train);
    split.val = s.value("val", split.val);
    split.test = s.value("test", split.test);
    split.seed = s.value("seed", split.seed);
    split.by_patch = s.value("by_patch", split.by_patch);
  }
  split.validate();
  if (balance > 0) manifest = data::balance_classes(manifest, balance, split.seed);
  HISTOCNN_CHECK(manifest.split_state() != data::Manifest::SplitState::partial,
                 "ExampleGen: only some rows of the manifest have a split; fill the split column of every row, or "
                 "clear it to split by patient");
  const bool kept_split = manifest.split_state() == data::Manifest::SplitState::complete;
  if (!kept_split) manifest = data::split_manifest(manifest, split);
  manifest.save_csv(out / "manifest.csv");

  const auto summary = data::summarize_splits(manifest);
  json splits = json::array();
  std::map<std::string, int64_t> patches_by_split;
  for (const auto& s : summary) {
    splits.push_back({{"split", s.split}, {"patients", s.patients}, {"patches", s.patches},
                      {"negatives", s.negatives}, {"positives", s.positives}});
    patches_by_split[s.split] = s.patches;
  }
  write_json_file(out / "examples.json",
                  {{"source", source},
                   {"root", fs::absolute(manifest.root()).lexically_normal().string()},
                   {"patches", manifest.size()},
                   {"patients", manifest.patients().size()},
                   {"split", kept_split ? json("kept from the manifest") : json{{"train", split.train}, {"val", split.val},
                                                                                 {"test", split.test}, {"seed", split.seed},
                                                                                 {"by_patch", split.by_patch}}},
                   {"balance_per_class", balance},
                   {"splits", splits},
                   {"duplicates", {{"count", duplicates.size()}, {"files", listed(duplicates)}}},
                   {"rejected", {{"count", rejected.size()}, {"files", listed(rejected)}}},
                   {"label_mismatches", {{"count", mismatches.size()}, {"files", listed(mismatches)}}}});
  ComponentResult r;
  r.summary = fmt::format("{} patches of {} patients, train/val/test {}/{}/{} patches; {} duplicate files dropped, "
                          "{} rejected",
                          manifest.size(), manifest.patients().size(), patches_by_split["train"],
                          patches_by_split["val"], patches_by_split["test"], duplicates.size(), rejected.size());
  r.properties["examples"] = {{"patches", std::to_string(manifest.size())},
                              {"patients", std::to_string(manifest.patients().size())},
                              {"duplicates_dropped", std::to_string(duplicates.size())}};
  return r;
}

}  // namespace histocnn::pipeline::detail
