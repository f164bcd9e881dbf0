#include "histocnn/io/image.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

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

}  // namespace

cv::Mat decode_image_rgb(const std::string& bytes, const std::string& source) {
  HISTOCNN_CHECK(!bytes.empty(), "image '{}' is empty (0 bytes); {}", source, kReplaceHint);
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

void write_png(const std::filesystem::path& path, const cv::Mat& rgb) {
  write_file_atomic(path, encode_png(rgb));
}

}  // namespace histocnn::io
