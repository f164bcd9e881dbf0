#include "bindings.h"

#include "histocnn/core/error.h"
#include "histocnn/inference/context_model.h"
#include "histocnn/inference/evaluate.h"
#include "histocnn/inference/explain.h"
#include "histocnn/inference/predictor.h"
#include "histocnn/inference/slide_maps.h"
#include "histocnn/inference/slide.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>
#include <torch/torch.h>

namespace py = pybind11;

namespace histocnn::bindings {

namespace {

using ImageArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

// HxWx3 uint8 arrays -> RGB cv::Mats (copied, so the GIL can be released afterwards).
std::vector<cv::Mat> to_mats(const std::vector<ImageArray>& arrays) {
  std::vector<cv::Mat> mats;
  mats.reserve(arrays.size());
  for (size_t i = 0; i < arrays.size(); ++i) {
    const auto& a = arrays[i];
    HISTOCNN_CHECK(a.ndim() == 3 && a.shape(2) == 3 && a.shape(0) > 0 && a.shape(1) > 0,
                   "image {} must be an HxWx3 uint8 array (RGB); got {} dimensions", i, a.ndim());
    cv::Mat view(static_cast<int>(a.shape(0)), static_cast<int>(a.shape(1)), CV_8UC3,
                 const_cast<uint8_t*>(a.data()));
    mats.push_back(view.clone());
  }
  return mats;
}

py::array_t<double> to_numpy(const std::vector<double>& v) { return py::array_t<double>(v.size(), v.data()); }

py::array_t<float> to_numpy(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU, torch::kFloat32).contiguous();
  std::vector<py::ssize_t> shape(c.sizes().begin(), c.sizes().end());
  return py::array_t<float>(shape, c.data_ptr<float>());
}

// Runs `fn` without the GIL: the C++ work needs no Python objects, and other threads may run.
template <typename Fn>
auto without_gil(Fn&& fn) {
  py::gil_scoped_release release;
  return fn();
}

}  // namespace

