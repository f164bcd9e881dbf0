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

#include <filesystem>
#include <string>

namespace histocnn::io {

/// Reads and decodes an image file (PNG, JPEG, BMP, TIFF... whatever OpenCV can decode).
cv::Mat read_image_rgb(const std::filesystem::path& path);

/// Decodes image bytes held in memory; `source_name` is used in error messages.
cv::Mat decode_image_rgb(const std::string& bytes, const std::string& source_name);

/// Encodes an RGB CV_8UC3 image as PNG and writes it atomically.
void write_png(const std::filesystem::path& path, const cv::Mat& rgb);

/// The PNG bytes of an RGB CV_8UC3 image.
std::string encode_png(const cv::Mat& rgb);

}  // namespace histocnn::io
