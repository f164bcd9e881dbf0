#pragma once
// Whole slides and large images: read region by region, find the tissue, cut it into tiles at the
// scale the model was trained at, predict every tissue tile through the one inference path and
// map the result.
//
//   histocnn::inference::Predictor predictor("runs/x/model");
//   histocnn::inference::SlideOptions o;               // o.mpp = 0.25 when the file lacks it
//   auto result = histocnn::inference::predict_slide(predictor, "case.svs", o);
//   result.score.positive_fraction;                    // tissue tiles with P(IDC) >= threshold
//   histocnn::inference::write_slide_outputs(result, "case_map");   // heatmap, overlay, CSV, JSON
//
// Readers. OpenSlide reads the slide formats (Aperio SVS, Hamamatsu NDPI, MIRAX MRXS, Leica SCN,
// Ventana BIF, Philips TIFF, tiled pyramidal TIFF) at each of their pyramid levels. libtiff reads
// the TIFFs OpenSlide does not (striped, or tiled without a pyramid), strip by strip or tile by
// tile. PNG, JPEG and BMP are read with OpenCV, which cannot decode part of such a file: a PNG is
// decoded whole (3 bytes a pixel), a JPEG at 1/2, 1/4 or 1/8 of its size where the model's scale
// allows (libjpeg scales while decoding), and a file whose decoded size would exceed
// SlideReaderOptions::max_image_pixels is refused with a message saying to convert it to a tiled
// pyramidal TIFF. The scale comes from the file: OpenSlide's openslide.mpp-x, else the TIFF's
// XResolution (in centimetres or inches), a PNG's pHYs chunk or a JPEG's JFIF density. A value
// coarser than 100 um/px (the 72 or 96 dpi image editors write) is not a microscope's and is
// ignored; SlideOptions::mpp overrides the file.
//
// Memory. Nothing reads level 0 whole. The tissue mask is computed on a thumbnail of at most
// 2048 pixels a side (8192 when tiles would otherwise get fewer than 4 mask pixels a side; a
// pyramid level of 1024 to 2048 pixels is taken as it is), built region by region from the best
// level. Tiles are read in regions of at most region_size x region_size pixels of the pyramid
// level closest to (and not coarser than) the model's scale (at least one tile), only where
// there is tissue. Peak memory beyond the model is therefore about: one region (region_size^2 x
// 7 bytes: OpenSlide's ARGB plus RGB; 29 MB at 2048), the libtiff reader's cache of decoded
// strips or tiles (64 MB), the thumbnail and mask (4 bytes a pixel: 17 MB at 2048 a side), one
// batch of tiles (batch_size x 3 x image_size^2 floats) and the tile list; for a PNG, or a JPEG
// that cannot be decoded reduced, the decoded image as well. OpenSlide keeps its own tile cache
// (32 MB). A TIFF whose strips or tiles exceed 512 MB decoded (a compressed image in one strip)
// is refused. The peak resident size of the process is reported (SlideResult::peak_rss_mb).
#include "histocnn/inference/predictor.h"

#include <opencv2/core.hpp>

#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace histocnn::inference {

struct SlideLevel {
  int64_t width = 0, height = 0;
  double downsample = 1;  ///< level 0 pixels per pixel of this level
};

struct SlideReaderOptions {
  /// PNG and JPEG: the most pixels a decoded image may have (3 bytes each); beyond it the file is
  /// refused, since OpenCV decodes these formats whole.
  int64_t max_image_pixels = 500'000'000;
  /// libtiff reader: bytes of decoded strips or tiles kept for the next region.
  int64_t cache_bytes = 64 << 20;
};

/// A large image read region by region. open() chooses the reader from the file's content. A
/// reader serves one thread at a time.
class SlideReader {
 public:
  /// Opens `file`. Throws NotFoundError when it does not exist, std::runtime_error when it cannot
  /// be read (OpenSlide's or libtiff's reason in the message), std::invalid_argument for a format
  /// that is neither a slide OpenSlide reads nor a PNG, JPEG, BMP or TIFF image, or for a PNG or
  /// JPEG too large to decode (see SlideReaderOptions::max_image_pixels).
  static std::unique_ptr<SlideReader> open(const std::filesystem::path& file, const SlideReaderOptions& options = {});
  virtual ~SlideReader() = default;

