#include "histocnn/inference/slide.h"

#include "histocnn/core/error.h"
#include "histocnn/core/log.h"
#include "histocnn/core/progress.h"
#include "histocnn/core/version.h"
#include "histocnn/inference/slide_maps.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/image.h"
#include "histocnn/io/npy.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <openslide/openslide.h>
#include <tiffio.h>
#include <torch/torch.h>

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <list>
#include <tuple>
#include <unordered_map>

namespace histocnn::inference {

namespace fs = std::filesystem;

namespace {

// A resolution coarser than this is an image editor's default (72 or 96 dpi), not a microscope's.
constexpr double kMaxPlausibleMpp = 100.0;

std::optional<double> plausible_mpp(double mpp) {
  if (std::isfinite(mpp) && mpp > 0 && mpp <= kMaxPlausibleMpp) return mpp;
  return std::nullopt;
}

// Microns per pixel from a resolution in pixels per unit (2: inch, 3: centimetre).
std::optional<double> mpp_from_resolution(double pixels_per_unit, int unit) {
  if (!(pixels_per_unit > 0)) return std::nullopt;
  if (unit == 3) return plausible_mpp(1e4 / pixels_per_unit);
  if (unit == 2) return plausible_mpp(25400.0 / pixels_per_unit);
  return std::nullopt;
}

// A number in a metadata string, whatever the process's locale; NaN when there is none.
double parse_number(const std::string& text) {
  double value = std::numeric_limits<double>::quiet_NaN();
  const char* begin = text.data();
  while (begin < text.data() + text.size() && *begin == ' ') ++begin;
  std::from_chars(begin, text.data() + text.size(), value);
  return value;
}

std::string read_prefix(const fs::path& file, size_t bytes) {
  std::ifstream in(file, std::ios::binary);
  HISTOCNN_CHECK_IO(in.good(), "cannot read '{}': {}", file.string(), std::strerror(errno));
  std::string out(bytes, '\0');
  in.read(out.data(), static_cast<std::streamsize>(bytes));
  out.resize(static_cast<size_t>(in.gcount()));
  return out;
}

std::string read_suffix(const fs::path& file, size_t bytes) {
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  HISTOCNN_CHECK_IO(in.good(), "cannot read '{}': {}", file.string(), std::strerror(errno));
  const auto size = static_cast<size_t>(in.tellg());
  const size_t n = std::min(size, bytes);
  in.seekg(static_cast<std::streamoff>(size - n));
  std::string out(n, '\0');
  in.read(out.data(), static_cast<std::streamsize>(n));
  return out;
}

uint32_t u32_be(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

enum class Magic { none, tiff, png, jpeg, bmp };

Magic sniff(const std::string& head) {
  const auto* d = reinterpret_cast<const unsigned char*>(head.data());
  const size_t n = head.size();
  if (n >= 4 && ((d[0] == 'I' && d[1] == 'I' && (d[2] == 42 || d[2] == 43) && d[3] == 0) ||
                 (d[0] == 'M' && d[1] == 'M' && d[2] == 0 && (d[3] == 42 || d[3] == 43)))) {
    return Magic::tiff;
  }
  if (n >= 8 && std::memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return Magic::png;
  if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) return Magic::jpeg;
  if (n >= 2 && d[0] == 'B' && d[1] == 'M') return Magic::bmp;
  return Magic::none;
}

// ---------------------------------------------------------------------------------------------
// OpenSlide: every slide format it knows, at its own pyramid levels.

class OpenSlideReader final : public SlideReader {
 public:
  OpenSlideReader(const fs::path& file, const std::string& vendor) {
    path_ = file;
    format_ = "openslide:" + vendor;
    osr_ = openslide_open(file.c_str());
    HISTOCNN_CHECK_IO(osr_ != nullptr, "OpenSlide recognises '{}' as a {} slide but cannot open it; is the file "
                      "complete and readable?", file.string(), vendor);
    if (const char* error = openslide_get_error(osr_)) {
      const std::string why = error;
      openslide_close(osr_);
      osr_ = nullptr;
      HISTOCNN_FAIL_IO("cannot read slide '{}' ({}): {}; the file is damaged or incomplete (a slide format that "
                       "spans several files, such as MRXS or VMS, needs its companion files beside it)",
                       file.string(), vendor, why);
    }
    const int32_t count = openslide_get_level_count(osr_);
    HISTOCNN_CHECK_IO(count > 0, "slide '{}' has no image levels", file.string());
    for (int32_t i = 0; i < count; ++i) {
      int64_t w = 0, h = 0;
      openslide_get_level_dimensions(osr_, i, &w, &h);
      levels_.push_back({w, h, openslide_get_level_downsample(osr_, i)});
    }
    HISTOCNN_CHECK_IO(levels_[0].width > 0 && levels_[0].height > 0, "slide '{}' reports an empty level 0 ({}x{})",
                      file.string(), levels_[0].width, levels_[0].height);
    for (const char* const* name = openslide_get_property_names(osr_); name && *name; ++name) {
      const std::string key = *name;
      if (key.rfind("openslide.", 0) == 0 || key == "tiff.XResolution" || key == "tiff.ResolutionUnit") {
        if (const char* value = openslide_get_property_value(osr_, *name)) properties_[key] = value;
      }
    }
    if (auto it = properties_.find(OPENSLIDE_PROPERTY_NAME_MPP_X); it != properties_.end()) {
      mpp_ = plausible_mpp(parse_number(it->second));
      if (mpp_) mpp_source_ = OPENSLIDE_PROPERTY_NAME_MPP_X;
    }
    if (!mpp_ && properties_.count("tiff.XResolution") && properties_.count("tiff.ResolutionUnit")) {
      const auto& unit = properties_["tiff.ResolutionUnit"];
      mpp_ = mpp_from_resolution(parse_number(properties_["tiff.XResolution"]),
                                 unit == "centimeter" ? 3 : unit == "inch" ? 2 : 0);
      if (mpp_) mpp_source_ = "tiff.XResolution";
    }
    if (auto it = properties_.find(OPENSLIDE_PROPERTY_NAME_BACKGROUND_COLOR);
        it != properties_.end() && it->second.size() == 6) {
      const unsigned long rgb = std::strtoul(it->second.c_str(), nullptr, 16);
      background_ = {static_cast<uint8_t>(rgb >> 16), static_cast<uint8_t>(rgb >> 8), static_cast<uint8_t>(rgb)};
    }
  }
  ~OpenSlideReader() override {
    if (osr_) openslide_close(osr_);
  }

  cv::Mat read_region(int level, int64_t x, int64_t y, int w, int h) override {
    HISTOCNN_CHECK(level >= 0 && level < static_cast<int>(levels_.size()) && w > 0 && h > 0,
                   "read_region: level {} of {}, size {}x{}", level, levels_.size(), w, h);
    buffer_.resize(static_cast<size_t>(w) * h);
    openslide_read_region(osr_, buffer_.data(), x, y, level, w, h);
    if (const char* error = openslide_get_error(osr_)) {
      HISTOCNN_FAIL_IO("cannot read a region of slide '{}' (level {}, at {},{}): {}", path_.string(), level, x, y,
                       error);
    }
    // Premultiplied ARGB: composite over the slide's background colour.
    cv::Mat out(h, w, CV_8UC3);
    for (int r = 0; r < h; ++r) {
      const uint32_t* src = buffer_.data() + static_cast<size_t>(r) * w;
      auto* dst = out.ptr<uint8_t>(r);
      for (int c = 0; c < w; ++c) {
        const uint32_t p = src[c];
        const uint32_t a = p >> 24;
        const uint32_t rr = (p >> 16) & 0xff, gg = (p >> 8) & 0xff, bb = p & 0xff;
        if (a == 255) {
          dst[3 * c] = static_cast<uint8_t>(rr);
          dst[3 * c + 1] = static_cast<uint8_t>(gg);
          dst[3 * c + 2] = static_cast<uint8_t>(bb);
        } else {
          const uint32_t rest = 255 - a;
          dst[3 * c] = static_cast<uint8_t>(std::min<uint32_t>(255, rr + (background_[0] * rest + 127) / 255));
          dst[3 * c + 1] = static_cast<uint8_t>(std::min<uint32_t>(255, gg + (background_[1] * rest + 127) / 255));
          dst[3 * c + 2] = static_cast<uint8_t>(std::min<uint32_t>(255, bb + (background_[2] * rest + 127) / 255));
        }
      }
    }
    return out;
  }

 private:
  openslide_t* osr_ = nullptr;
  std::vector<uint32_t> buffer_;
  std::array<uint8_t, 3> background_ = {255, 255, 255};
};

// ---------------------------------------------------------------------------------------------
// libtiff: the TIFFs OpenSlide does not read (striped, or tiled without a pyramid), decoded strip
// by strip or tile by tile to RGBA, with a small cache so that neighbouring regions share chunks.

int tiff_error_handler(TIFF*, void* user_data, const char* module, const char* fmt, va_list ap) {
  char text[512];
  std::vsnprintf(text, sizeof text, fmt, ap);
  auto* message = static_cast<std::string*>(user_data);
  if (message->empty()) *message = module && *module ? std::string(module) + ": " + text : std::string(text);
  return 1;
}

int tiff_warning_handler(TIFF*, void*, const char*, const char*, va_list) { return 1; }  // unknown tags etc.

class TiffReader final : public SlideReader {
 public:
  TiffReader(const fs::path& file, const SlideReaderOptions& options) : cache_budget_(options.cache_bytes) {
    path_ = file;
    format_ = "tiff";
    TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(opts, tiff_error_handler, &error_);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, tiff_warning_handler, nullptr);
    tif_ = TIFFOpenExt(file.c_str(), "r", opts);
    TIFFOpenOptionsFree(opts);
    HISTOCNN_CHECK_IO(tif_ != nullptr, "cannot read TIFF '{}': {}; the file is damaged or incomplete", file.string(),
                      error_.empty() ? "libtiff could not open it" : error_);
    const tdir_t count = TIFFNumberOfDirectories(tif_);
    for (tdir_t d = 0; d < count; ++d) {
      if (!TIFFSetDirectory(tif_, d)) break;
      uint32_t subfile = 0;
      TIFFGetField(tif_, TIFFTAG_SUBFILETYPE, &subfile);
      if (subfile & FILETYPE_MASK) continue;
      uint32_t w = 0, h = 0;
      TIFFGetField(tif_, TIFFTAG_IMAGEWIDTH, &w);
      TIFFGetField(tif_, TIFFTAG_IMAGELENGTH, &h);
      if (w == 0 || h == 0) continue;
      Directory dir;
      dir.index = d;
      dir.tiled = TIFFIsTiled(tif_);
      if (dir.tiled) {
        TIFFGetField(tif_, TIFFTAG_TILEWIDTH, &dir.chunk_w);
        TIFFGetField(tif_, TIFFTAG_TILELENGTH, &dir.chunk_h);
      } else {
        dir.chunk_w = w;
        TIFFGetFieldDefaulted(tif_, TIFFTAG_ROWSPERSTRIP, &dir.chunk_h);
        dir.chunk_h = std::min(dir.chunk_h, h);
      }
      if (dir.chunk_w == 0 || dir.chunk_h == 0) continue;
      // A strip or tile is decoded whole: one that holds most of a large image breaks the bound.
      HISTOCNN_CHECK(uint64_t{dir.chunk_w} * dir.chunk_h * 4 <= (uint64_t{1} << 29),
                     "TIFF '{}' stores its {}x{} image in {} of {}x{} pixels, {:.1f} GB each when decoded; convert "
                     "it to a tiled pyramidal TIFF (e.g. `vips tiffsave in.tif out.tif --tile --pyramid`)",
                     file.string(), w, h, dir.tiled ? "tiles" : "strips", dir.chunk_w, dir.chunk_h,
                     uint64_t{dir.chunk_w} * dir.chunk_h * 4 / 1e9);
      char why[1024] = "";
      if (dirs_.empty()) {
        HISTOCNN_CHECK_IO(TIFFRGBAImageOK(tif_, why), "cannot read TIFF '{}': libtiff cannot convert it to RGB ({})",
                          file.string(), why);
        float xres = 0;
        uint16_t unit = RESUNIT_INCH;
        if (TIFFGetField(tif_, TIFFTAG_XRESOLUTION, &xres)) {
          TIFFGetFieldDefaulted(tif_, TIFFTAG_RESOLUTIONUNIT, &unit);
          mpp_ = mpp_from_resolution(xres, unit);
          if (mpp_) mpp_source_ = "tiff XResolution";
        }
        levels_.push_back({w, h, 1.0});
      } else {
        // A smaller copy of the same image is a pyramid level; thumbnails of another shape are not.
        const auto& top = levels_.front();
        const double dx = static_cast<double>(top.width) / w, dy = static_cast<double>(top.height) / h;
        if (w >= levels_.back().width || std::abs(dx - dy) > 0.02 * dx || !TIFFRGBAImageOK(tif_, why)) continue;
        levels_.push_back({w, h, (dx + dy) / 2});
      }
      dirs_.push_back(dir);
    }
    HISTOCNN_CHECK_IO(!dirs_.empty(), "cannot read TIFF '{}': it holds no image{}", file.string(),
                      error_.empty() ? "" : " (" + error_ + ")");
    properties_["tiff.levels"] = std::to_string(levels_.size());
  }
  ~TiffReader() override {
    if (tif_) TIFFClose(tif_);
  }

  cv::Mat read_region(int level, int64_t x, int64_t y, int w, int h) override {
    HISTOCNN_CHECK(level >= 0 && level < static_cast<int>(levels_.size()) && w > 0 && h > 0,
                   "read_region: level {} of {}, size {}x{}", level, levels_.size(), w, h);
    const auto& lv = levels_[level];
    const auto& dir = dirs_[level];
    const int64_t lx = static_cast<int64_t>(std::floor(x / lv.downsample)),
                  ly = static_cast<int64_t>(std::floor(y / lv.downsample));
    cv::Mat out(h, w, CV_8UC3, cv::Scalar(255, 255, 255));
    const int64_t x0 = std::max<int64_t>(0, lx), y0 = std::max<int64_t>(0, ly);
    const int64_t x1 = std::min<int64_t>(lv.width, lx + w), y1 = std::min<int64_t>(lv.height, ly + h);
    if (x0 >= x1 || y0 >= y1) return out;
    for (int64_t cy = y0 / dir.chunk_h * dir.chunk_h; cy < y1; cy += dir.chunk_h) {
      for (int64_t cx = x0 / dir.chunk_w * dir.chunk_w; cx < x1; cx += dir.chunk_w) {
        const Chunk& chunk = load_chunk(level, cx, cy);
        // The part of this chunk inside the region.
        const int64_t ax0 = std::max(cx, x0), ax1 = std::min<int64_t>(cx + chunk.w, x1);
        const int64_t ay0 = std::max(cy, y0), ay1 = std::min<int64_t>(cy + chunk.h, y1);
        for (int64_t yy = ay0; yy < ay1; ++yy) {
          const uint32_t* src = chunk.rgba.data() + static_cast<size_t>(yy - cy) * chunk.w;
          auto* dst = out.ptr<uint8_t>(static_cast<int>(yy - ly));
          for (int64_t xx = ax0; xx < ax1; ++xx) {
            const uint32_t p = src[xx - cx];
            const uint32_t a = TIFFGetA(p), rest = 255 - a;
            uint8_t* o = dst + 3 * (xx - lx);
            o[0] = static_cast<uint8_t>((TIFFGetR(p) * a + 255 * rest + 127) / 255);
            o[1] = static_cast<uint8_t>((TIFFGetG(p) * a + 255 * rest + 127) / 255);
            o[2] = static_cast<uint8_t>((TIFFGetB(p) * a + 255 * rest + 127) / 255);
          }
        }
      }
    }
    return out;
  }

 private:
  struct Directory {
    tdir_t index = 0;
    bool tiled = false;
    uint32_t chunk_w = 0, chunk_h = 0;  // tile size, or width x rows per strip
  };
  struct Chunk {
    int64_t w = 0, h = 0;          // pixels of the image in this chunk
    std::vector<uint32_t> rgba;    // top row first, w per row
  };
  using Key = std::tuple<int, int64_t, int64_t>;
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return std::hash<int64_t>()(std::get<1>(k) * 1000003 + std::get<2>(k)) ^ static_cast<size_t>(std::get<0>(k));
    }
  };

