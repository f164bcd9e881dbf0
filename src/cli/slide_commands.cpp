// `histocnn slide`: whole slides and large images. `predict` maps P(IDC) over a slide's tissue at
// the model's scale; `info` shows what a file holds (levels, scale, reader).
#include "commands.h"

#include "histocnn/core/device.h"
#include "histocnn/core/progress.h"
#include "histocnn/inference/slide.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <optional>

namespace histocnn::cli {

namespace {

namespace fs = std::filesystem;

void add_predict(CLI::App* slide) {
  struct Predict {
    fs::path file, model_dir, out;
    std::string device = "auto";
    bool tta = false;
    std::optional<double> mpp, target_mpp, tissue_threshold, threshold;
    inference::SlideOptions options;
  };
  auto p = std::make_shared<Predict>();
  auto* cmd = slide->add_subcommand(
      "predict", "P(IDC) over a slide's tissue at the model's scale: heatmap, overlay, tile CSV, slide score");
  cmd->add_option("file", p->file, "A slide OpenSlide reads (SVS, NDPI, MRXS, SCN, tiled pyramidal TIFF...) or a "
                                   "large PNG, JPEG or TIFF image")
      ->required();
  cmd->add_option("--model", p->model_dir, "Model folder (a run's model/, a serving base path, or a version folder)")
      ->required();
  cmd->add_option("--out", p->out, "Folder for heatmap.png, overlay.png, thumbnail.png, mask.png, tiles.csv, "
                                   "heatmap.npy and summary.json (default: <file name>_slide)");
  cmd->add_option("--mpp", p->mpp, "Microns per pixel of the file's full resolution; overrides its metadata, "
                                   "required when it has none (e.g. 0.25 for a 40x scan, 0.5 for 20x)");
  cmd->add_option("--target-mpp", p->target_mpp, "Scale to tile at (default: the model's, from its model.json; "
                                                 "4.0 for the Kaggle patches)");
  cmd->add_option("--tile-size", p->options.tile_size, "Tile side in pixels at the target scale (0: the model's "
                                                       "pad_to, 50 for the Kaggle patches)")
      ->capture_default_str();
  cmd->add_option("--min-tissue", p->options.min_tissue, "Predict tiles at least this fraction tissue")
      ->capture_default_str();
  cmd->add_option("--tissue-threshold", p->tissue_threshold,
                  "HSV saturation in [0, 1] above which a pixel is tissue (default: Otsu's, within [0.05, 0.15])");
  cmd->add_option("--threshold", p->threshold, "P(IDC) at which a tile counts as positive (default: the model's)");
  cmd->add_option("--smooth", p->options.smooth_radius,
                  "Context: also score each tile's P averaged over the tissue tiles within this many tiles of it "
                  "(tiles.csv p_idc_context, heatmap_context.png, summary.json score_with_context); 0: the tile alone")
      ->capture_default_str();
  cmd->add_option("--tile-batch", p->options.batch_size, "Tiles per forward pass")->capture_default_str();
  cmd->add_option("--region-size", p->options.region_size, "Pixels a side read from the slide at once (memory)")
      ->capture_default_str();
  cmd->add_option("--max-image-pixels", p->options.reader.max_image_pixels,
                  "PNG/JPEG: the largest image decoded whole (OpenCV cannot decode part of one)")
      ->capture_default_str();
  cmd->add_option("--device", p->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_flag("--tta", p->tta, "Test-time augmentation: the mean over the 8 flips and quarter turns");
  cmd->callback([p] {
    configure_threads();
    auto o = p->options;
    o.mpp = p->mpp;
    o.target_mpp = p->target_mpp;
    o.tissue_threshold = p->tissue_threshold;
    o.threshold = p->threshold;
    o.progress = progress_enabled_by_default();
    inference::Predictor predictor(p->model_dir, p->device);
    predictor.set_tta(p->tta);
    const auto r = inference::predict_slide(predictor, p->file, o);
    const fs::path out = p->out.empty() ? fs::path(p->file.filename().string() + "_slide") : p->out;
    inference::write_slide_outputs(r, out);
    std::printf("%s: %s, %lldx%lld px at %.4g um/px (%s), %zu levels\n", r.file.string().c_str(), r.format.c_str(),
                static_cast<long long>(r.width), static_cast<long long>(r.height), r.mpp, r.mpp_source.c_str(),
                r.levels.size());
    std::printf("tiles of %d px at %.4g um/px (%.1f px of level 0, read from level %d): %lld x %lld grid, %lld with "
                "tissue\n",
                r.tile_size, r.target_mpp, r.tile_size_level0, r.level, static_cast<long long>(r.cols),
                static_cast<long long>(r.rows), static_cast<long long>(r.score.tissue_tiles));
    std::printf("positive tiles (P >= %.3f): %lld of %lld = %.4f of the tissue (%.3f of %.3f mm^2); P max %.4f, "
                "mean %.4f\n",
                r.threshold, static_cast<long long>(r.score.positive_tiles),
                static_cast<long long>(r.score.tissue_tiles), r.score.positive_fraction, r.score.positive_mm2,
                r.score.tissue_mm2, r.score.max_p, r.score.mean_p);
    if (const auto& s = r.score_with_context) {
      std::printf("with context (each P averaged over the tissue tiles within %d place(s)): %lld positive = %.4f "
                  "of the tissue (%.3f mm^2); P max %.4f, mean %.4f\n",
                  r.smooth_radius, static_cast<long long>(s->positive_tiles), s->positive_fraction, s->positive_mm2,
                  s->max_p, s->mean_p);
    }
    std::printf("%.1f s, peak memory %.0f MB; wrote %s\n", r.seconds, r.peak_rss_mb, out.string().c_str());
  });
}

void add_info(CLI::App* slide) {
  struct Info {
    fs::path file;
    inference::SlideReaderOptions options;
  };
  auto in = std::make_shared<Info>();
  auto* cmd = slide->add_subcommand("info", "What a slide or large image holds: reader, levels, scale");
  cmd->add_option("file", in->file, "A slide or a large PNG, JPEG or TIFF image")->required();
  cmd->callback([in] {
    auto reader = inference::SlideReader::open(in->file, in->options);
    std::printf("%s\nformat: %s\n", in->file.string().c_str(), reader->format().c_str());
    if (reader->mpp()) {
      std::printf("mpp: %.5g um/px (%s)\n", *reader->mpp(), reader->mpp_source().c_str());
    } else {
      std::printf("mpp: unknown (pass --mpp to slide predict)\n");
    }
    for (size_t i = 0; i < reader->levels().size(); ++i) {
      const auto& l = reader->levels()[i];
      std::printf("level %zu: %lld x %lld, downsample %.4g\n", i, static_cast<long long>(l.width),
                  static_cast<long long>(l.height), l.downsample);
    }
    for (const auto& [key, value] : reader->properties()) std::printf("%s = %s\n", key.c_str(), value.c_str());
  });
}

}  // namespace

void add_slide_commands(CLI::App& app) {
  auto* slide = app.add_subcommand("slide", "Whole slides and large images: tissue maps of P(IDC) at the model's scale");
  slide->require_subcommand(1);
  add_predict(slide);
  add_info(slide);
}

}  // namespace histocnn::cli
