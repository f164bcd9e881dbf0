#include "histocnn/core/error.h"
#include "histocnn/data/stain.h"
#include "histocnn/inference/saved_model.h"
#include "histocnn/inference/slide.h"
#include "histocnn/io/atomic_file.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <tiffio.h>
#include <torch/torch.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>

using namespace histocnn;
namespace fs = std::filesystem;

namespace {

// Colours of the synthetic slides: glass, pink stroma, purple "tumour".
const cv::Scalar kGlass(245, 245, 245), kStroma(230, 160, 200), kTumour(110, 50, 150);

// A bundle whose prediction is a known function of colour: simple_cnn with hand-set weights. Its
// first convolution turns a pixel into relu(0.5 - green) (0.30 on the tumour colour, 0 on stroma
// and glass), the next three pass that channel through (centre tap 1, identity BatchNorm, max
// pooling), the head reads the pooled value f and gives logit 60 (f - 0.15) for class 1. So
// P(IDC) is about 1 on a tile that is purple and about 0 on one that is pink or glass, and it
// crosses 0.5 when somewhat under half of the tile is purple (max pooling widens the purple).
fs::path purple_detector_bundle(const fs::path& dir, std::optional<data::StainNormaliser> stain = std::nullopt) {
  models::Classifier model(
      models::ClassifierOptions().backbone("simple_cnn").hidden1(4).hidden2(4).dropout(0).freeze_backbone(true));
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters()) p.value().zero_();
  for (auto& b : model->named_buffers()) b.value().zero_();
  for (auto& b : model->named_buffers()) {
    if (b.key().find("running_var") != std::string::npos) b.value().fill_(1.0);
  }
  for (auto& p : model->named_parameters()) {
    const auto& name = p.key();
    auto& t = p.value();
    // BatchNorm scales 1; conv blocks at features.0, 4, 8, 12 and their BN at 1, 5, 9, 13.
    if (t.dim() == 1 && name.find("backbone.features.") == 0 && name.find(".weight") != std::string::npos) t.fill_(1.0);
    if (name == "backbone.features.0.weight") t[0][1][1][1] = -1.0;  // -green
    if (name == "backbone.features.1.bias") t[0] = 0.5;
    for (const char* conv : {"backbone.features.4.weight", "backbone.features.8.weight", "backbone.features.12.weight"}) {
      if (name == conv) t[0][0][1][1] = 1.0;
    }
    if (name == "head.fc1.weight" || name == "head.fc2.weight") t[0][0] = 1.0;
    if (name == "head.logits.weight") t[1][0] = 60.0;
    if (name == "head.logits.bias") t[1] = -60.0 * 0.15;
  }
  model->eval();
  inference::ModelCard card;
  card.preprocessing.image_size = 32;
  card.preprocessing.pad_to = 50;
  card.preprocessing.mpp = 4.0;
  card.preprocessing.mean = {0, 0, 0};
  card.preprocessing.std = {1, 1, 1};
  card.preprocessing.stain = std::move(stain);
  card.threshold = 0.5;
  inference::save_model(model, card, dir / "1");
  return dir;
}

struct Layout {
  int width, height;
  cv::Rect tumour;  // level-0 pixels
};

// Level 0 of a slide: glass, an elliptic piece of stroma and a purple rectangle inside it.
cv::Mat draw_slide(const Layout& l) {
  cv::Mat img(l.height, l.width, CV_8UC3, kGlass);
  cv::ellipse(img, cv::Point(l.width / 2, l.height / 2), cv::Size(l.width * 45 / 100, l.height * 42 / 100), 0, 0, 360,
              kStroma, cv::FILLED);
  cv::rectangle(img, l.tumour, kTumour, cv::FILLED);
  return img;
}