  const Chunk& load_chunk(int level, int64_t cx, int64_t cy) {
    const Key key{level, cx, cy};
    if (auto it = index_.find(key); it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
    const auto& dir = dirs_[level];
    const auto& lv = levels_[level];
    if (!TIFFSetDirectory(tif_, dir.index)) {
      HISTOCNN_FAIL_IO("cannot read TIFF '{}': directory {}: {}", path_.string(), dir.index, error_);
    }
    Chunk chunk;
    chunk.w = std::min<int64_t>(dir.chunk_w, lv.width - cx);
    chunk.h = std::min<int64_t>(dir.chunk_h, lv.height - cy);
    std::vector<uint32_t> raster(static_cast<size_t>(dir.chunk_w) * dir.chunk_h);
    error_.clear();
    const int ok = dir.tiled ? TIFFReadRGBATile(tif_, static_cast<uint32_t>(cx), static_cast<uint32_t>(cy), raster.data())
                             : TIFFReadRGBAStrip(tif_, static_cast<uint32_t>(cy), raster.data());
    HISTOCNN_CHECK_IO(ok, "cannot read TIFF '{}': the {} at ({}, {}) of level {} does not decode ({}); the file is "
                      "damaged or incomplete", path_.string(), dir.tiled ? "tile" : "strip", cx, cy, level,
                      error_.empty() ? "libtiff gave no reason" : error_);
    // libtiff returns the raster bottom row first: a tile in rows of the full tile height, a strip
    // in rows of the strip's own height.
    chunk.rgba.resize(static_cast<size_t>(chunk.w) * chunk.h);
    const int64_t raster_rows = dir.tiled ? dir.chunk_h : chunk.h;
    for (int64_t r = 0; r < chunk.h; ++r) {
      std::memcpy(chunk.rgba.data() + static_cast<size_t>(r) * chunk.w,
                  raster.data() + static_cast<size_t>(raster_rows - 1 - r) * dir.chunk_w,
                  static_cast<size_t>(chunk.w) * sizeof(uint32_t));
    }
    cached_bytes_ += static_cast<int64_t>(chunk.rgba.size() * sizeof(uint32_t));
    lru_.emplace_front(key, std::move(chunk));
    index_[key] = lru_.begin();
    while (cached_bytes_ > cache_budget_ && lru_.size() > 1) {
      cached_bytes_ -= static_cast<int64_t>(lru_.back().second.rgba.size() * sizeof(uint32_t));
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
    return lru_.front().second;
  }

  TIFF* tif_ = nullptr;
  std::string error_;
  std::vector<Directory> dirs_;
  int64_t cache_budget_;
  int64_t cached_bytes_ = 0;
  std::list<std::pair<Key, Chunk>> lru_;
  std::unordered_map<Key, std::list<std::pair<Key, Chunk>>::iterator, KeyHash> index_;
};

// ---------------------------------------------------------------------------------------------
// PNG, JPEG, BMP through OpenCV, which decodes a file whole. A JPEG offers virtual levels at 1/2,
// 1/4 and 1/8 (libjpeg scales while decoding); one decoded level is kept at a time.

std::optional<double> png_mpp(const std::string& head) {
  const auto* d = reinterpret_cast<const unsigned char*>(head.data());
  size_t pos = 8;
  while (pos + 12 <= head.size()) {
    const uint32_t length = u32_be(d + pos);
    const std::string type(head.data() + pos + 4, 4);
    if (type == "IDAT" || type == "IEND") break;
    if (type == "pHYs" && length == 9 && pos + 8 + 9 <= head.size()) {
      const uint32_t per_x = u32_be(d + pos + 8);
      if (d[pos + 16] == 1 && per_x > 0) return plausible_mpp(1e6 / per_x);  // unit: metre
      return std::nullopt;
    }
    pos += size_t{length} + 12;
  }
  return std::nullopt;
}

std::optional<double> jfif_mpp(const std::string& head) {
  const auto* d = reinterpret_cast<const unsigned char*>(head.data());
  // APP0 right after SOI: FF E0, length, "JFIF\0", version (2), units, Xdensity (2), Ydensity (2).
  if (head.size() < 18 || d[2] != 0xff || d[3] != 0xe0 || std::memcmp(d + 6, "JFIF\0", 5) != 0) return std::nullopt;
  const int units = d[13];
  const double density = (d[14] << 8) | d[15];
  return mpp_from_resolution(density, units == 1 ? 2 : units == 2 ? 3 : 0);
}

std::optional<double> bmp_mpp(const std::string& head) {
  if (head.size() < 42) return std::nullopt;
  const auto* d = reinterpret_cast<const unsigned char*>(head.data());
  const int32_t per_metre = static_cast<int32_t>(d[38] | (d[39] << 8) | (d[40] << 16) | (uint32_t{d[41]} << 24));
  return per_metre > 0 ? plausible_mpp(1e6 / per_metre) : std::nullopt;
}

class PlainImageReader final : public SlideReader {
 public:
  PlainImageReader(const fs::path& file, Magic magic, const SlideReaderOptions& options)
      : max_pixels_(options.max_image_pixels) {
    path_ = file;
    format_ = magic == Magic::png ? "png" : magic == Magic::jpeg ? "jpeg" : "bmp";
    std::string head = read_prefix(file, 1 << 20);
    auto header = io::image_header(head);
    HISTOCNN_CHECK_IO(header && header->width > 0 && header->height > 0,
                      "cannot read {} '{}': its header is damaged or incomplete", format_, file.string());
    // A file cut short would decode with its missing rows grey: check that it ends as it should.
    const std::string tail = read_suffix(file, 1 << 16);
    if (magic == Magic::png) {
      HISTOCNN_CHECK_IO(tail.find("IEND") != std::string::npos,
                        "cannot read PNG '{}': it is truncated (no IEND chunk at its end)", file.string());
    } else if (magic == Magic::jpeg) {
      HISTOCNN_CHECK_IO(tail.find("\xff\xd9") != std::string::npos,
                        "cannot read JPEG '{}': it is truncated (no end-of-image marker)", file.string());
    }
    mpp_ = magic == Magic::png ? png_mpp(head) : magic == Magic::jpeg ? jfif_mpp(head) : bmp_mpp(head);
    if (mpp_) mpp_source_ = magic == Magic::png ? "png pHYs" : magic == Magic::jpeg ? "jfif density" : "bmp resolution";
    const int64_t w = header->width, h = header->height;
    levels_.push_back({w, h, 1.0});
    if (magic == Magic::jpeg) {
      for (int k : {2, 4, 8}) {
        const int64_t lw = (w + k - 1) / k, lh = (h + k - 1) / k;
        levels_.push_back({lw, lh, (static_cast<double>(w) / lw + static_cast<double>(h) / lh) / 2});
      }
    }
    const auto& smallest = levels_.back();
    HISTOCNN_CHECK(smallest.width * smallest.height <= max_pixels_,
                   "{} '{}' is {}x{} pixels: OpenCV decodes a {} whole{}, which needs {:.1f} GB here, over the "
                   "limit of {} pixels (max_image_pixels, --max-image-pixels); convert it to a tiled pyramidal "
                   "TIFF (e.g. `vips tiffsave in out.tif --tile --pyramid --compression jpeg`), which is read "
                   "region by region",
                   format_, file.string(), w, h, format_, magic == Magic::jpeg ? " (at best at 1/8 of its size)" : "",
                   smallest.width * smallest.height * 3 / 1e9, max_pixels_);
  }

  int best_level_for_downsample(double downsample) const override {
    int level = SlideReader::best_level_for_downsample(downsample);
    while (level + 1 < static_cast<int>(levels_.size()) && levels_[level].width * levels_[level].height > max_pixels_) {
      ++level;
    }
    return level;
  }

  cv::Mat read_region(int level, int64_t x, int64_t y, int w, int h) override {
    HISTOCNN_CHECK(level >= 0 && level < static_cast<int>(levels_.size()) && w > 0 && h > 0,
                   "read_region: level {} of {}, size {}x{}", level, levels_.size(), w, h);
    const cv::Mat& image = decoded(level);
    const auto& lv = levels_[level];
    const int64_t lx = static_cast<int64_t>(std::floor(x / lv.downsample)),
                  ly = static_cast<int64_t>(std::floor(y / lv.downsample));
    cv::Mat out(h, w, CV_8UC3, cv::Scalar(255, 255, 255));
    const int64_t x0 = std::max<int64_t>(0, lx), y0 = std::max<int64_t>(0, ly);
    const int64_t x1 = std::min<int64_t>(image.cols, lx + w), y1 = std::min<int64_t>(image.rows, ly + h);
    if (x0 >= x1 || y0 >= y1) return out;
    const cv::Rect src(static_cast<int>(x0), static_cast<int>(y0), static_cast<int>(x1 - x0), static_cast<int>(y1 - y0));
    const cv::Rect dst(static_cast<int>(x0 - lx), static_cast<int>(y0 - ly), src.width, src.height);
    cv::cvtColor(image(src), out(dst), cv::COLOR_BGR2RGB);
    return out;
  }

 private:
  const cv::Mat& decoded(int level) {
    if (level == decoded_level_) return image_;
    const auto& lv = levels_[level];
    HISTOCNN_CHECK(lv.width * lv.height <= max_pixels_,
                   "{} '{}': decoding it at {}x{} pixels needs {:.1f} GB, over the limit of {} pixels "
                   "(max_image_pixels, --max-image-pixels); raise the limit, or convert the image to a tiled "
                   "pyramidal TIFF, which is read region by region",
                   format_, path_.string(), lv.width, lv.height, lv.width * lv.height * 3 / 1e9, max_pixels_);
    image_.release();  // one decoded level at a time
    static const int reduced[] = {cv::IMREAD_COLOR, cv::IMREAD_REDUCED_COLOR_2, cv::IMREAD_REDUCED_COLOR_4,
                                  cv::IMREAD_REDUCED_COLOR_8};
    image_ = cv::imread(path_.string(), reduced[level] | cv::IMREAD_IGNORE_ORIENTATION);
    HISTOCNN_CHECK_IO(!image_.empty(), "cannot decode {} '{}' (damaged, or an encoding OpenCV does not read)",
                      format_, path_.string());
    decoded_level_ = level;
    return image_;
  }

  int64_t max_pixels_;
  int decoded_level_ = -1;
  cv::Mat image_;  // BGR, as OpenCV decodes
};

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // kilobytes on Linux
}

// A tile's rectangle in thumbnail pixels (at least one pixel, inside the thumbnail).
cv::Rect thumb_rect(const SlideTile& t, double td, const cv::Size& size) {
  int x0 = static_cast<int>(std::floor(t.x / td)), y0 = static_cast<int>(std::floor(t.y / td));
  int x1 = static_cast<int>(std::ceil((t.x + t.w) / td)), y1 = static_cast<int>(std::ceil((t.y + t.h) / td));
  x0 = std::clamp(x0, 0, size.width - 1);
  y0 = std::clamp(y0, 0, size.height - 1);
  x1 = std::clamp(x1, x0 + 1, size.width);
  y1 = std::clamp(y1, y0 + 1, size.height);
  return {x0, y0, x1 - x0, y1 - y0};
}

// The image with a colour bar (0 at the bottom, 1 at the top, the threshold marked) on its right,
// scaled up with nearest-neighbour pixels when it is small.
cv::Mat with_colour_bar(const cv::Mat& image, double threshold) {
  cv::Mat shown = image;
  const int longest = std::max(image.cols, image.rows);
  if (longest < 256) {
    const int s = (256 + longest - 1) / longest;
    cv::resize(image, shown, cv::Size(image.cols * s, image.rows * s), 0, 0, cv::INTER_NEAREST);
  }
  const int h = shown.rows, bar_w = 16, label_w = 40, gap = 8;
  cv::Mat out(h, shown.cols + gap + bar_w + label_w, CV_8UC3, cv::Scalar(255, 255, 255));
  shown.copyTo(out(cv::Rect(0, 0, shown.cols, h)));
  for (int y = 0; y < h; ++y) {
    const auto c = jet(1.0 - static_cast<double>(y) / std::max(1, h - 1));
    cv::rectangle(out, cv::Rect(shown.cols + gap, y, bar_w, 1), cv::Scalar(c[0], c[1], c[2]), cv::FILLED);
  }
  const int ty = static_cast<int>(std::lround((1.0 - threshold) * (h - 1)));
  cv::line(out, {shown.cols + gap - 3, ty}, {shown.cols + gap + bar_w + 2, ty}, cv::Scalar(0, 0, 0), 1);
  const int lx = shown.cols + gap + bar_w + 4;
  if (h >= 40) {
    cv::putText(out, "1", {lx, 12}, cv::FONT_HERSHEY_SIMPLEX, 0.4, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    cv::putText(out, "0", {lx, h - 3}, cv::FONT_HERSHEY_SIMPLEX, 0.4, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    cv::putText(out, fmt::format("{:.2f}", threshold), {lx, std::clamp(ty + 4, 24, h - 16)},
                cv::FONT_HERSHEY_SIMPLEX, 0.35, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::unique_ptr<SlideReader> SlideReader::open(const fs::path& file, const SlideReaderOptions& options) {
  std::error_code ec;
  HISTOCNN_CHECK_FOUND(fs::exists(file, ec), "slide or image '{}' does not exist", file.string());
  HISTOCNN_CHECK_IO(fs::is_regular_file(file, ec), "'{}' is not a file (a folder?); pass a slide or image file",
                    file.string());
  HISTOCNN_CHECK(options.max_image_pixels > 0 && options.cache_bytes >= 0,
                 "max_image_pixels must be positive and cache_bytes not negative");
  const std::string head = read_prefix(file, 16);
  HISTOCNN_CHECK_IO(!head.empty(), "cannot read '{}': the file is empty", file.string());
  const Magic magic = sniff(head);
  // OpenSlide first: it knows the vendors' TIFF variants (SVS, NDPI, Philips) and the multi-file
  // formats; it answers NULL for plain images and for TIFFs it cannot tile.
  if (const char* vendor = openslide_detect_vendor(file.c_str())) {
    return std::unique_ptr<SlideReader>(new OpenSlideReader(file, vendor));
  }
  switch (magic) {
    case Magic::tiff:
      return std::unique_ptr<SlideReader>(new TiffReader(file, options));
    case Magic::png:
    case Magic::jpeg:
    case Magic::bmp:
      return std::unique_ptr<SlideReader>(new PlainImageReader(file, magic, options));
    case Magic::none:
      break;
  }
  HISTOCNN_FAIL("unsupported format: '{}' is neither a slide OpenSlide reads (SVS, NDPI, MRXS, SCN, VMS, BIF, "
                "tiled pyramidal TIFF) nor a PNG, JPEG, BMP or TIFF image", file.string());
}

int SlideReader::best_level_for_downsample(double downsample) const {
  int best = 0;
  for (size_t i = 0; i < levels_.size(); ++i) {
    // A small tolerance, as OpenSlide's levels report 3.9998 for a nominal 4.
    if (levels_[i].downsample <= downsample * (1 + 1e-4)) best = static_cast<int>(i);
  }
  return best;
}

cv::Mat read_downsampled(SlideReader& reader, double downsample, int region_size, bool progress) {
  HISTOCNN_CHECK(downsample >= 1 && std::isfinite(downsample), "downsample must be at least 1, got {}", downsample);
  HISTOCNN_CHECK(region_size >= 64, "region_size must be at least 64 pixels, got {}", region_size);
  const int out_w = static_cast<int>(std::max<int64_t>(1, std::llround(reader.width() / downsample)));
  const int out_h = static_cast<int>(std::max<int64_t>(1, std::llround(reader.height() / downsample)));
  const int level = reader.best_level_for_downsample(downsample);
  const auto& lv = reader.levels()[level];
  const double scale = downsample / lv.downsample;  // level pixels per output pixel
  const int block = std::max(1, static_cast<int>(region_size / scale));
  cv::Mat out(out_h, out_w, CV_8UC3, cv::Scalar(255, 255, 255));
  const int64_t blocks = static_cast<int64_t>((out_w + block - 1) / block) * ((out_h + block - 1) / block);
  ProgressBar bar(blocks, "thumbnail", progress, "region");
  for (int oy = 0; oy < out_h; oy += block) {
    for (int ox = 0; ox < out_w; ox += block) {
      const int bw = std::min(block, out_w - ox), bh = std::min(block, out_h - oy);
      const int64_t lx0 = static_cast<int64_t>(std::floor(ox * scale)), ly0 = static_cast<int64_t>(std::floor(oy * scale));
      const int64_t lx1 = std::max(lx0 + 1, std::min<int64_t>(lv.width, std::llround((ox + bw) * scale)));
      const int64_t ly1 = std::max(ly0 + 1, std::min<int64_t>(lv.height, std::llround((oy + bh) * scale)));
      const cv::Mat region = reader.read_region(level, std::llround(lx0 * lv.downsample), std::llround(ly0 * lv.downsample),
                                                static_cast<int>(lx1 - lx0), static_cast<int>(ly1 - ly0));
      cv::resize(region, out(cv::Rect(ox, oy, bw, bh)), cv::Size(bw, bh), 0, 0, cv::INTER_AREA);
      bar.update(1);
    }
  }
  bar.finish();
  return out;
}

TissueMask tissue_mask(const cv::Mat& rgb, std::optional<double> threshold, double min_saturation,
                       double max_saturation) {
  HISTOCNN_CHECK(!rgb.empty() && rgb.type() == CV_8UC3, "tissue_mask needs a non-empty RGB uint8 image");
  HISTOCNN_CHECK(min_saturation >= 0 && min_saturation <= max_saturation && max_saturation <= 1,
                 "tissue_mask needs 0 <= min_saturation ({}) <= max_saturation ({}) <= 1", min_saturation,
                 max_saturation);
  if (threshold) {
    HISTOCNN_CHECK(*threshold >= 0 && *threshold < 1, "the tissue threshold is a saturation in [0, 1), got {}",
                   *threshold);
  }
  cv::Mat hsv;
  cv::cvtColor(rgb, hsv, cv::COLOR_RGB2HSV);
  cv::Mat saturation;
  cv::extractChannel(hsv, saturation, 1);
  if (std::min(saturation.rows, saturation.cols) >= 5) cv::medianBlur(saturation, saturation, 5);
  double t;
  if (threshold) {
    t = *threshold;
  } else {
    cv::Mat ignored;
    const double otsu = cv::threshold(saturation, ignored, 0, 255, cv::THRESH_BINARY | cv::THRESH_OTSU) / 255.0;
    t = std::clamp(otsu, min_saturation, max_saturation);
  }
  TissueMask out;
  out.threshold = t;
  // Tissue: saturation above the threshold (255 t, in OpenCV's 8-bit saturation).
  cv::threshold(saturation, out.mask, t * 255.0, 255, cv::THRESH_BINARY);
  out.tissue_fraction = cv::countNonZero(out.mask) / static_cast<double>(out.mask.total());
  return out;
}

namespace {

nlohmann::json score_json(const SlideScore& s) {
  return {{"tiles", s.tiles},
          {"tissue_tiles", s.tissue_tiles},
          {"positive_tiles", s.positive_tiles},
          {"positive_fraction", s.positive_fraction},
          {"max_p", s.max_p},
          {"mean_p", s.mean_p},
          {"tissue_mm2", s.tissue_mm2},
          {"positive_mm2", s.positive_mm2}};
}

// The tile's P alone, or smoothed over its neighbourhood.
double tile_p(const SlideTile& t, bool context) { return context ? t.p_context : t.p; }

}  // namespace

std::string SlideResult::summary_json() const {
  nlohmann::json levels_json = nlohmann::json::array();
  for (const auto& l : levels) levels_json.push_back({{"width", l.width}, {"height", l.height}, {"downsample", l.downsample}});
  nlohmann::json j = {
      {"file", file.string()},
      {"format", format},
      {"width", width},
      {"height", height},
      {"levels", levels_json},
      {"properties", properties},
      {"mpp", mpp},
      {"mpp_source", mpp_source},
      {"target_mpp", target_mpp},
      {"downsample", downsample},
      {"level", level},
      {"level_downsample", levels.empty() ? 1.0 : levels[level].downsample},
      {"tile_size", tile_size},
      {"tile_size_level0", tile_size_level0},
      {"grid", {{"cols", cols}, {"rows", rows}}},
      {"tissue_threshold", tissue_threshold},
      {"min_tissue", min_tissue},
      {"threshold", threshold},
      {"stain", stain},
      {"model", model},
      {"score", score_json(score)},
      {"smooth_radius", smooth_radius},
      {"score_with_context", score_with_context ? score_json(*score_with_context) : nlohmann::json()},
      {"thumbnail_downsample", thumbnail_downsample},
      {"seconds", seconds},
      {"peak_rss_mb", peak_rss_mb},
      {"histocnn_version", version()}};
  return j.dump(2);
}

cv::Mat SlideResult::probability_grid(bool context) const {
  cv::Mat grid(static_cast<int>(rows), static_cast<int>(cols), CV_32F,
               cv::Scalar(std::numeric_limits<float>::quiet_NaN()));
  for (const auto& t : tiles) {
    grid.at<float>(static_cast<int>(t.row), static_cast<int>(t.col)) = static_cast<float>(tile_p(t, context));
  }
  return grid;
}

namespace {

void check_slide_options(const SlideOptions& options) {
  HISTOCNN_CHECK(options.batch_size > 0, "the tile batch size must be positive, got {}", options.batch_size);
  HISTOCNN_CHECK(options.region_size >= 64, "region_size must be at least 64 pixels, got {}", options.region_size);
  HISTOCNN_CHECK(options.min_tissue >= 0 && options.min_tissue <= 1, "min_tissue is a fraction in [0, 1], got {}",
                 options.min_tissue);
  HISTOCNN_CHECK(options.tile_size >= 0 && options.tile_size <= 4096, "tile_size must be in [0, 4096], got {}",
                 options.tile_size);
  if (options.mpp) HISTOCNN_CHECK(*options.mpp > 0 && std::isfinite(*options.mpp), "--mpp must be positive, got {}", *options.mpp);
  if (options.target_mpp) {
    HISTOCNN_CHECK(*options.target_mpp > 0 && std::isfinite(*options.target_mpp), "the target mpp must be positive, got {}",
                   *options.target_mpp);
  }
  if (options.threshold) {
    HISTOCNN_CHECK(*options.threshold >= 0 && *options.threshold <= 1, "the threshold is a probability, got {}",
                   *options.threshold);
  }
  check_smooth_radius(options.smooth_radius, "--smooth");
}

// The slide's scale (--mpp, else what the file records), the model's, and the tile grid they give.
void set_scale_and_grid(SlideResult& r, const SlideReader& reader, const data::Preprocessing& pre,
                        const SlideOptions& options) {
  if (options.mpp) {
    r.mpp = *options.mpp;
    r.mpp_source = "option";
  } else {
    std::string hint;
    if (auto it = r.properties.find(OPENSLIDE_PROPERTY_NAME_OBJECTIVE_POWER); it != r.properties.end()) {
      hint = fmt::format(" (it says objective {}x; a scanner's 40x is about 0.25 um/px, 20x about 0.5)", it->second);
    }
    HISTOCNN_CHECK(reader.mpp().has_value(),
                   "'{}' does not record its scale (microns per pixel: no openslide.mpp-x, TIFF resolution, PNG pHYs "
                   "or JPEG density with a microscope's value){}; pass it with --mpp (mpp=... in Python), e.g. "
                   "--mpp 0.25 for a 40x scan", r.file.string(), hint);
    r.mpp = *reader.mpp();
    r.mpp_source = reader.mpp_source();
  }
  r.target_mpp = options.target_mpp.value_or(pre.mpp);
  r.tile_size = options.tile_size > 0 ? options.tile_size : pre.pad_to > 0 ? pre.pad_to : pre.image_size;
  r.downsample = r.target_mpp / r.mpp;
  if (r.downsample < 1) {
    log_warn("'{}' is coarser ({:.3g} um/px) than the model's scale ({:.3g} um/px): tiles are enlarged {:.2f} times",
             r.file.string(), r.mpp, r.target_mpp, 1 / r.downsample);
  }
  r.tile_size_level0 = r.tile_size * r.downsample;
  r.cols = static_cast<int64_t>(std::ceil(r.width / r.tile_size_level0 - 1e-9));
  r.rows = static_cast<int64_t>(std::ceil(r.height / r.tile_size_level0 - 1e-9));
}

// The thumbnail's downsample: at most 2048 a side (a pyramid level of 1024 to 2048 pixels is taken
// as it is), unless tiles would get fewer than 4 of its pixels a side.
double choose_thumbnail_downsample(const SlideResult& r) {
  const double longest = static_cast<double>(std::max(r.width, r.height));
  double td = std::max(1.0, longest / 2048.0);
  for (const auto& level : r.levels) {
    if (level.downsample >= td * (1 - 1e-3) && level.downsample <= 2 * td) {
      td = level.downsample;
      break;
    }
  }
  if (r.tile_size_level0 / td < 4) td = std::max({1.0, r.tile_size_level0 / 4, longest / 8192.0});
  return td;
}

// A level-0 rectangle [x0, x1) x [y0, y1).
struct Box {
  double x0, y0, x1, y1;
};

// The grid cells [col0, col1) x [row0, row1), clipped to the slide.
Box grid_box(const SlideResult& r, int64_t col0, int64_t row0, int64_t col1, int64_t row1) {
  const double t0 = r.tile_size_level0;
  return {col0 * t0, row0 * t0, std::min<double>(r.width, col1 * t0), std::min<double>(r.height, row1 * t0)};
}

// The grid's tiles that are at least min_tissue tissue, by the share of the mask pixels (thumbnail
// pixels, level-0 pixels td apart) whose centres fall inside each.
std::vector<SlideTile> tissue_tiles(const SlideResult& r, double min_tissue) {
  cv::Mat sums;
  cv::integral(r.mask / 255, sums, CV_64F);
  const double td = r.thumbnail_downsample;
  const auto mask_range = [&](double a, double b, int size) {
    int lo = static_cast<int>(std::ceil(a / td - 0.5)), hi = static_cast<int>(std::ceil(b / td - 0.5));
    lo = std::clamp(lo, 0, size - 1);
    hi = std::clamp(hi, lo + 1, size);
    return std::pair<int, int>{lo, hi};
  };
  std::vector<SlideTile> tiles;
  for (int64_t row = 0; row < r.rows; ++row) {
    for (int64_t col = 0; col < r.cols; ++col) {
      const auto box = grid_box(r, col, row, col + 1, row + 1);
      SlideTile t;
      t.col = col;
      t.row = row;
      t.x = std::llround(box.x0);
      t.y = std::llround(box.y0);
      t.w = std::max<int64_t>(1, std::llround(box.x1) - t.x);
      t.h = std::max<int64_t>(1, std::llround(box.y1) - t.y);
      const auto [mx0, mx1] = mask_range(box.x0, box.x1, r.mask.cols);
      const auto [my0, my1] = mask_range(box.y0, box.y1, r.mask.rows);
      const double inside = sums.at<double>(my1, mx1) - sums.at<double>(my0, mx1) - sums.at<double>(my1, mx0) +
                            sums.at<double>(my0, mx0);
      t.tissue = inside / ((mx1 - mx0) * static_cast<double>(my1 - my0));
      if (t.tissue >= min_tissue && t.tissue > 0) tiles.push_back(t);
    }
  }
  return tiles;
}

// Tiles at the model's scale, cut from reads of the slide's level r.level.
class TileCutter {
 public:
  // Pixels of the level read that cover a level-0 rectangle, and where they start.
  struct Read {
    cv::Mat pixels;
    int64_t x0 = 0, y0 = 0;
  };

  TileCutter(SlideReader& reader, const SlideResult& r) : reader_(reader), r_(r), lv_(reader.levels()[r.level]) {}

  Read read(const Box& box) const {
    const auto [x0, x1] = span(box.x0, box.x1, lv_.width);
    const auto [y0, y1] = span(box.y0, box.y1, lv_.height);
    return {reader_.read_region(r_.level, std::llround(x0 * lv_.downsample), std::llround(y0 * lv_.downsample),
                                static_cast<int>(x1 - x0), static_cast<int>(y1 - y0)),
            x0, y0};
  }

  // Tile t cut from a read that covers it (smaller at the right and bottom edges, where the
  // predictor pads it with white as the Kaggle border patches are padded); sets t's level place.
  cv::Mat cut(SlideTile& t, const Read& read) const {
    const auto box = grid_box(r_, t.col, t.row, t.col + 1, t.row + 1);
    t.level = r_.level;
    t.level_x = static_cast<int64_t>(std::floor(box.x0 / lv_.downsample));
    t.level_y = static_cast<int64_t>(std::floor(box.y0 / lv_.downsample));
    const cv::Mat& region = read.pixels;
    const int rx0 = static_cast<int>(std::clamp<int64_t>(t.level_x - read.x0, 0, region.cols - 1));
    const int ry0 = static_cast<int>(std::clamp<int64_t>(t.level_y - read.y0, 0, region.rows - 1));
    const int rx1 = static_cast<int>(std::clamp<int64_t>(
        span(box.x0, box.x1, lv_.width).second - read.x0, rx0 + 1, region.cols));
    const int ry1 = static_cast<int>(std::clamp<int64_t>(
        span(box.y0, box.y1, lv_.height).second - read.y0, ry0 + 1, region.rows));
    const cv::Size size(static_cast<int>(std::max<int64_t>(1, std::llround((box.x1 - box.x0) / r_.downsample))),
                        static_cast<int>(std::max<int64_t>(1, std::llround((box.y1 - box.y0) / r_.downsample))));
    const cv::Mat part = region(cv::Rect(rx0, ry0, rx1 - rx0, ry1 - ry0));
    if (part.size() == size) return part.clone();
    cv::Mat tile;
    cv::resize(part, tile, size, 0, 0, part.cols > size.width ? cv::INTER_AREA : cv::INTER_LINEAR);
    return tile;
  }

  cv::Mat cut(SlideTile& t) const { return cut(t, read(grid_box(r_, t.col, t.row, t.col + 1, t.row + 1))); }

 private:
  // The level pixels [lo, hi) covering level-0 coordinates [a, b), inside [0, size).
  std::pair<int64_t, int64_t> span(double a, double b, int64_t size) const {
    const int64_t lo = std::min<int64_t>(size - 1, static_cast<int64_t>(std::floor(a / lv_.downsample)));
    const int64_t hi = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(b / lv_.downsample - 1e-6)), lo + 1, size);
    return {lo, hi};
  }

  SlideReader& reader_;
  const SlideResult& r_;
  const SlideLevel& lv_;
};

// The tumour burden and the other slide-level numbers, from the predicted tiles alone or from
// their smoothed P.
SlideScore score_tiles(const SlideResult& r, bool context) {
  SlideScore s;
  s.tiles = r.cols * r.rows;
  const double mm2_per_px = r.mpp * r.mpp / 1e6;
  double sum = 0;
  for (const auto& t : r.tiles) {
    const double p = tile_p(t, context);
    const bool positive = p >= r.threshold;
    s.positive_tiles += positive;
    s.tissue_mm2 += t.w * t.h * mm2_per_px;
    if (positive) s.positive_mm2 += t.w * t.h * mm2_per_px;
    s.max_p = std::max(s.max_p, p);
    sum += p;
  }
  s.tissue_tiles = static_cast<int64_t>(r.tiles.size());
  s.positive_fraction = static_cast<double>(s.positive_tiles) / s.tissue_tiles;
  s.mean_p = sum / s.tissue_tiles;
  return s;
}

}  // namespace

SlideResult predict_slide(const Predictor& predictor, const fs::path& file, const SlideOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  check_slide_options(options);
  auto reader = SlideReader::open(file, options.reader);
  const auto& pre = predictor.preprocessing();

  SlideResult r;
  r.file = file;
  r.format = reader->format();
  r.width = reader->width();
  r.height = reader->height();
  r.levels = reader->levels();
  r.properties = reader->properties();
  r.model = predictor.directory().string();
  r.min_tissue = options.min_tissue;
  r.threshold = options.threshold.value_or(predictor.threshold());
  set_scale_and_grid(r, *reader, pre, options);

  r.thumbnail_downsample = choose_thumbnail_downsample(r);
  r.thumbnail = read_downsampled(*reader, r.thumbnail_downsample, options.region_size, options.progress);
  const auto mask = tissue_mask(r.thumbnail, options.tissue_threshold);
  r.mask = mask.mask;
  r.tissue_threshold = mask.threshold;
  r.tiles = tissue_tiles(r, options.min_tissue);
  HISTOCNN_CHECK(!r.tiles.empty(),
                 "no tissue found in '{}': {:.1f} % of its thumbnail is tissue (HSV saturation above {:.3f}) and no "
                 "tile of {:.0f} um is at least {:.0f} % tissue; check that the file shows stained tissue, or lower "
                 "--min-tissue or set --tissue-threshold",
                 file.string(), 100 * mask.tissue_fraction, r.tissue_threshold, r.tile_size * r.target_mpp,
                 100 * options.min_tissue);

  // Tiles, region by region from the level closest to the model's scale; only regions with tissue
  // tiles are read.
  r.level = reader->best_level_for_downsample(r.downsample);
  const auto& lv = reader->levels()[r.level];
  if (lv.downsample > r.downsample * (1 + 1e-3)) {
    log_warn("'{}' is read at 1/{:.0f} of its size, coarser than the model's scale (1/{:.2f}): a smaller decode "
             "does not fit max_image_pixels", file.string(), lv.downsample, r.downsample);
  }
  const TileCutter cutter(*reader, r);

  // A model whose stain normalisation fits per slide gets the statistics of this slide: fitted once
  // on up to 256 tissue tiles spread evenly over it, then used for every tile.
  std::optional<data::StainStats> slide_stain;
  if (pre.stain && pre.stain->fit_mode() == data::StainFit::slide) {
    const size_t samples = std::min<size_t>(256, r.tiles.size());
    std::vector<cv::Mat> sample;
    for (size_t k = 0; k < samples; ++k) {
      SlideTile t = r.tiles[k * r.tiles.size() / samples];
      sample.push_back(cutter.cut(t));
    }
    slide_stain = pre.stain_source(sample);
    r.stain = fmt::format("{} fitted on {} tiles of the slide", data::stain_method_name(pre.stain->method()), samples);
  } else if (pre.stain) {
    r.stain = fmt::format("{} fitted on each tile", data::stain_method_name(pre.stain->method()));
  }

  // Blocks of per_block x per_block tiles, each one read of about region_size pixels a side.
  const double level_tile = r.tile_size_level0 / lv.downsample;  // tile side in pixels of the level read
  const int64_t per_block = std::max<int64_t>(1, static_cast<int64_t>(options.region_size / level_tile));
  const int64_t block_cols = (r.cols + per_block - 1) / per_block;
  std::vector<std::vector<size_t>> blocks(static_cast<size_t>(block_cols * ((r.rows + per_block - 1) / per_block)));
  for (size_t i = 0; i < r.tiles.size(); ++i) {
    blocks[static_cast<size_t>((r.tiles[i].row / per_block) * block_cols + r.tiles[i].col / per_block)].push_back(i);
  }
  ProgressBar bar(static_cast<int64_t>(r.tiles.size()), "slide", options.progress, "tile");
  std::vector<cv::Mat> pending;
  std::vector<size_t> pending_index;
  const auto flush = [&] {
    if (pending.empty()) return;
    // The one inference path; a per-slide stain fit is passed so that no batch refits it.
    const auto probs = slide_stain ? predictor.predict_proba(pending, *slide_stain, options.batch_size)
                                   : predictor.predict_proba(pending, options.batch_size);
    const auto p1 = probs.select(1, 1).to(torch::kFloat64).contiguous();
    for (size_t k = 0; k < pending.size(); ++k) r.tiles[pending_index[k]].p = p1.data_ptr<double>()[k];
    bar.update(static_cast<int64_t>(pending.size()));
    pending.clear();
    pending_index.clear();
  };
  for (size_t b = 0; b < blocks.size(); ++b) {
    if (blocks[b].empty()) continue;
    const int64_t bc = static_cast<int64_t>(b) % block_cols, br = static_cast<int64_t>(b) / block_cols;
    const auto region = cutter.read(grid_box(r, bc * per_block, br * per_block, (bc + 1) * per_block, (br + 1) * per_block));
    for (size_t i : blocks[b]) {
      pending.push_back(cutter.cut(r.tiles[i], region));
      pending_index.push_back(i);
      if (static_cast<int64_t>(pending.size()) >= options.batch_size) flush();
    }
  }
  flush();
  bar.finish();

  r.score = score_tiles(r, false);
  r.smooth_radius = options.smooth_radius;
  if (r.smooth_radius > 0) {
    // The tile grid as maps' slide grid: each place holds its tile's index, or -1 off the tissue.
    SlideGrid grid;
    grid.cols = static_cast<int>(r.cols);
    grid.rows = static_cast<int>(r.rows);
    grid.cells.assign(static_cast<size_t>(r.cols * r.rows), -1);
    std::vector<double> p(r.tiles.size()), smoothed(r.tiles.size());
    for (size_t i = 0; i < r.tiles.size(); ++i) {
      grid.cells[static_cast<size_t>(r.tiles[i].row * r.cols + r.tiles[i].col)] = static_cast<int64_t>(i);
      p[i] = r.tiles[i].p;
    }
    smooth_on_grid(grid, p, r.smooth_radius, smoothed);
    for (size_t i = 0; i < r.tiles.size(); ++i) r.tiles[i].p_context = smoothed[i];
    r.score_with_context = score_tiles(r, true);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.peak_rss_mb = peak_rss_mb();
  return r;
}

cv::Mat draw_slide_heatmap(const SlideResult& result, bool context) {
  HISTOCNN_CHECK(!result.thumbnail.empty(), "the slide result has no thumbnail to draw on");
  HISTOCNN_CHECK(!context || result.smooth_radius > 0, "the slide was predicted without context (smooth_radius 0)");
  cv::Mat canvas(result.thumbnail.size(), CV_8UC3, cv::Scalar(255, 255, 255));
  for (const auto& t : result.tiles) {
    const auto c = jet(tile_p(t, context));
    cv::rectangle(canvas, thumb_rect(t, result.thumbnail_downsample, canvas.size()), cv::Scalar(c[0], c[1], c[2]),
                  cv::FILLED);
  }
  return with_colour_bar(canvas, result.threshold);
}

cv::Mat draw_slide_overlay(const SlideResult& result, double alpha) {
  HISTOCNN_CHECK(!result.thumbnail.empty(), "the slide result has no thumbnail to draw on");
  HISTOCNN_CHECK(alpha >= 0 && alpha <= 1, "alpha must be in [0, 1], got {}", alpha);
  cv::Mat out = result.thumbnail.clone();
  for (const auto& t : result.tiles) {
    const cv::Rect rect = thumb_rect(t, result.thumbnail_downsample, out.size());
    const auto c = jet(t.p);
    cv::Mat colour(rect.size(), CV_8UC3, cv::Scalar(c[0], c[1], c[2]));
    cv::addWeighted(colour, alpha, out(rect), 1 - alpha, 0, out(rect));
  }
  const int line = std::max(1, std::max(out.cols, out.rows) / 600);
  for (const auto& t : result.tiles) {
    if (t.p >= result.threshold) {
      cv::rectangle(out, thumb_rect(t, result.thumbnail_downsample, out.size()), cv::Scalar(0, 0, 0), line);
    }
  }
  return with_colour_bar(out, result.threshold);
}

SlideOutputs write_slide_outputs(const SlideResult& result, const fs::path& out_dir) {
  SlideOutputs o;
  o.heatmap = out_dir / "heatmap.png";
  o.overlay = out_dir / "overlay.png";
  o.thumbnail = out_dir / "thumbnail.png";
  o.mask = out_dir / "mask.png";
  o.tiles_csv = out_dir / "tiles.csv";
  o.grid_npy = out_dir / "heatmap.npy";
  o.summary_json = out_dir / "summary.json";
  io::write_png(o.heatmap, draw_slide_heatmap(result));
  io::write_png(o.overlay, draw_slide_overlay(result));
  io::write_png(o.thumbnail, result.thumbnail);
  cv::Mat mask_rgb;
  cv::cvtColor(result.mask, mask_rgb, cv::COLOR_GRAY2RGB);
  io::write_png(o.mask, mask_rgb);
  const bool context = result.smooth_radius > 0;
  std::string csv = "col,row,x,y,w,h,level,level_x,level_y,tissue,p_idc,positive";
  csv += context ? ",p_idc_context,positive_context\n" : "\n";
  for (const auto& t : result.tiles) {
    csv += fmt::format("{},{},{},{},{},{},{},{},{},{:.4f},{:.6f},{}", t.col, t.row, t.x, t.y, t.w, t.h, t.level,
                       t.level_x, t.level_y, t.tissue, t.p, t.p >= result.threshold ? 1 : 0);
    csv += context ? fmt::format(",{:.6f},{}\n", t.p_context, t.p_context >= result.threshold ? 1 : 0) : "\n";
  }
  io::write_file_atomic(o.tiles_csv, csv);
  if (context) {
    o.heatmap_context = out_dir / "heatmap_context.png";
    io::write_png(o.heatmap_context, draw_slide_heatmap(result, true));
  }
  cv::Mat grid = result.probability_grid();
  io::write_npy(o.grid_npy, torch::from_blob(grid.data, {grid.rows, grid.cols}, torch::kFloat32).clone());
  io::write_file_atomic(o.summary_json, result.summary_json() + "\n");
  return o;
}

}  // namespace histocnn::inference