void init_inference(py::module_& root) {
  auto m = root.def_submodule("inference", "Saved models predicting on images and files");
  py::class_<inference::Predictor>(m, "Predictor")
      .def(py::init<const std::filesystem::path&, const std::string&>(), py::arg("model_dir"),
           py::arg("device") = "auto")
      .def(
          "predict_proba",
          [](inference::Predictor& p, const std::vector<ImageArray>& images, int64_t batch_size) {
            auto mats = to_mats(images);
            return to_numpy(without_gil([&] { return p.predict_proba(mats, batch_size); }));
          },
          py::arg("images"), py::arg("batch_size") = 64, "Class probabilities [N, classes] for HxWx3 uint8 arrays.")
      .def(
          "predict_files",
          [](inference::Predictor& p, const std::vector<std::filesystem::path>& files, int64_t batch_size) {
            return to_numpy(without_gil([&] { return p.predict_files(files, batch_size); }));
          },
          py::arg("files"), py::arg("batch_size") = 64, "P(class 1) for image files.")
      .def(
          "features",
          [](inference::Predictor& p, const std::vector<ImageArray>& images, int64_t batch_size) {
            auto mats = to_mats(images);
            return to_numpy(without_gil([&] { return p.features(mats, batch_size); }));
          },
          py::arg("images"), py::arg("batch_size") = 64)
      .def(
          "explain",
          [](inference::Predictor& p, const std::vector<ImageArray>& images, const std::string& method,
             int64_t target_class, const std::string& layer, bool upsample, int64_t batch_size) {
            auto mats = to_mats(images);
            inference::ExplainOptions o;
            o.method = inference::parse_cam_method(method);
            o.target_class = target_class;
            o.layer = layer;
            o.upsample = upsample;
            o.batch_size = batch_size;
            return to_numpy(without_gil([&] { return inference::explain(p, mats, o); }));
          },
          py::arg("images"), py::arg("method") = "gradcam", py::arg("target_class") = 1, py::arg("layer") = "",
          py::arg("upsample") = true, py::arg("batch_size") = 32,
          "Grad-CAM maps [N, S, S] in [0, 1] on a backbone layer (\"\": its last feature map).")
      .def(
          "explain_layers",
          [](inference::Predictor& p) {
            std::vector<std::pair<std::string, std::tuple<int64_t, int64_t, int64_t>>> out;
            for (const auto& l : without_gil([&] { return inference::explain_layers(p); })) {
              out.push_back({l.name, {l.channels, l.height, l.width}});
            }
            return out;
          },
          "The layers explain() can map, in forward order, with their output shapes (C, h, w); the last is the "
          "default.")
      .def_property_readonly("default_layer",
                             [](inference::Predictor& p) { return p.model()->backbone()->feature_layer(); })
      .def_property("tta", &inference::Predictor::tta, &inference::Predictor::set_tta,
                    "Test-time augmentation: the mean over the 8 flips and quarter turns of each patch.")
      .def_property_readonly("class_names", &inference::Predictor::class_names)
      .def_property_readonly("threshold", &inference::Predictor::threshold)
      .def_property_readonly("model_json", &inference::Predictor::model_json)
      .def_property_readonly("image_size", [](const inference::Predictor& p) { return p.preprocessing().image_size; })
      .def_property_readonly("colour",
                             [](const inference::Predictor& p) { return data::colour_name(p.preprocessing().colour); })
      .def_property_readonly("directory", &inference::Predictor::directory);

  py::class_<inference::Predictions>(m, "Predictions")
      .def_readonly("p_positive", &inference::Predictions::p_positive)
      .def_readonly("labels", &inference::Predictions::labels);
  py::class_<inference::EvaluationResult>(m, "EvaluationResult")
      .def_readonly("metrics", &inference::EvaluationResult::metrics)
      .def_readonly("report", &inference::EvaluationResult::report)
      .def_readonly("predictions", &inference::EvaluationResult::predictions)
      .def_readonly("threshold", &inference::EvaluationResult::threshold)
      .def_readonly("model_directory", &inference::EvaluationResult::model_directory)
      .def("to_json", [](const inference::EvaluationResult& r) { return inference::to_json(r); });
  m.def(
      "evaluate_bundle",
      [](const std::filesystem::path& model_dir, const data::Manifest& manifest, std::optional<double> threshold,
         const std::string& device, int workers, bool progress, double stain_shift, uint64_t seed, bool tta,
         const std::string& stain_fit) {
        inference::EvaluateOptions o;
        if (!stain_fit.empty()) o.stain_fit = data::parse_stain_fit(stain_fit);
        o.threshold = threshold;
        o.device = device;
        o.workers = workers;
        o.progress = progress;
        o.stain_shift = stain_shift;
        o.seed = seed;
        o.tta = tta;
        return inference::evaluate_bundle(model_dir, manifest, o);
      },
      py::arg("model_dir"), py::arg("manifest"), py::arg("threshold") = py::none(), py::arg("device") = "auto",
      py::arg("workers") = 2, py::arg("progress") = true, py::arg("stain_shift") = 0.0, py::arg("seed") = 42, py::arg("tta") = false,
      py::arg("stain_fit") = "", py::call_guard<py::gil_scoped_release>());

  py::class_<inference::PatientBurden>(m, "PatientBurden")
      .def_readonly("patient", &inference::PatientBurden::patient)
      .def_readonly("patches", &inference::PatientBurden::patches)
      .def_readonly("true_burden", &inference::PatientBurden::true_burden)
      .def_readonly("predicted_burden", &inference::PatientBurden::predicted_burden);
  py::class_<inference::SlideMapReport>(m, "SlideMapReport")
      .def_readonly("burden", &inference::SlideMapReport::burden)
      .def_readonly("images", &inference::SlideMapReport::images)
      .def_readonly("text", &inference::SlideMapReport::text);
  m.attr("DEFAULT_SMOOTH_RADIUS") = inference::kDefaultSmoothRadius;
  m.attr("MAX_SMOOTH_RADIUS") = inference::kMaxSmoothRadius;
  m.def("smooth_over_neighbours", &inference::smooth_over_neighbours, py::arg("manifest"), py::arg("p"),
        py::arg("radius") = inference::kDefaultSmoothRadius,
        "Each patch's probability averaged over its slide neighbourhood (spatial context): the patches within\n"
        "`radius` places (DEFAULT_SMOOTH_RADIUS unless given; at most MAX_SMOOTH_RADIUS).");
  m.def("tumour_burden", &inference::tumour_burden, py::arg("manifest"), py::arg("p"), py::arg("threshold"),
        "Per patient: patches, true and predicted fraction of IDC-positive patches.");
  m.def("write_slide_maps", &inference::write_slide_maps, py::arg("manifest"), py::arg("p"), py::arg("threshold"),
        py::arg("out_dir"), py::arg("smooth_radius") = inference::kDefaultSmoothRadius, py::arg("max_patients") = 0,
        py::arg("tile") = 8,
        py::arg("context") = py::none(), py::call_guard<py::gil_scoped_release>(),
        "What `histocnn maps` writes: <patient>.png (tissue, true IDC, P(IDC), errors), burden.csv and a report\n"
        "with patch-alone metrics, smoothing (smooth_radius) and, when `context` is a ContextModel, the learned\n"
        "head over the neighbourhood, side by side on the same patches::\n\n"
        "    head = histocnn.ContextModel.load('runs/x/context_model.json')\n"
        "    report = histocnn.inference.write_slide_maps(manifest, p, 0.5, 'maps/', context=head)\n"
        "    print(report.text)");

  // Learned spatial context (inference/context_model.h).
  m.def(
      "context_feature_names",
      [] {
        const auto& n = inference::context_feature_names();
        return std::vector<std::string>(n.begin(), n.end());
      },
      "Names of the neighbourhood features the ContextModel weighs, in order.");
  m.def(
      "context_features",
      [](const data::Manifest& manifest, const std::vector<double>& p) {
        const auto f = inference::context_features(manifest, p);
        py::array_t<double> out(
            {static_cast<py::ssize_t>(f.size()), static_cast<py::ssize_t>(inference::kContextFeatures)});
        auto a = out.mutable_unchecked<2>();
        for (size_t i = 0; i < f.size(); ++i) {
          for (int k = 0; k < inference::kContextFeatures; ++k) a(static_cast<py::ssize_t>(i), k) = f[i][k];
        }
        return out;
      },
      py::arg("manifest"), py::arg("p"),
      "The features of each patch's slide neighbourhood, an array [N, 8] (columns: context_feature_names()).");
  py::class_<inference::ContextModel>(
      m, "ContextModel",
      "Spatial context learned from labelled predictions: a logistic regression (standardised features, L2\n"
      "penalty, Newton's method) over each patch's own P(IDC), its 8 neighbours' and the 5x5 ring's on the\n"
      "slide, and how much tissue surrounds it. Fit it on validation predictions, apply it to others::\n\n"
      "    val = histocnn.inference.load_predictions_csv('runs/x/predictions_validation.csv')\n"
      "    labels = [r.label for r in val.manifest.rows]\n"
      "    head = histocnn.ContextModel.fit(val.manifest, val.p, labels)\n"
      "    p_context = head.predict(test_manifest, p_test)   # numpy array, one P per patch\n"
      "    print(head.weights)                               # {feature name: weight per SD}\n"
      "    same = histocnn.ContextModel.from_json(head.to_json())")
      .def_static(
          "fit",
          [](const data::Manifest& manifest, const std::vector<double>& p, const std::vector<int>& labels, double l2,
             const std::string& threshold_method, double target_sensitivity, double fixed_threshold) {
            inference::ContextFitOptions o;
            o.l2 = l2;
            o.threshold_method = threshold_method;
            o.target_sensitivity = target_sensitivity;
            o.fixed_threshold = fixed_threshold;
            py::gil_scoped_release release;
            return inference::ContextModel::fit(manifest, p, labels, o);
          },
          py::arg("manifest"), py::arg("p"), py::arg("labels"), py::arg("l2") = 1.0,
          py::arg("threshold_method") = "youden", py::arg("target_sensitivity") = 0.9,
          py::arg("fixed_threshold") = 0.5,
          "Fits on one label (0/1) and one P(IDC) per manifest row; ValueError for sizes that differ, one class,\n"
          "or fewer than 50 patches. The threshold for predict()'s output is chosen on the same data\n"
          "(youden, sensitivity with target_sensitivity, or fixed).")
      .def(
          "predict",
          [](const inference::ContextModel& c, const data::Manifest& manifest, const std::vector<double>& p) {
            return to_numpy(without_gil([&] { return c.predict(manifest, p); }));
          },
          py::arg("manifest"), py::arg("p"), "P(IDC) with context, one per manifest row.")
      .def("to_json", &inference::ContextModel::to_json)
      .def_static("from_json", &inference::ContextModel::from_json, py::arg("text"))
      .def("save", &inference::ContextModel::save, py::arg("path"))
      .def_static("load", &inference::ContextModel::load, py::arg("path"))
      .def_property_readonly(
          "weights",
          [](const inference::ContextModel& c) {
            py::dict out;
            for (int k = 0; k < inference::kContextFeatures; ++k) {
              out[py::str(inference::context_feature_names()[k])] = c.weights()[k];
            }
            return out;
          },
          "{feature name: weight on the standardised feature}, in context_feature_names() order.")
      .def_property_readonly("intercept", &inference::ContextModel::intercept)
      .def_property_readonly("mean",
                             [](const inference::ContextModel& c) {
                               return std::vector<double>(c.mean().begin(), c.mean().end());
                             },
                             "The fitting data's mean of each feature.")
      .def_property_readonly("scale",
                             [](const inference::ContextModel& c) {
                               return std::vector<double>(c.scale().begin(), c.scale().end());
                             },
                             "The fitting data's standard deviation of each feature (1 for a constant one).")
      .def_property_readonly("l2", &inference::ContextModel::l2)
      .def_property_readonly("threshold", &inference::ContextModel::threshold)
      .def_property_readonly("iterations", &inference::ContextModel::iterations)
      .def_property_readonly("fitted_patches", &inference::ContextModel::fitted_patches)
      .def("summary", &inference::ContextModel::summary)
      .def("__repr__", [](const inference::ContextModel& c) { return "<ContextModel: " + c.summary() + ">"; });
  py::class_<inference::PatchPredictions>(m, "PatchPredictions")
      .def_readonly("manifest", &inference::PatchPredictions::manifest)
      .def_property_readonly("p", [](const inference::PatchPredictions& r) { return to_numpy(r.p); });
  m.def("load_predictions_csv", &inference::load_predictions_csv, py::arg("path"), py::arg("root") = py::none(),
        "A run's predictions_<split>.csv as (manifest, p); x and y from the Kaggle file names.");
  m.def(
      "fit_context_model",
      [](const std::filesystem::path& run_dir, double l2, const std::string& threshold_method) {
        inference::ContextFitOptions o;
        o.l2 = l2;
        o.threshold_method = threshold_method;
        py::gil_scoped_release release;
        return inference::fit_context_model(run_dir, o);
      },
      py::arg("run_dir"), py::arg("l2") = 1.0, py::arg("threshold_method") = "youden",
      "A ContextModel fitted on <run_dir>/predictions_validation.csv.");
  m.def(
      "context_model_beside",
      [](const std::filesystem::path& model_dir) { return inference::context_model_beside(model_dir); },
      py::arg("model_dir"), "<run>/context_model.json for a model folder <run>/model[/<version>], or None.");
  m.def("context_model_for", &inference::context_model_for, py::arg("model_dir"), py::arg("choice") = "",
        "The ContextModel to map `model_dir`'s slides with: choice 'none' (None), a context_model.json path, or\n"
        "'' for the one beside the model when there is one (None otherwise).");

  // Whole slides and large images (inference/slide.h).
  const auto mat_to_numpy = [](const cv::Mat& mat) -> py::array {
    if (mat.empty()) return py::array_t<uint8_t>(std::vector<py::ssize_t>{0, 0});
    const cv::Mat c = mat.isContinuous() ? mat : mat.clone();
    std::vector<py::ssize_t> shape{c.rows, c.cols};
    if (c.channels() > 1) shape.push_back(c.channels());
    if (c.depth() == CV_32F) return py::array_t<float>(shape, c.ptr<float>());
    return py::array_t<uint8_t>(shape, c.ptr<uint8_t>());
  };
  py::class_<inference::SlideLevel>(m, "SlideLevel")
      .def_readonly("width", &inference::SlideLevel::width)
      .def_readonly("height", &inference::SlideLevel::height)
      .def_readonly("downsample", &inference::SlideLevel::downsample)
      .def("__repr__", [](const inference::SlideLevel& l) {
        return "SlideLevel(" + std::to_string(l.width) + "x" + std::to_string(l.height) + ", downsample " +
               std::to_string(l.downsample) + ")";
      });
  py::class_<inference::SlideReader>(m, "SlideReader",
                                     "A slide (OpenSlide formats) or a large PNG/JPEG/TIFF, read region by region.")
      .def(py::init([](const std::filesystem::path& file, int64_t max_image_pixels) {
             inference::SlideReaderOptions o;
             o.max_image_pixels = max_image_pixels;
             return inference::SlideReader::open(file, o);
           }),
           py::arg("file"), py::arg("max_image_pixels") = inference::SlideReaderOptions{}.max_image_pixels)
      .def_property_readonly("format", &inference::SlideReader::format)
      .def_property_readonly("path", &inference::SlideReader::path)
      .def_property_readonly("levels", &inference::SlideReader::levels)
      .def_property_readonly("width", &inference::SlideReader::width)
      .def_property_readonly("height", &inference::SlideReader::height)
      .def_property_readonly("mpp", &inference::SlideReader::mpp, "Microns per level-0 pixel from the file, or None")
      .def_property_readonly("mpp_source", &inference::SlideReader::mpp_source)
      .def_property_readonly("properties", &inference::SlideReader::properties)
      .def("best_level_for_downsample", &inference::SlideReader::best_level_for_downsample, py::arg("downsample"))
      .def(
          "read_region",
          [mat_to_numpy](inference::SlideReader& reader, int level, int64_t x, int64_t y, int width, int height) {
            cv::Mat region;
            {
              py::gil_scoped_release release;
              region = reader.read_region(level, x, y, width, height);
            }
            return mat_to_numpy(region);
          },
          py::arg("level"), py::arg("x"), py::arg("y"), py::arg("width"), py::arg("height"),
          "HxWx3 uint8 RGB: top-left (x, y) in level-0 pixels, width x height pixels of `level`; white outside.")
      .def(
          "read_downsampled",
          [mat_to_numpy](inference::SlideReader& reader, double downsample, int region_size) {
            cv::Mat image;
            {
              py::gil_scoped_release release;
              image = inference::read_downsampled(reader, downsample, region_size);
            }
            return mat_to_numpy(image);
          },
          py::arg("downsample"), py::arg("region_size") = 2048,
          "The whole image at `downsample` level-0 pixels per pixel, read region by region.");
  py::class_<inference::TissueMask>(m, "TissueMask")
      .def_property_readonly("mask", [mat_to_numpy](const inference::TissueMask& t) { return mat_to_numpy(t.mask); })
      .def_readonly("threshold", &inference::TissueMask::threshold)
      .def_readonly("tissue_fraction", &inference::TissueMask::tissue_fraction);
  m.def(
      "tissue_mask",
      [](const ImageArray& rgb, std::optional<double> threshold, double min_saturation, double max_saturation) {
        const auto mats = to_mats({rgb});
        return inference::tissue_mask(mats[0], threshold, min_saturation, max_saturation);
      },
      py::arg("rgb"), py::arg("threshold") = py::none(), py::arg("min_saturation") = 0.05,
      py::arg("max_saturation") = 0.15,
      "Tissue by Otsu's threshold on HSV saturation (clamped to [min_saturation, max_saturation]), or `threshold`.");
  py::class_<inference::SlideTile>(m, "SlideTile")
      .def_readonly("col", &inference::SlideTile::col)
      .def_readonly("row", &inference::SlideTile::row)
      .def_readonly("x", &inference::SlideTile::x)
      .def_readonly("y", &inference::SlideTile::y)
      .def_readonly("w", &inference::SlideTile::w)
      .def_readonly("h", &inference::SlideTile::h)
      .def_readonly("level", &inference::SlideTile::level)
      .def_readonly("level_x", &inference::SlideTile::level_x)
      .def_readonly("level_y", &inference::SlideTile::level_y)
      .def_readonly("tissue", &inference::SlideTile::tissue)
      .def_readonly("p", &inference::SlideTile::p)
      .def_readonly("p_context", &inference::SlideTile::p_context);
  py::class_<inference::SlideScore>(m, "SlideScore")
      .def_readonly("tiles", &inference::SlideScore::tiles)
      .def_readonly("tissue_tiles", &inference::SlideScore::tissue_tiles)
      .def_readonly("positive_tiles", &inference::SlideScore::positive_tiles)
      .def_readonly("positive_fraction", &inference::SlideScore::positive_fraction)
      .def_readonly("max_p", &inference::SlideScore::max_p)
      .def_readonly("mean_p", &inference::SlideScore::mean_p)
      .def_readonly("tissue_mm2", &inference::SlideScore::tissue_mm2)
      .def_readonly("positive_mm2", &inference::SlideScore::positive_mm2);
  py::class_<inference::SlideResult>(m, "SlideResult")
      .def_readonly("file", &inference::SlideResult::file)
      .def_readonly("format", &inference::SlideResult::format)
      .def_readonly("width", &inference::SlideResult::width)
      .def_readonly("height", &inference::SlideResult::height)
      .def_readonly("levels", &inference::SlideResult::levels)
      .def_readonly("mpp", &inference::SlideResult::mpp)
      .def_readonly("mpp_source", &inference::SlideResult::mpp_source)
      .def_readonly("target_mpp", &inference::SlideResult::target_mpp)
      .def_readonly("downsample", &inference::SlideResult::downsample)
      .def_readonly("level", &inference::SlideResult::level)
      .def_readonly("tile_size", &inference::SlideResult::tile_size)
      .def_readonly("tile_size_level0", &inference::SlideResult::tile_size_level0)
      .def_readonly("cols", &inference::SlideResult::cols)
      .def_readonly("rows", &inference::SlideResult::rows)
      .def_readonly("tissue_threshold", &inference::SlideResult::tissue_threshold)
      .def_readonly("threshold", &inference::SlideResult::threshold)
      .def_readonly("stain", &inference::SlideResult::stain)
      .def_readonly("tiles", &inference::SlideResult::tiles)
      .def_readonly("score", &inference::SlideResult::score)
      .def_readonly("smooth_radius", &inference::SlideResult::smooth_radius)
      .def_readonly("score_with_context", &inference::SlideResult::score_with_context)
      .def_readonly("thumbnail_downsample", &inference::SlideResult::thumbnail_downsample)
      .def_readonly("seconds", &inference::SlideResult::seconds)
      .def_readonly("peak_rss_mb", &inference::SlideResult::peak_rss_mb)
      .def_property_readonly("thumbnail", [mat_to_numpy](const inference::SlideResult& r) { return mat_to_numpy(r.thumbnail); })
      .def_property_readonly("mask", [mat_to_numpy](const inference::SlideResult& r) { return mat_to_numpy(r.mask); })
      .def("probability_grid",
           [mat_to_numpy](const inference::SlideResult& r, bool context) {
             return mat_to_numpy(r.probability_grid(context));
           },
           py::arg("context") = false,
           "P(IDC) on the tile grid, rows x cols float32, NaN where no tile was predicted; context=True: the "
           "smoothed P.")
      .def("summary_json", &inference::SlideResult::summary_json)
      .def("heatmap",
           [mat_to_numpy](const inference::SlideResult& r, bool context) {
             return mat_to_numpy(inference::draw_slide_heatmap(r, context));
           },
           py::arg("context") = false)
      .def("overlay", [mat_to_numpy](const inference::SlideResult& r, double alpha) {
             return mat_to_numpy(inference::draw_slide_overlay(r, alpha));
           }, py::arg("alpha") = 0.45);
  m.def(
      "predict_slide",
      [](const py::object& model, const std::filesystem::path& file, std::optional<double> mpp,
         std::optional<double> target_mpp, int tile_size, double min_tissue, std::optional<double> tissue_threshold,
         std::optional<double> threshold, int smooth_radius, int64_t batch_size, int region_size,
         int64_t max_image_pixels, bool progress, const std::string& device) {
        inference::SlideOptions o;
        o.mpp = mpp;
        o.target_mpp = target_mpp;
        o.tile_size = tile_size;
        o.min_tissue = min_tissue;
        o.tissue_threshold = tissue_threshold;
        o.threshold = threshold;
        o.smooth_radius = smooth_radius;
        o.batch_size = batch_size;
        o.region_size = region_size;
        o.reader.max_image_pixels = max_image_pixels;
        o.progress = progress;
        // A model folder, the C++ Predictor, or histocnn.Predictor (which holds one).
        py::object cpp = py::hasattr(model, "_cpp") ? model.attr("_cpp") : model;
        if (py::isinstance<inference::Predictor>(cpp)) {
          const auto& predictor = cpp.cast<const inference::Predictor&>();
          py::gil_scoped_release release;
          return inference::predict_slide(predictor, file, o);
        }
        const auto dir = py::cast<std::filesystem::path>(cpp);
        py::gil_scoped_release release;
        const inference::Predictor predictor(dir, device);
        return inference::predict_slide(predictor, file, o);
      },
      py::arg("model"), py::arg("file"), py::arg("mpp") = py::none(), py::arg("target_mpp") = py::none(),
      py::arg("tile_size") = 0, py::arg("min_tissue") = 0.5, py::arg("tissue_threshold") = py::none(),
      py::arg("threshold") = py::none(), py::arg("smooth_radius") = 0, py::arg("batch_size") = 64, py::arg("region_size") = 2048,
      py::arg("max_image_pixels") = inference::SlideReaderOptions{}.max_image_pixels, py::arg("progress") = false,
      py::arg("device") = "auto",
      "What `histocnn slide predict` computes: the tissue of a slide or large image tiled at the model's scale "
      "and each tissue tile's P(IDC). `model` is a model folder or a Predictor; `mpp` overrides the file's scale; "
      "`smooth_radius` > 0 adds each tile's P smoothed over its neighbourhood, scored apart (score_with_context).");
  m.def(
      "write_slide_outputs",
      [](const inference::SlideResult& r, const std::filesystem::path& out_dir) {
        const auto o = inference::write_slide_outputs(r, out_dir);
        std::map<std::string, std::filesystem::path> files{
            {"heatmap", o.heatmap}, {"overlay", o.overlay},   {"thumbnail", o.thumbnail},
            {"mask", o.mask},       {"tiles_csv", o.tiles_csv}, {"grid_npy", o.grid_npy},
            {"summary_json", o.summary_json}};
        if (!o.heatmap_context.empty()) files["heatmap_context"] = o.heatmap_context;
        return files;
      },
      py::arg("result"), py::arg("out_dir"), py::call_guard<py::gil_scoped_release>(),
      "heatmap.png, overlay.png, thumbnail.png, mask.png, tiles.csv, heatmap.npy, summary.json and, with "
      "smooth_radius, heatmap_context.png: their paths.");
}

}  // namespace histocnn::bindings