// A tiled (tile 256) or striped (64 rows) RGB TIFF with these levels, deflate-compressed, its
// resolution in pixels per centimetre for `mpp` um/px at level 0.
void write_tiff(const fs::path& path, const std::vector<cv::Mat>& levels, double mpp, bool tiled) {
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  REQUIRE(tif != nullptr);
  for (size_t i = 0; i < levels.size(); ++i) {
    const cv::Mat& img = levels[i];
    const double ds = static_cast<double>(levels[0].cols) / img.cols;
    TIFFSetField(tif, TIFFTAG_SUBFILETYPE, i == 0 ? 0 : FILETYPE_REDUCEDIMAGE);
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, img.cols);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, img.rows);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 3);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
    TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
    TIFFSetField(tif, TIFFTAG_XRESOLUTION, static_cast<float>(1e4 / (mpp * ds)));
    TIFFSetField(tif, TIFFTAG_YRESOLUTION, static_cast<float>(1e4 / (mpp * ds)));
    if (tiled) {
      const int tile = 256;
      TIFFSetField(tif, TIFFTAG_TILEWIDTH, tile);
      TIFFSetField(tif, TIFFTAG_TILELENGTH, tile);
      std::vector<uint8_t> buf(static_cast<size_t>(tile) * tile * 3);
      for (int y = 0; y < img.rows; y += tile) {
        for (int x = 0; x < img.cols; x += tile) {
          std::fill(buf.begin(), buf.end(), 0);
          const int w = std::min(tile, img.cols - x), h = std::min(tile, img.rows - y);
          for (int r = 0; r < h; ++r) std::memcpy(&buf[static_cast<size_t>(r) * tile * 3], img.ptr(y + r) + 3 * x, w * 3);
          REQUIRE(TIFFWriteEncodedTile(tif, TIFFComputeTile(tif, x, y, 0, 0), buf.data(), buf.size()) >= 0);
        }
      }
    } else {
      TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 64);
      for (int r = 0; r < img.rows; ++r) REQUIRE(TIFFWriteScanline(tif, const_cast<uint8_t*>(img.ptr(r)), r, 0) == 1);
    }
    REQUIRE(TIFFWriteDirectory(tif));
  }
  TIFFClose(tif);
}

std::vector<cv::Mat> pyramid(const cv::Mat& rgb, int count) {
  std::vector<cv::Mat> levels{rgb};
  for (int i = 1; i < count; ++i) {
    cv::Mat smaller;
    cv::resize(levels.back(), smaller, cv::Size(levels.back().cols / 2, levels.back().rows / 2), 0, 0, cv::INTER_AREA);
    levels.push_back(smaller);
  }
  return levels;
}

void write_rgb(const fs::path& path, const cv::Mat& rgb, const std::vector<int>& params = {}) {
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  REQUIRE(cv::imwrite(path.string(), bgr, params));
}

double test_peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;
}

double overlap(const inference::SlideTile& t, const cv::Rect& r) {
  const cv::Rect tile(static_cast<int>(t.x), static_cast<int>(t.y), static_cast<int>(t.w), static_cast<int>(t.h));
  return (tile & r).area() / static_cast<double>(tile.area());
}

// The positives are where the tumour is: every tile mostly inside it is positive, every tile that
// does not touch it is negative, and every positive tile overlaps it.
void check_positives_in(const inference::SlideResult& r, const cv::Rect& tumour) {
  int inside = 0, outside = 0;
  for (const auto& t : r.tiles) {
    const double o = overlap(t, tumour);
    INFO("tile " << t.col << "," << t.row << " overlap " << o << " P " << t.p);
    if (o >= 0.75) {
      CHECK(t.p >= r.threshold);
      ++inside;
    }
    if (o == 0) {
      CHECK(t.p < r.threshold);
      ++outside;
    }
    if (t.p >= r.threshold) CHECK(o >= 0.2);
  }
  CHECK(inside >= 2);
  CHECK(outside >= 4);
}

}  // namespace

