#include "bindings.h"

#include "histocnn/data/balance.h"
#include "histocnn/data/filename.h"
#include "histocnn/data/manifest.h"
#include "histocnn/data/split.h"
#include "histocnn/data/synthetic.h"

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

namespace py = pybind11;

namespace histocnn::bindings {

void init_data(py::module_& root) {
  auto m = root.def_submodule("data", "Scanning, manifests, patient-level splits, synthetic patches");

  py::class_<data::PatchName>(m, "PatchName")
      .def_readonly("patient", &data::PatchName::patient)
      .def_readonly("x", &data::PatchName::x)
      .def_readonly("y", &data::PatchName::y)
      .def_readonly("label", &data::PatchName::label);
  m.def("parse_patch_filename", [](const std::string& f) { return data::parse_patch_filename(f); }, py::arg("filename"),
        "Parses '<patient>_idx5_x<X>_y<Y>_class<C>.png'; None when the name does not match.");

  py::class_<data::PatchRecord>(m, "PatchRecord")
      .def_readonly("path", &data::PatchRecord::path)
      .def_readonly("patient", &data::PatchRecord::patient)
      .def_readonly("label", &data::PatchRecord::label)
      .def_readonly("x", &data::PatchRecord::x)
      .def_readonly("y", &data::PatchRecord::y)
      .def_readonly("split", &data::PatchRecord::split);

  py::class_<data::Manifest>(m, "Manifest")
      .def_property_readonly("root", &data::Manifest::root)
      .def_property_readonly("rows", &data::Manifest::rows)
      .def("__len__", &data::Manifest::size)
      .def("patients", &data::Manifest::patients)
      .def("class_counts", &data::Manifest::class_counts)
      .def("subset", &data::Manifest::subset, py::arg("split"))
      .def("select_split", &data::Manifest::select_split, py::arg("split"),
           "The rows of one split for scoring (train, val, test, or all); refuses a manifest without splits")
      .def("save_csv", &data::Manifest::save_csv, py::arg("path"))
      .def_static("load_csv", &data::Manifest::load_csv, py::arg("path"), py::arg("root") = py::none());

  py::class_<data::ScanReport>(m, "ScanReport")
      .def_readonly("manifest", &data::ScanReport::manifest)
      .def_readonly("rejected", &data::ScanReport::rejected)
      .def_readonly("label_mismatches", &data::ScanReport::label_mismatches)
      .def_readonly("duplicates", &data::ScanReport::duplicates);
  m.def("scan_directory", &data::scan_directory, py::arg("root"), py::call_guard<py::gil_scoped_release>(),
        "Scans a folder in the Kaggle layout; non-matching files are listed in .rejected.");

  py::class_<data::SplitOptions>(m, "SplitOptions")
      .def(py::init<>())
      .def_readwrite("train", &data::SplitOptions::train)
      .def_readwrite("val", &data::SplitOptions::val)
      .def_readwrite("test", &data::SplitOptions::test)
      .def_readwrite("seed", &data::SplitOptions::seed)
      .def_readwrite("by_patch", &data::SplitOptions::by_patch);
  m.def(
      "split_manifest",
      [](const data::Manifest& manifest, double train, double val, double test, uint64_t seed, bool by_patch) {
        data::SplitOptions o;
        o.train = train;
        o.val = val;
        o.test = test;
        o.seed = seed;
        o.by_patch = by_patch;
        return data::split_manifest(manifest, o);
      },
      py::arg("manifest"), py::arg("train") = 0.6, py::arg("val") = 0.2, py::arg("test") = 0.2, py::arg("seed") = 42,
      py::arg("by_patch") = false, "Patient-level stratified split; returns a manifest with .split filled.");
  m.def("balance_classes", &data::balance_classes, py::arg("manifest"), py::arg("per_class"), py::arg("seed") = 42);

  py::class_<data::SyntheticSummary>(m, "SyntheticSummary")
      .def_readonly("written", &data::SyntheticSummary::written)
      .def_readonly("positives", &data::SyntheticSummary::positives)
      .def_readonly("negatives", &data::SyntheticSummary::negatives)
      .def_readonly("patients", &data::SyntheticSummary::patients);
  const data::SyntheticOptions d;
  m.def(
      "generate_synthetic",
      [](const std::filesystem::path& root, int patients, int patches_per_patient, double positive_fraction,
         uint64_t seed, double difficulty) {
        data::SyntheticOptions o;
        o.patients = patients;
        o.patches_per_patient = patches_per_patient;
        o.positive_fraction = positive_fraction;
        o.seed = seed;
        o.difficulty = difficulty;
        py::gil_scoped_release release;
        return data::generate_synthetic(root, o);
      },
      py::arg("root"), py::arg("patients") = d.patients, py::arg("patches_per_patient") = d.patches_per_patient,
      py::arg("positive_fraction") = d.positive_fraction, py::arg("seed") = d.seed,
      py::arg("difficulty") = d.difficulty,
      "Writes synthetic H&E-like patches in the Kaggle layout into an empty or new folder.");
}

}  // namespace histocnn::bindings