  /// "openslide:<vendor>" (e.g. openslide:aperio, openslide:generic-tiff), "tiff", "png", "jpeg", "bmp".
  const std::string& format() const { return format_; }
  const std::filesystem::path& path() const { return path_; }
  /// Level 0 first; downsamples ascending.
  const std::vector<SlideLevel>& levels() const { return levels_; }
  int64_t width() const { return levels_.front().width; }
  int64_t height() const { return levels_.front().height; }
  /// Microns per level-0 pixel from the file's metadata, when it has a plausible one.
  std::optional<double> mpp() const { return mpp_; }
  /// Where mpp() came from (e.g. "openslide.mpp-x", "tiff XResolution"); empty when absent.
  const std::string& mpp_source() const { return mpp_source_; }
  /// Metadata worth reporting (OpenSlide's properties such as openslide.objective-power).
  const std::map<std::string, std::string>& properties() const { return properties_; }

  /// The level to read for `downsample`: the coarsest whose downsample does not exceed it (as
  /// openslide_get_best_level_for_downsample chooses), level 0 when every level is coarser. The
  /// PNG/JPEG reader moves on to coarser levels while the chosen one is too large to decode.
  virtual int best_level_for_downsample(double downsample) const;
  /// An RGB uint8 region of `level`: top-left at (x, y) in level-0 pixels, `w` x `h` pixels of the
  /// level. What lies outside the image, or is transparent, is white (background glass).
  virtual cv::Mat read_region(int level, int64_t x, int64_t y, int w, int h) = 0;

 protected:
  SlideReader() = default;
  std::string format_;
  std::filesystem::path path_;
  std::vector<SlideLevel> levels_;
  std::optional<double> mpp_;
  std::string mpp_source_;
  std::map<std::string, std::string> properties_;
};

/// The whole image at `downsample` (level-0 pixels per output pixel, >= 1), RGB uint8 of
/// round(width / downsample) x round(height / downsample), read region by region from the best
/// level and shrunk with area averaging: memory is the result plus one region.
cv::Mat read_downsampled(SlideReader& reader, double downsample, int region_size = 2048, bool progress = false);

struct TissueMask {
  cv::Mat mask;            ///< CV_8U, 255 where there is tissue, the size of the image
  double threshold = 0;    ///< the saturation threshold used, in [0, 1]
  double tissue_fraction = 0;
};

/// Tissue by its colour: Otsu's threshold on the HSV saturation of an RGB image (median-filtered),
/// clamped to [min_saturation, max_saturation], since glass is grey (saturation about 0 to 0.05)
/// and the palest stained tissue is about 0.15: the clamp keeps Otsu from splitting an image that
/// is all glass, or all tissue, in two. `threshold` (in [0, 1]) replaces Otsu's.
TissueMask tissue_mask(const cv::Mat& rgb, std::optional<double> threshold = std::nullopt,
                       double min_saturation = 0.05, double max_saturation = 0.15);

struct SlideOptions {
  /// Microns per level-0 pixel; overrides the file's. Required when the file has none.
  std::optional<double> mpp;
  /// The scale tiles are cut at; default the model's (its preprocessing.mpp).
  std::optional<double> target_mpp;
  /// Tile side in pixels at target_mpp; 0: the model's pad_to (50, the Kaggle patch).
  int tile_size = 0;
  /// A tile is predicted when at least this fraction of it is tissue.
  double min_tissue = 0.5;
  /// Saturation threshold of the tissue mask in [0, 1]; default Otsu's (see tissue_mask).
  std::optional<double> tissue_threshold;
  /// P(IDC) at or above which a tile counts as positive; default the model's threshold.
  std::optional<double> threshold;
  /// Context: besides each tile's own P, the mean P of the tissue tiles in the (2r+1)^2 window
  /// around it (as `histocnn maps --smooth`), scored apart (SlideResult::score_with_context);
  /// 0: the tile alone.
  int smooth_radius = 0;
  int64_t batch_size = 64;   ///< tiles per forward pass
  int region_size = 2048;    ///< pixels a side read at once from the slide
  SlideReaderOptions reader;
  bool progress = false;     ///< progress bars on stderr
};

/// One tile. Level-0 coordinates locate it in the slide; level coordinates in the level read.
struct SlideTile {
  int64_t col = 0, row = 0;         ///< place in the tile grid
  int64_t x = 0, y = 0, w = 0, h = 0;  ///< level-0 rectangle (w, h smaller at the right and bottom edges)
  int level = 0;
  int64_t level_x = 0, level_y = 0;  ///< top-left in the level read
  double tissue = 0;                 ///< tissue fraction
  double p = 0;                      ///< P(IDC-positive), the tile alone
  double p_context = std::numeric_limits<double>::quiet_NaN();  ///< smoothed P; NaN without smooth_radius
};