TEST_CASE("A pyramidal TIFF is tiled at the model's scale from the right level and its tumour is found", "[slide]") {
  test::TempDir dir;
  const auto model = purple_detector_bundle(dir / "model");
  inference::Predictor predictor(model, "cpu");
  // 0.5 um/px at level 0, so the model's 4 um/px is a downsample of 8 and a 50 px tile is 400
  // pixels of level 0; the levels are 1, 2 and 4, so tiles come from level 2, shrunk twice.
  const Layout layout{3200, 2400, cv::Rect(1300, 900, 1200, 700)};
  const cv::Mat level0 = draw_slide(layout);
  const auto tiff = dir / "slide.tif";
  write_tiff(tiff, pyramid(level0, 3), 0.5, true);

  auto reader = inference::SlideReader::open(tiff);
  CHECK(reader->format() == "openslide:generic-tiff");
  REQUIRE(reader->levels().size() == 3);
  CHECK(reader->levels()[2].width == 800);
  CHECK(reader->levels()[2].downsample == Approx(4.0));
  REQUIRE(reader->mpp().has_value());
  CHECK(*reader->mpp() == Approx(0.5).epsilon(1e-4));
  CHECK(reader->best_level_for_downsample(8.0) == 2);
  CHECK(reader->best_level_for_downsample(3.9) == 1);
  CHECK(reader->best_level_for_downsample(0.5) == 0);
  // The reader's level 2 region at the tumour's corner, against the drawing itself.
  const cv::Mat region = reader->read_region(2, 1300 - 40, 900 - 40, 20, 20);  // level-0 (1260, 860), 20 px of level 2
  CHECK(region.at<cv::Vec3b>(2, 2) == cv::Vec3b(230, 160, 200));
  CHECK(region.at<cv::Vec3b>(17, 17) == cv::Vec3b(110, 50, 150));
  const cv::Mat full = reader->read_region(0, 1290, 890, 20, 20);
  CHECK(full.at<cv::Vec3b>(5, 5) == cv::Vec3b(230, 160, 200));
  CHECK(full.at<cv::Vec3b>(15, 15) == cv::Vec3b(110, 50, 150));
  const cv::Mat outside = reader->read_region(2, 3100, 2300, 40, 40);  // past the right and bottom edges
  CHECK(outside.at<cv::Vec3b>(39, 39) == cv::Vec3b(255, 255, 255));

  inference::SlideOptions o;
  o.region_size = 256;  // several regions, so tiles are cut from different reads
  const auto r = inference::predict_slide(predictor, tiff, o);
  CHECK(r.mpp == Approx(0.5).epsilon(1e-4));
  // OpenSlide 3.4 leaves openslide.mpp-x unset for a generic TIFF (4.0 sets it from the same tag).
  CHECK((r.mpp_source == "tiff.XResolution" || r.mpp_source == "openslide.mpp-x"));
  CHECK(r.target_mpp == 4.0);
  CHECK(r.downsample == Approx(8.0).epsilon(1e-4));
  CHECK(r.level == 2);
  CHECK(r.tile_size == 50);
  CHECK(r.tile_size_level0 == Approx(400.0).epsilon(1e-4));
  CHECK(r.cols == 8);
  CHECK(r.rows == 6);
  // Tissue: the ellipse covers 0.9 x 0.84 x pi/4 = 59 % of the slide; corner tiles are glass.
  CHECK(r.tissue_threshold >= 0.05);
  CHECK(r.tissue_threshold <= 0.15);
  CHECK(cv::countNonZero(r.mask) / static_cast<double>(r.mask.total()) == Approx(0.594).margin(0.02));
  CHECK(r.score.tissue_tiles > 20);
  CHECK(r.score.tissue_tiles < 48);
  for (const auto& t : r.tiles) CHECK(t.tissue >= 0.5);
  check_positives_in(r, layout.tumour);
  CHECK(r.score.positive_tiles >= 4);
  CHECK(r.score.positive_fraction == Approx(static_cast<double>(r.score.positive_tiles) / r.score.tissue_tiles));
  CHECK(r.score.max_p > 0.99);
  CHECK(r.score.tissue_mm2 == Approx(r.score.tissue_tiles * 0.04).epsilon(1e-6));  // 200 um tiles
  for (const auto& t : r.tiles) {
    CHECK(t.level == 2);
    CHECK(t.level_x == t.x / 4);
  }

  // Outputs: the CSV lists the tiles, the grid holds their P, the summary the numbers.
  const auto out = inference::write_slide_outputs(r, dir / "out");
  const auto summary = nlohmann::json::parse(io::read_file(out.summary_json));
  CHECK(summary["level"] == 2);
  CHECK(summary["score"]["positive_tiles"] == r.score.positive_tiles);
  CHECK(summary["grid"]["cols"] == 8);
  std::ifstream csv(out.tiles_csv);
  std::string line;
  int lines = 0;
  while (std::getline(csv, line)) ++lines;
  CHECK(lines == r.score.tissue_tiles + 1);
  const cv::Mat heat = cv::imread(out.heatmap.string());
  CHECK(heat.rows == r.thumbnail.rows);
  CHECK(heat.cols > r.thumbnail.cols);  // and a colour bar
  const cv::Mat grid = r.probability_grid();
  CHECK(std::isnan(grid.at<float>(0, 0)));  // a glass corner
  CHECK(cv::imread(out.overlay.string()).size() == heat.size());
  CHECK(summary["smooth_radius"] == 0);
  CHECK(summary["score_with_context"].is_null());
  CHECK(out.heatmap_context.empty());
  CHECK(std::isnan(r.tiles.front().p_context));

  {  // context: each tile's P also averaged over the tissue tiles around it, scored apart
    inference::SlideOptions oc = o;
    oc.smooth_radius = 1;
    const auto rc = inference::predict_slide(predictor, tiff, oc);
    REQUIRE(rc.tiles.size() == r.tiles.size());
    REQUIRE(rc.score_with_context.has_value());
    double sum = 0;
    int64_t positive = 0;
    for (const auto& t : rc.tiles) {
      // The oracle: the mean over the tiles at most one place away on the grid, found by search.
      double s = 0;
      int n = 0;
      for (const auto& u : rc.tiles) {
        if (std::abs(u.col - t.col) <= 1 && std::abs(u.row - t.row) <= 1) {
          s += u.p;
          ++n;
        }
      }
      CHECK(t.p_context == Approx(s / n).margin(1e-12));
      sum += t.p_context;
      positive += t.p_context >= rc.threshold;
    }
    for (size_t i = 0; i < r.tiles.size(); ++i) CHECK(rc.tiles[i].p == Approx(r.tiles[i].p).margin(1e-6));
    CHECK(rc.score.positive_tiles == r.score.positive_tiles);  // the tile-alone score stays as it was
    CHECK(rc.score_with_context->positive_tiles == positive);
    CHECK(rc.score_with_context->mean_p == Approx(sum / rc.tiles.size()));
    CHECK(rc.score_with_context->tissue_tiles == rc.score.tissue_tiles);
    const auto outc = inference::write_slide_outputs(rc, dir / "out-context");
    const auto sc = nlohmann::json::parse(io::read_file(outc.summary_json));
    CHECK(sc["smooth_radius"] == 1);
    CHECK(sc["score_with_context"]["positive_tiles"] == positive);
    CHECK(cv::imread(outc.heatmap_context.string()).size() == heat.size());
    std::ifstream csvc(outc.tiles_csv);
    std::getline(csvc, line);
    CHECK(line == "col,row,x,y,w,h,level,level_x,level_y,tissue,p_idc,positive,p_idc_context,positive_context");
    oc.smooth_radius = -1;
    CHECK_THROWS_WITH(inference::predict_slide(predictor, tiff, oc), Catch::Contains("--smooth"));
  }

  {  // --mpp overrides the file's scale
    inference::SlideOptions o2;
    o2.mpp = 1.0;  // now a downsample of 4: level 2 read as is, tiles of 200 level-0 pixels
    const auto r2 = inference::predict_slide(predictor, tiff, o2);
    CHECK(r2.mpp_source == "option");
    CHECK(r2.level == 2);
    CHECK(r2.tile_size_level0 == Approx(200.0));
    CHECK(r2.cols == 16);
    CHECK(r2.rows == 12);
    check_positives_in(r2, layout.tumour);
  }

  {  // a striped TIFF without a pyramid, read by libtiff, gives the same tiles
    const auto striped = dir / "striped.tif";
    write_tiff(striped, {level0}, 0.5, false);
    auto flat = inference::SlideReader::open(striped);
    CHECK(flat->format() == "tiff");
    REQUIRE(flat->levels().size() == 1);
    CHECK(flat->mpp().value_or(0) == Approx(0.5).epsilon(1e-4));
    CHECK(flat->read_region(0, 1290, 890, 20, 20).at<cv::Vec3b>(15, 15) == cv::Vec3b(110, 50, 150));
    const auto r3 = inference::predict_slide(predictor, striped, o);
    CHECK(r3.level == 0);
    // The thumbnails differ (level 1 of the pyramid, level 0 shrunk 1.56 times), so a tile at the
    // tissue cut-off may be in one list only; every other tile is in both, with the same call.
    std::map<std::pair<int64_t, int64_t>, const inference::SlideTile*> pyramid_tiles;
    for (const auto& t : r.tiles) pyramid_tiles[{t.col, t.row}] = &t;
    size_t common = 0;
    for (const auto& t : r3.tiles) {
      const auto it = pyramid_tiles.find({t.col, t.row});
      if (it == pyramid_tiles.end()) {
        CHECK(t.tissue < 0.55);
        continue;
      }
      ++common;
      CHECK(t.tissue == Approx(it->second->tissue).margin(0.05));
      CHECK((t.p >= 0.5) == (it->second->p >= 0.5));
    }
    for (const auto& t : r.tiles) {
      if (std::none_of(r3.tiles.begin(), r3.tiles.end(), [&](const auto& u) { return u.col == t.col && u.row == t.row; })) {
        CHECK(t.tissue < 0.55);
      }
    }
    CHECK(common + 2 >= std::max(r.tiles.size(), r3.tiles.size()));
  }

  {  // a model whose stain normalisation fits per slide gets one fit for the whole slide
    const auto norm = data::StainNormaliser::fit(data::StainMethod::reinhard, {level0}, data::StainFit::slide);
    inference::Predictor stained(purple_detector_bundle(dir / "stained", norm), "cpu");
    const auto rs = inference::predict_slide(stained, tiff, o);
    CHECK(rs.stain == "reinhard fitted on " + std::to_string(r.tiles.size()) + " tiles of the slide");
    CHECK(rs.tiles.size() == r.tiles.size());
  }

  {  // a damaged TIFF is refused, naming the file
    const std::string bytes = io::read_file(tiff);
    const auto cut = dir / "cut.tif";
    test::write_bytes(cut, bytes.substr(0, bytes.size() / 3));
    CHECK_THROWS_WITH(inference::predict_slide(predictor, cut, o), Catch::Contains("cut.tif"));
    CHECK_THROWS_AS(inference::predict_slide(predictor, cut, o), std::runtime_error);
  }
}

