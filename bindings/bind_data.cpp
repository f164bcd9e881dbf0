#include "bindings.h"

#include "histocnn/data/balance.h"
#include "histocnn/data/filename.h"
#include "histocnn/data/manifest.h"
#include "histocnn/data/split.h"
#include "histocnn/data/synthetic.h"

#include "histocnn/core/error.h"
#include "histocnn/data/augment.h"
#include "histocnn/data/stain.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <array>
#include <cstring>

namespace py = pybind11;

namespace histocnn::bindings {

namespace {

using RgbArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

// An HxWx3 uint8 array as an RGB cv::Mat (copied, so the GIL can be released afterwards).
cv::Mat rgb_mat(const RgbArray& a, size_t index = 0) {
  HISTOCNN_CHECK(a.ndim() == 3 && a.shape(2) == 3 && a.shape(0) > 0 && a.shape(1) > 0,
                 "image {} must be an HxWx3 uint8 array (RGB); got {} dimensions", index, a.ndim());
  return cv::Mat(static_cast<int>(a.shape(0)), static_cast<int>(a.shape(1)), CV_8UC3,
                 const_cast<uint8_t*>(a.data()))
      .clone();
}

std::vector<cv::Mat> rgb_mats(const std::vector<RgbArray>& arrays) {
  std::vector<cv::Mat> out;
  out.reserve(arrays.size());
  for (size_t i = 0; i < arrays.size(); ++i) out.push_back(rgb_mat(arrays[i], i));
  return out;
}

py::array_t<uint8_t> rgb_array(const cv::Mat& rgb) {
  py::array_t<uint8_t> out({rgb.rows, rgb.cols, 3});
  for (int y = 0; y < rgb.rows; ++y) std::memcpy(out.mutable_data(y), rgb.ptr(y), static_cast<size_t>(rgb.cols) * 3);
  return out;
}

void init_stain(py::module_& m) {
  py::class_<data::StainStats>(m, "StainStats", "Colour statistics of a group of pixels (data/stain.h)")
      .def_property_readonly("method", [](const data::StainStats& s) { return data::stain_method_name(s.method); })
      .def_readonly("lab_mean", &data::StainStats::lab_mean)
      .def_readonly("lab_std", &data::StainStats::lab_std)
      .def_readonly("haematoxylin", &data::StainStats::haematoxylin)
      .def_readonly("eosin", &data::StainStats::eosin)
      .def_readonly("max_concentration", &data::StainStats::max_concentration)
      .def_readonly("borrowed_vectors", &data::StainStats::borrowed_vectors)
      .def_readonly("background", &data::StainStats::background)
      .def_readonly("pixels", &data::StainStats::pixels)
      .def_property_readonly("fitted", &data::StainStats::fitted)
      .def("to_json", &data::StainStats::to_json)
      .def_static("from_json", &data::StainStats::from_json, py::arg("json"));
  m.def(
      "fit_stain_stats",
      [](const std::string& method, const std::vector<RgbArray>& images) {
        const auto mats = rgb_mats(images);
        py::gil_scoped_release release;
        return data::fit_stain_stats(data::parse_stain_method(method), mats);
      },
      py::arg("method"), py::arg("images"),
      "Reinhard (L*a*b* mean/std), Macenko (stain vectors, 99th-percentile concentrations) or white-balance "
      "(the glass: each channel's 1st percentile of optical density) statistics over the non-white pixels of "
      "HxWx3 uint8 images taken together; .fitted is False when there is too little tissue.");
  py::class_<data::StainNormaliser>(m, "StainNormaliser",
                                    "Stain normalisation to a reference: Reinhard, Macenko or white balance alone, per "
                                    "patch or per slide")
      .def_static(
          "fit",
          [](const std::string& method, const std::vector<RgbArray>& reference, const std::string& fit,
             bool white_balance) {
            const auto mats = rgb_mats(reference);
            py::gil_scoped_release release;
            return data::StainNormaliser::fit(data::parse_stain_method(method), mats, data::parse_stain_fit(fit),
                                              white_balance);
          },
          py::arg("method"), py::arg("reference"), py::arg("fit") = "patch", py::arg("white_balance") = false,
          "The normaliser whose target is the pooled statistics of the reference images (method: reinhard, "
          "macenko or white-balance). white_balance (Macenko): each source's glass is subtracted in optical "
          "density before its stains are fitted.")
      .def(py::init([](const data::StainStats& target, const std::string& fit, bool white_balance) {
             return data::StainNormaliser(target, data::parse_stain_fit(fit), white_balance);
           }),
           py::arg("target"), py::arg("fit") = "patch", py::arg("white_balance") = false)
      .def_property_readonly("white_balance", &data::StainNormaliser::white_balance)
      .def_property_readonly("method", [](const data::StainNormaliser& n) { return data::stain_method_name(n.method()); })
      .def_property_readonly("fit_mode", [](const data::StainNormaliser& n) { return data::stain_fit_name(n.fit_mode()); })
      .def_property_readonly("target", &data::StainNormaliser::target)
      .def(
          "source_stats",
          [](const data::StainNormaliser& n, const std::vector<RgbArray>& images) {
            const auto mats = rgb_mats(images);
            py::gil_scoped_release release;
            return n.source_stats(mats);
          },
          py::arg("images"), "Source statistics over a group of patches (a slide, a patient, a request).")
      .def(
          "normalise",
          [](const data::StainNormaliser& n, const RgbArray& image, std::optional<data::StainStats> source) {
            const cv::Mat rgb = rgb_mat(image);
            cv::Mat out;
            {
              py::gil_scoped_release release;
              out = source ? n.normalise(rgb, *source) : n.normalise(rgb);
            }
            return rgb_array(out);
          },
          py::arg("image"), py::arg("source") = py::none(),
          "The image mapped onto the reference, with its own statistics or with `source` (its group's).")
      .def(
          "normalise_group",
          [](const data::StainNormaliser& n, const std::vector<RgbArray>& images) {
            const auto mats = rgb_mats(images);
            std::vector<cv::Mat> out;
            {
              py::gil_scoped_release release;
              out = n.normalise_group(mats);
            }
            std::vector<py::array_t<uint8_t>> arrays;
            for (const auto& o : out) arrays.push_back(rgb_array(o));
            return arrays;
          },
          py::arg("images"), "Fits the source statistics over all images, then normalises each.")
      .def("to_json", &data::StainNormaliser::to_json)
      .def_static("from_json", &data::StainNormaliser::from_json, py::arg("json"));
  m.def(
      "haematoxylin_image",
      [](const RgbArray& image) {
        const cv::Mat rgb = rgb_mat(image);
        cv::Mat out;
        {
          py::gil_scoped_release release;
          out = data::haematoxylin_image(rgb);
        }
        return rgb_array(out);
      },
      py::arg("image"),
      "The haematoxylin channel of Ruifrok & Johnston's colour deconvolution as a grey HxWx3 uint8 image "
      "(intensity 256 exp(-c_H) - 1): what a model trained with colour='haematoxylin' sees.");
  m.def(
      "augment_image",
      [](const RgbArray& image, const std::string& preset, uint64_t seed) {
        const cv::Mat rgb = rgb_mat(image);
        const auto options = data::AugmentOptions::preset(preset);
        std::mt19937_64 rng(seed);
        cv::Mat out;
        {
          py::gil_scoped_release release;
          out = data::augment_patch(rgb, options, rng);
        }
        return rgb_array(out);
      },
      py::arg("image"), py::arg("preset"), py::arg("seed") = 0,
      "One augmented copy of an HxWx3 uint8 image with a named preset (none, flips, study, histology[:sigma], "
      "hsv-light, hsv-strong, hsv:<r>), drawn from `seed`.");
  m.def(
      "restain",
      [](const RgbArray& image, const std::array<double, 3>& scale, const std::array<double, 3>& shift) {
        const cv::Mat rgb = rgb_mat(image);
        cv::Mat out;
        {
          py::gil_scoped_release release;
          out = data::restain(rgb, scale, shift);
        }
        return rgb_array(out);
      },
      py::arg("image"), py::arg("scale") = std::array<double, 3>{1, 1, 1}, py::arg("shift") = std::array<double, 3>{},
      "An HxWx3 uint8 image restained: its haematoxylin, eosin and residual concentrations (Ruifrok & Johnston's "
      "colour deconvolution) each taken to c * scale[k] + shift[k]. What --stain-shift sigma does to a test "
      "patient, with its scale 1 + N(0, sigma) and shift N(0, sigma) drawn once per patient.");
}

}  // namespace

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
      .def(py::init<std::filesystem::path, std::vector<data::PatchRecord>>(), py::arg("root"), py::arg("rows"),
           "A manifest of these rows (another manifest's, e.g. some of its patients') under root:\n"
           "    histocnn.data.Manifest(m.root, [r for r in m.rows if r.patient in keep])")
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
  m.def("join_manifests", &data::join_manifests, py::arg("parts"),
        "Joins manifests of several folders (rooted at their common folder); a patient in two is an error.");

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
  init_stain(m);
}

}  // namespace histocnn::bindings
