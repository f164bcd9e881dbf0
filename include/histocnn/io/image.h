#pragma once
// Image decoding with validation, always to 8-bit RGB, and PNG encoding.
//
//   cv::Mat rgb = histocnn::io::read_image_rgb("patches/8863_idx5_x51_y1251_class0.png");
//   // rgb.type() == CV_8UC3, channels in R, G, B order, any size >= 1x1
//   histocnn::io::write_png("out/patch.png", rgb);                      // atomic
//
// Grayscale and RGBA/BGRA inputs become RGB (alpha dropped), 16-bit inputs become 8-bit; pixels
// are returned as stored (EXIF orientation is not applied).
// Errors name the file: std::runtime_error when the file is missing, a directory or unreadable;
// std::invalid_argument when its content is not a complete image (empty file, text, a truncated
// PNG or JPEG, data the decoder rejects, a 0x0 image).
#include <opencv2/core.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace histocnn::io {

/// Reads and decodes an image file (PNG, JPEG, BMP, TIFF... whatever OpenCV can decode).
cv::Mat read_image_rgb(const std::filesystem::path& path);

/// Decodes image bytes held in memory; `source_name` is used in error messages. With max_pixels
/// > 0 the width and height are read from the header first (image_header) and an image larger than
/// max_pixels, or one whose header cannot be read, is refused before anything is allocated.
cv::Mat decode_image_rgb(const std::string& bytes, const std::string& source_name, int64_t max_pixels = 0);

/// The format and size an image's header declares, without decoding it.
struct ImageHeader {
  std::string format;  ///< "png", "jpeg", "bmp" or "tiff"
  int64_t width = 0, height = 0;
};
/// Reads the header of a PNG, JPEG, BMP or TIFF; std::nullopt for anything else or a header cut short.
std::optional<ImageHeader> image_header(const std::string& bytes);

/// The image files named by command-line inputs: files as given, folders searched recursively for
/// PNG, JPEG, TIFF and BMP files (sorted), and glob patterns. Throws std::invalid_argument naming
/// an input that matches nothing.
std::vector<std::filesystem::path> expand_image_paths(const std::vector<std::string>& inputs);

/// Encodes an RGB CV_8UC3 image as PNG and writes it atomically.
void write_png(const std::filesystem::path& path, const cv::Mat& rgb);

/// The PNG bytes of an RGB CV_8UC3 image.
std::string encode_png(const cv::Mat& rgb);

}  // namespace histocnn::io