TEST_CASE("A large PNG and a JPEG are read at the model's scale, within a stated memory bound", "[slide]") {
  test::TempDir dir;
  inference::Predictor predictor(purple_detector_bundle(dir / "model"), "cpu");
  const Layout layout{5000, 4000, cv::Rect(3100, 700, 1100, 1300)};
  const cv::Mat level0 = draw_slide(layout);
  const auto png = dir / "large.png";
  write_rgb(png, level0, {cv::IMWRITE_PNG_COMPRESSION, 1});

  // A PNG records no microscope scale here: the message says what to pass.
  CHECK_THROWS_WITH(inference::predict_slide(predictor, png), Catch::Contains("--mpp"));
  inference::SlideOptions o;
  o.mpp = 1.0;  // tiles of 200 px
  const auto r = inference::predict_slide(predictor, png, o);
  CHECK(r.format == "png");
  CHECK(r.level == 0);
  CHECK(r.cols == 25);
  CHECK(r.rows == 20);
  check_positives_in(r, layout.tumour);

  // OpenCV decodes a PNG whole: beyond the limit it is refused, pointing to a tiled TIFF.
  o.reader.max_image_pixels = 1'000'000;
  CHECK_THROWS_WITH(inference::predict_slide(predictor, png, o), Catch::Contains("tiled pyramidal TIFF"));

  // A JPEG decodes reduced: at 0.5 um/px the downsample is 8, read from the 1/8 decode.
  const auto jpeg = dir / "large.jpg";
  write_rgb(jpeg, level0, {cv::IMWRITE_JPEG_QUALITY, 95});
  auto reader = inference::SlideReader::open(jpeg);
  REQUIRE(reader->levels().size() == 4);
  CHECK(reader->levels()[3].width == 625);
  inference::SlideOptions oj;
  oj.mpp = 0.5;
  oj.reader.max_image_pixels = 1'000'000;  // 5000 x 4000 does not fit, its 1/8 decode does
  const auto rj = inference::predict_slide(predictor, jpeg, oj);
  CHECK(rj.level == 3);
  CHECK(rj.cols == 13);  // 5000 / 400, rounded up: a partial column at the right edge
  check_positives_in(rj, layout.tumour);
}

