#include "histocnn/io/image.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <glob.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <vector>

#include "histocnn/core/error.h"
#include "histocnn/io/atomic_file.h"

namespace histocnn::io {
namespace {

constexpr unsigned char kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
constexpr const char* kReplaceHint = "replace it with a complete copy or remove it from the dataset";

uint32_t read_u32_be(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

bool starts_with_png_signature(const std::string& bytes) {
  return bytes.size() >= sizeof kPngSignature &&
         std::memcmp(bytes.data(), kPngSignature, sizeof kPngSignature) == 0;
}

bool is_chunk_type_char(unsigned char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

// libpng can hand back a partially decoded image for a cut-off file, so the chunk list is walked
// first: it must start with IHDR and reach IEND within the data. Bytes after IEND are tolerated
// (as every PNG reader does); a stream that stops before IEND is truncated.
void check_png_structure(const std::string& bytes, const std::string& source) {
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t size = bytes.size();
  size_t pos = sizeof kPngSignature;
  bool first = true;
  for (;;) {
    HISTOCNN_CHECK(size - pos >= 12,
                   "image '{}' is a truncated PNG: the data stops at byte {} of {} before the IEND "
                   "chunk that ends every PNG; {}",
                   source, pos, size, kReplaceHint);
    const uint32_t length = read_u32_be(data + pos);
    const unsigned char* type = data + pos + 4;
    HISTOCNN_CHECK(length <= 0x7fffffffu && is_chunk_type_char(type[0]) && is_chunk_type_char(type[1]) &&
                       is_chunk_type_char(type[2]) && is_chunk_type_char(type[3]),
                   "image '{}' is a corrupt PNG: invalid chunk header at byte {}; {}", source, pos,
                   kReplaceHint);
    const std::string type_name(reinterpret_cast<const char*>(type), 4);
    HISTOCNN_CHECK(!first || type_name == "IHDR",
                   "image '{}' is a corrupt PNG: the first chunk is '{}', not IHDR; {}", source,
                   type_name, kReplaceHint);
    first = false;
    HISTOCNN_CHECK(uint64_t{length} + 12 <= size - pos,
                   "image '{}' is a truncated PNG: chunk '{}' at byte {} needs {} bytes but the data "
                   "ends at byte {}; {}",
                   source, type_name, pos, uint64_t{length} + 12, size, kReplaceHint);
    pos += size_t{length} + 12;
    if (type_name == "IEND") return;
  }
}

// A JPEG stream ends with the EOI marker (FF D9); a file cut short lacks it and libjpeg would
// quietly fill the missing rows with grey. Trailing padding after EOI is tolerated.
void check_jpeg_structure(const std::string& bytes, const std::string& source) {
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t end = bytes.size();
  while (end > 2 && (data[end - 1] == 0x00 || data[end - 1] == 0xff || data[end - 1] == '\n' ||
                     data[end - 1] == '\r' || data[end - 1] == ' '))
    --end;
  // Look for EOI within the last 64 KiB, allowing for trailers some cameras append.
  const size_t lower = end > 65536 ? end - 65536 : 2;
  bool found = false;
  for (size_t i = end; i >= lower + 2 && !found; --i) found = data[i - 2] == 0xff && data[i - 1] == 0xd9;
  HISTOCNN_CHECK(found, "image '{}' is a truncated JPEG: the end-of-image marker is missing; {}", source,
                 kReplaceHint);
}

bool is_jpeg(const std::string& bytes) {
  return bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xff &&
         static_cast<unsigned char>(bytes[1]) == 0xd8 && static_cast<unsigned char>(bytes[2]) == 0xff;
}

uint16_t read_u16(const unsigned char* p, bool little) {
  return little ? static_cast<uint16_t>(p[0] | (p[1] << 8)) : static_cast<uint16_t>((p[0] << 8) | p[1]);
}

uint32_t read_u32(const unsigned char* p, bool little) {
  return little ? (uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24))
                : read_u32_be(p);
}

std::optional<ImageHeader> jpeg_header(const unsigned char* d, size_t n) {
  // Walk the marker segments up to the first start-of-frame (SOF0..SOF15 but DHT, JPG, DAC).
  size_t pos = 2;
  while (pos + 4 <= n) {
    if (d[pos] != 0xff) return std::nullopt;
    const unsigned char marker = d[pos + 1];
    if (marker == 0xff) {
      ++pos;
      continue;
    }
    if (marker == 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker == 0x01) {
      pos += 2;
      continue;
    }
    const size_t length = read_u16(d + pos + 2, false);
    if (length < 2) return std::nullopt;
    if (marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc) {
      if (pos + 9 > n) return std::nullopt;
      return ImageHeader{"jpeg", read_u16(d + pos + 7, false), read_u16(d + pos + 5, false)};
    }
    pos += 2 + length;
  }
  return std::nullopt;
}

std::optional<ImageHeader> tiff_header(const unsigned char* d, size_t n) {
  const bool little = d[0] == 'I';
  const uint32_t ifd = read_u32(d + 4, little);
  if (ifd < 8 || uint64_t{ifd} + 2 > n) return std::nullopt;
  const uint16_t entries = read_u16(d + ifd, little);
  int64_t width = -1, height = -1;
  for (uint32_t i = 0; i < entries; ++i) {
    const uint64_t at = uint64_t{ifd} + 2 + 12ull * i;
    if (at + 12 > n) return std::nullopt;
    const uint16_t tag = read_u16(d + at, little), type = read_u16(d + at + 2, little);
    const int64_t value = type == 3 ? read_u16(d + at + 8, little) : read_u32(d + at + 8, little);
    if (tag == 256) width = value;
    if (tag == 257) height = value;
  }
  if (width < 0 || height < 0) return std::nullopt;
  return ImageHeader{"tiff", width, height};
}

}  // namespace

std::optional<ImageHeader> image_header(const std::string& bytes) {
  const auto* d = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  if (starts_with_png_signature(bytes)) {
    if (n < 24 || std::memcmp(d + 12, "IHDR", 4) != 0) return std::nullopt;
    return ImageHeader{"png", read_u32_be(d + 16), read_u32_be(d + 20)};
  }
  if (is_jpeg(bytes)) return jpeg_header(d, n);
  if (n >= 26 && d[0] == 'B' && d[1] == 'M') {
    const int64_t w = static_cast<int32_t>(read_u32(d + 18, true));
    const int64_t h = static_cast<int32_t>(read_u32(d + 22, true));
    return ImageHeader{"bmp", w < 0 ? -w : w, h < 0 ? -h : h};
  }
  if (n >= 8 && ((d[0] == 'I' && d[1] == 'I' && d[2] == 42 && d[3] == 0) ||
                 (d[0] == 'M' && d[1] == 'M' && d[2] == 0 && d[3] == 42))) {
    return tiff_header(d, n);
  }
  return std::nullopt;
}

cv::Mat decode_image_rgb(const std::string& bytes, const std::string& source, int64_t max_pixels) {
  HISTOCNN_CHECK(!bytes.empty(), "image '{}' is empty (0 bytes); {}", source, kReplaceHint);
  if (max_pixels > 0) {
    const auto header = image_header(bytes);
    HISTOCNN_CHECK(header.has_value(),
                   "image '{}' is not a PNG, JPEG, BMP or TIFF image (or its header is cut short)", source);
    HISTOCNN_CHECK(header->width > 0 && header->height > 0, "image '{}' declares a size of {}x{}", source,
                   header->width, header->height);
    HISTOCNN_CHECK(header->width <= max_pixels / header->height,
                   "image '{}' is {}x{} pixels, more than the limit of {} pixels; send patches (e.g. 50x50), "
                   "or tiles of a slide", source, header->width, header->height, max_pixels);
  }
  if (starts_with_png_signature(bytes)) check_png_structure(bytes, source);
  if (is_jpeg(bytes)) check_jpeg_structure(bytes, source);

  HISTOCNN_CHECK(bytes.size() <= static_cast<size_t>(INT32_MAX),
                 "image '{}' is too large ({} bytes) to decode", source, bytes.size());
  cv::Mat decoded;
  try {
    const cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8UC1,
                      const_cast<char*>(bytes.data()));  // imdecode only reads it
    decoded = cv::imdecode(raw, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    HISTOCNN_FAIL("image '{}' could not be decoded ({}); {}", source, e.what(), kReplaceHint);
  }
  HISTOCNN_CHECK(!decoded.empty(),
                 "image '{}' could not be decoded: it is not an image in a format OpenCV reads (PNG, "
                 "JPEG, BMP, TIFF, ...) or it is corrupt; {}",
                 source, kReplaceHint);
  HISTOCNN_CHECK(decoded.rows > 0 && decoded.cols > 0, "image '{}' has size {}x{}; images must be at "
                 "least 1x1 pixel", source, decoded.cols, decoded.rows);
  HISTOCNN_CHECK(decoded.dims == 2, "image '{}' has {} dimensions; expected a 2-D image", source,
                 decoded.dims);

  cv::Mat eight_bit;
  switch (decoded.depth()) {
    case CV_8U:
      eight_bit = decoded;
      break;
    case CV_16U:
      decoded.convertTo(eight_bit, CV_8U, 1.0 / 257.0);
      break;
    case CV_32F:
    case CV_64F:
      // Floating-point formats (TIFF, EXR) hold intensities in [0, 1].
      decoded.convertTo(eight_bit, CV_8U, 255.0);
      break;
    default:
      HISTOCNN_FAIL("image '{}' has an unsupported pixel depth (OpenCV depth {}); save it as 8- or "
                    "16-bit PNG or JPEG", source, decoded.depth());
  }

  cv::Mat rgb;
  switch (eight_bit.channels()) {
    case 1:
      cv::cvtColor(eight_bit, rgb, cv::COLOR_GRAY2RGB);
      break;
    case 3:
      cv::cvtColor(eight_bit, rgb, cv::COLOR_BGR2RGB);
      break;
    case 4:
      cv::cvtColor(eight_bit, rgb, cv::COLOR_BGRA2RGB);
      break;
    default:
      HISTOCNN_FAIL("image '{}' has {} channels; expected 1 (gray), 3 (colour) or 4 (with alpha)",
                    source, eight_bit.channels());
  }
  return rgb;
}

cv::Mat read_image_rgb(const std::filesystem::path& path) {
  return decode_image_rgb(read_file(path), path.string());
}

std::string encode_png(const cv::Mat& rgb) {
  HISTOCNN_CHECK(!rgb.empty() && rgb.rows > 0 && rgb.cols > 0, "cannot encode an empty image as PNG");
  HISTOCNN_CHECK(rgb.type() == CV_8UC3,
                 "encode_png needs an 8-bit 3-channel RGB image (CV_8UC3), got type {} with {} "
                 "channels; convert it first",
                 rgb.type(), rgb.channels());
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<uchar> buffer;
  bool ok = false;
  try {
    ok = cv::imencode(".png", bgr, buffer);
  } catch (const cv::Exception& e) {
    HISTOCNN_FAIL_IO("PNG encoding failed: {}", e.what());
  }
  HISTOCNN_CHECK_IO(ok, "PNG encoding of a {}x{} image failed", rgb.cols, rgb.rows);
  return std::string(buffer.begin(), buffer.end());
}

std::vector<std::filesystem::path> expand_image_paths(const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  auto is_image = [](const fs::path& p) {
    auto ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".tif" || ext == ".tiff" || ext == ".bmp";
  };
  std::vector<fs::path> out;
  for (const auto& input : inputs) {
    if (fs::is_directory(input)) {
      std::vector<fs::path> found;
      for (const auto& e : fs::recursive_directory_iterator(input)) {
        if (e.is_regular_file() && is_image(e.path())) found.push_back(e.path());
      }
      std::sort(found.begin(), found.end());
      HISTOCNN_CHECK(!found.empty(), "folder '{}' holds no PNG, JPEG, TIFF or BMP files", input);
      out.insert(out.end(), found.begin(), found.end());
    } else if (input.find_first_of("*?[") != std::string::npos) {
      glob_t g{};
      const int rc = ::glob(input.c_str(), 0, nullptr, &g);
      std::vector<fs::path> found;
      for (size_t i = 0; rc == 0 && i < g.gl_pathc; ++i) found.emplace_back(g.gl_pathv[i]);
      ::globfree(&g);
      HISTOCNN_CHECK(!found.empty(), "pattern '{}' matches no file", input);
      out.insert(out.end(), found.begin(), found.end());
    } else {
      // A file is taken as named, readable or not: its error is reported when it is predicted.
      out.emplace_back(input);
    }
  }
  return out;
}

void write_png(const std::filesystem::path& path, const cv::Mat& rgb) {
  write_file_atomic(path, encode_png(rgb));
}

}  // namespace histocnn::io