struct SlideScore {
  int64_t tiles = 0;           ///< tiles in the grid
  int64_t tissue_tiles = 0;    ///< tiles predicted (tissue fraction >= min_tissue)
  int64_t positive_tiles = 0;  ///< tissue tiles with P >= threshold
  double positive_fraction = 0;  ///< positive_tiles / tissue_tiles: the slide's tumour burden
  double max_p = 0, mean_p = 0;  ///< over the tissue tiles
  double tissue_mm2 = 0, positive_mm2 = 0;  ///< area of the tissue tiles and of the positive ones
};

struct SlideResult {
  std::filesystem::path file;
  std::string format;
  int64_t width = 0, height = 0;
  std::vector<SlideLevel> levels;
  std::map<std::string, std::string> properties;
  double mpp = 0;              ///< microns per level-0 pixel used
  std::string mpp_source;      ///< "option" (SlideOptions::mpp) or the metadata it came from
  double target_mpp = 0;       ///< the tiles' scale
  double downsample = 0;       ///< target_mpp / mpp
  int level = 0;               ///< the level tiles were read from
  int tile_size = 0;           ///< tile side at target_mpp
  double tile_size_level0 = 0; ///< tile side in level-0 pixels
  int64_t cols = 0, rows = 0;  ///< the tile grid
  double tissue_threshold = 0;
  double min_tissue = 0;
  double threshold = 0;
  std::string model;           ///< the bundle's folder
  std::string stain;           ///< the stain normalisation applied (empty: none)
  std::vector<SlideTile> tiles;  ///< the tissue tiles, row by row
  SlideScore score;            ///< from each tile alone
  int smooth_radius = 0;       ///< SlideOptions::smooth_radius
  std::optional<SlideScore> score_with_context;  ///< from the smoothed P, when smooth_radius > 0
  cv::Mat thumbnail;           ///< RGB, thumbnail_downsample level-0 pixels per pixel
  cv::Mat mask;                ///< the tissue mask over the thumbnail
  double thumbnail_downsample = 1;
  double seconds = 0;
  double peak_rss_mb = 0;      ///< the process's peak resident memory at the end

  /// The JSON summary (everything but the tiles and images).
  std::string summary_json() const;
  /// P(IDC) on the tile grid, rows x cols float32, NaN where a tile was not predicted; the
  /// smoothed P with `context` (NaN throughout without smooth_radius).
  cv::Mat probability_grid(bool context = false) const;
};

/// Reads `file`, masks its tissue, tiles it at the model's scale and predicts every tissue tile
/// with `predictor` (predict_proba, batch_size tiles at a time; its TTA setting applies). A model
/// whose stain normalisation fits per slide gets this slide's statistics, fitted once on up to 256
/// of its tissue tiles.
/// Throws std::invalid_argument when the scale is unknown (pass --mpp / SlideOptions::mpp) or no
/// tile holds enough tissue, besides SlideReader::open's errors.
SlideResult predict_slide(const Predictor& predictor, const std::filesystem::path& file,
                          const SlideOptions& options = {});

/// The tile grid's P(IDC) as a jet heatmap over the thumbnail's extent (white where no tile was
/// predicted), with a colour bar; RGB uint8. `context`: the smoothed P (needs smooth_radius > 0).
cv::Mat draw_slide_heatmap(const SlideResult& result, bool context = false);
/// The thumbnail with the heatmap blended over its tissue tiles and positive tiles outlined,
/// with a colour bar; RGB uint8.
cv::Mat draw_slide_overlay(const SlideResult& result, double alpha = 0.45);

struct SlideOutputs {
  std::filesystem::path heatmap, overlay, thumbnail, mask, tiles_csv, grid_npy, summary_json;
  std::filesystem::path heatmap_context;  ///< empty without smooth_radius
};

/// Writes heatmap.png, overlay.png, thumbnail.png, mask.png, tiles.csv (col, row, x, y, w, h,
/// level, level_x, level_y, tissue, p_idc, positive, and with smooth_radius p_idc_context and
/// positive_context), heatmap.npy (probability_grid), summary.json and, with smooth_radius,
/// heatmap_context.png into `out_dir`, each atomically.
SlideOutputs write_slide_outputs(const SlideResult& result, const std::filesystem::path& out_dir);

}  // namespace histocnn::inference