TEST_CASE("Slides without tissue, without a scale, or in no known format get a clear message", "[slide]") {
  test::TempDir dir;
  inference::Predictor predictor(purple_detector_bundle(dir / "model"), "cpu");
  inference::SlideOptions o;
  o.mpp = 0.5;
  const auto glass = dir / "glass.png";
  write_rgb(glass, cv::Mat(1200, 1600, CV_8UC3, kGlass));
  CHECK_THROWS_WITH(inference::predict_slide(predictor, glass, o), Catch::Contains("no tissue found"));
  CHECK_THROWS_AS(inference::predict_slide(predictor, glass, o), std::invalid_argument);

  const auto text = dir / "notes.svs";
  test::write_bytes(text, "not a slide\n");
  CHECK_THROWS_WITH(inference::predict_slide(predictor, text, o), Catch::Contains("unsupported format"));
  CHECK_THROWS_AS(inference::predict_slide(predictor, dir / "missing.svs", o), NotFoundError);

  const auto png = dir / "tissue.png";
  write_rgb(png, draw_slide({800, 600, cv::Rect(100, 100, 200, 200)}));
  const std::string bytes = io::read_file(png);
  test::write_bytes(dir / "cut.png", bytes.substr(0, bytes.size() / 2));
  CHECK_THROWS_WITH(inference::predict_slide(predictor, dir / "cut.png", o), Catch::Contains("truncated"));

  // An image at 72 dpi (what editors write) has no microscope scale: --mpp is asked for.
  const auto tiff72 = dir / "editor.tif";
  write_tiff(tiff72, {draw_slide({800, 600, cv::Rect(100, 100, 200, 200)})}, 25400.0 / 72, false);
  CHECK_THROWS_WITH(inference::predict_slide(predictor, tiff72), Catch::Contains("--mpp"));

  // Tissue masks: Otsu within its clamp, and glass alone is no tissue.
  const auto all_glass = inference::tissue_mask(cv::Mat(64, 64, CV_8UC3, kGlass));
  CHECK(all_glass.tissue_fraction == 0);
  CHECK(all_glass.threshold == Approx(0.05));
  cv::Mat half(64, 64, CV_8UC3, kGlass);
  half(cv::Rect(0, 0, 32, 64)).setTo(kStroma);
  const auto m = inference::tissue_mask(half);
  CHECK(m.tissue_fraction == Approx(0.5).margin(0.02));
  CHECK(inference::tissue_mask(half, 0.9).tissue_fraction == 0);
}

TEST_CASE("The real Aperio slides are read at their recorded scale", "[slide][.slides]") {
  const auto slides = test::slides_dir();
  test::TempDir dir;
  auto small = inference::SlideReader::open(slides / "small.svs");
  CHECK(small->format() == "openslide:aperio");
  CHECK(small->width() == 16);
  CHECK(small->height() == 16);

  // SOURCES.md: 2220 x 2967 px, one level, openslide.mpp-x 0.499, objective 20x, about a third tissue.
  const auto file = slides / "CMU-1-Small-Region.svs";
  auto reader = inference::SlideReader::open(file);
  CHECK(reader->format() == "openslide:aperio");
  CHECK(reader->width() == 2220);
  CHECK(reader->height() == 2967);
  CHECK(reader->levels().size() == 1);
  REQUIRE(reader->mpp().has_value());
  CHECK(*reader->mpp() == Approx(0.499));
  CHECK(reader->properties().at("openslide.objective-power") == "20");

  inference::Predictor predictor(purple_detector_bundle(dir / "model"), "cpu");
  inference::SlideOptions o;
  const auto r = inference::predict_slide(predictor, file, o);
  CHECK(r.mpp_source == "openslide.mpp-x");
  CHECK(r.downsample == Approx(4.0 / 0.499));
  CHECK(r.level == 0);
  CHECK(r.tile_size_level0 == Approx(50 * 4.0 / 0.499));
  CHECK(r.cols == 6);  // 2220 / 400.8, rounded up
  CHECK(r.rows == 8);  // 2967 / 400.8
  const double tissue = cv::countNonZero(r.mask) / static_cast<double>(r.mask.total());
  WARN("CMU-1-Small-Region.svs: tissue " << tissue << " of the thumbnail (threshold " << r.tissue_threshold << "), "
                                         << r.score.tissue_tiles << " tissue tiles of " << r.score.tiles << ", "
                                         << r.seconds << " s, peak RSS " << r.peak_rss_mb << " MB");
  CHECK(tissue > 0.2);
  CHECK(tissue < 0.55);
  CHECK(r.score.tissue_tiles > 5);
  const auto out = inference::write_slide_outputs(r, dir / "out");
  CHECK(fs::file_size(out.overlay) > 1000);
}

namespace {

// A slide of size x size pixels at 0.25 um/px (a 40x scan), drawn tile by tile so that it is never
// whole in memory: the layout of draw_slide scaled up, as a JPEG-compressed tiled BigTIFF with the
// given levels (downsamples), each level drawn at its own scale.
Layout write_big_slide(const fs::path& path, int size, const std::vector<int>& downsamples) {
  const Layout l{size, size, cv::Rect(size * 41 / 100, size * 37 / 100, size * 18 / 100, size * 15 / 100)};
  TIFF* tif = TIFFOpen(path.c_str(), "w8");
  REQUIRE(tif != nullptr);
  const int tile = 256;
  cv::Mat img(tile, tile, CV_8UC3);
  for (size_t i = 0; i < downsamples.size(); ++i) {
    const int ds = downsamples[i], w = (size + ds - 1) / ds;
    TIFFSetField(tif, TIFFTAG_SUBFILETYPE, i == 0 ? 0 : FILETYPE_REDUCEDIMAGE);
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, w);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, w);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 3);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_JPEG);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_YCBCR);
    TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
    TIFFSetField(tif, TIFFTAG_JPEGQUALITY, 85);
    TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
    TIFFSetField(tif, TIFFTAG_XRESOLUTION, static_cast<float>(1e4 / (0.25 * ds)));
    TIFFSetField(tif, TIFFTAG_YRESOLUTION, static_cast<float>(1e4 / (0.25 * ds)));
    TIFFSetField(tif, TIFFTAG_TILEWIDTH, tile);
    TIFFSetField(tif, TIFFTAG_TILELENGTH, tile);
    const double s = 1.0 / ds;
    for (int y = 0; y < w; y += tile) {
      for (int x = 0; x < w; x += tile) {
        img.setTo(kGlass);
        cv::ellipse(img, cv::Point(static_cast<int>(l.width / 2 * s) - x, static_cast<int>(l.height / 2 * s) - y),
                    cv::Size(static_cast<int>(l.width * 45 / 100 * s), static_cast<int>(l.height * 42 / 100 * s)), 0,
                    0, 360, kStroma, cv::FILLED);
        cv::rectangle(img, cv::Rect(static_cast<int>(l.tumour.x * s) - x, static_cast<int>(l.tumour.y * s) - y,
                                    static_cast<int>(l.tumour.width * s), static_cast<int>(l.tumour.height * s)),
                      kTumour, cv::FILLED);
        REQUIRE(TIFFWriteEncodedTile(tif, TIFFComputeTile(tif, x, y, 0, 0), img.data, img.total() * 3) >= 0);
      }
    }
    REQUIRE(TIFFWriteDirectory(tif));
  }
  TIFFClose(tif);
  return l;
}

// Benchmarks, not run by default (hidden tags): a large generated slide, with a pyramid and as a
// single level, mapped within a fixed memory bound. HISTOCNN_SLIDE_BENCH_SIZE sets its side
// (default 40000: 1.6 gigapixels, 4.8 GB as RGB). Run each case in a process of its own, since the
// peak resident size is the process's.
void benchmark_big_slide(const std::vector<int>& downsamples, int expected_level) {
  const char* env = std::getenv("HISTOCNN_SLIDE_BENCH_SIZE");
  const int size = env ? std::atoi(env) : 40000;
  test::TempDir dir;
  inference::Predictor predictor(purple_detector_bundle(dir / "model"), "cpu");
  const auto file = dir / "big.tif";
  auto start = std::chrono::steady_clock::now();
  const auto layout = write_big_slide(file, size, downsamples);
  const double written = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double rss_before = test_peak_rss_mb();
  inference::SlideOptions o;
  const auto r = inference::predict_slide(predictor, file, o);
  const double level0_gb = 3.0 * size * static_cast<double>(size) / 1e9;
  WARN("slide benchmark: " << size << " x " << size << " px (" << level0_gb << " GB as RGB), " << downsamples.size()
                           << " levels, " << fs::file_size(file) / 1e6 << " MB on disk written in " << written
                           << " s; predict_slide " << r.seconds << " s, level " << r.level << ", "
                           << r.score.tissue_tiles << " tissue tiles of " << r.score.tiles << ", "
                           << r.score.positive_tiles << " positive; peak RSS " << r.peak_rss_mb
                           << " MB (" << rss_before << " MB before predicting)");
  CHECK(r.level == expected_level);  // the model's 4 um/px is 16 times 0.25
  check_positives_in(r, layout.tumour);
  CHECK(r.peak_rss_mb < 1500);  // level 0 alone would be level0_gb
}

}  // namespace

TEST_CASE("Benchmark: a 40000 x 40000 pyramidal slide is mapped in bounded memory", "[.slide-benchmark-pyramid]") {
  benchmark_big_slide({1, 4, 16, 64}, 2);
}

TEST_CASE("Benchmark: a 40000 x 40000 single-level slide is mapped in bounded memory", "[.slide-benchmark-flat]") {
  benchmark_big_slide({1}, 0);
}
