#include "histocnn/io/image.h"

#include <catch2/catch.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "histocnn/io/atomic_file.h"
#include "test_support.h"

namespace fs = std::filesystem;
using histocnn::io::decode_image_rgb;
using histocnn::io::encode_png;
using histocnn::io::read_file;
using histocnn::io::read_image_rgb;
using histocnn::io::write_png;
using histocnn::test::TempDir;
using histocnn::test::write_bytes;

namespace {

cv::Vec3b pixel_at(const cv::Mat& m, int row, int col) { return m.at<cv::Vec3b>(row, col); }

std::string png_bytes_of(const cv::Mat& bgr_or_gray) {
  std::vector<uchar> buf;
  REQUIRE(cv::imencode(".png", bgr_or_gray, buf));
  return std::string(buf.begin(), buf.end());
}

}  // namespace

TEST_CASE("read_image_rgb returns RGB order for a PNG written by OpenCV", "[io]") {
  TempDir dir;
  cv::Mat bgr(4, 5, CV_8UC3, cv::Scalar(0, 0, 0));
  bgr.at<cv::Vec3b>(0, 0) = cv::Vec3b(0, 0, 255);     // red, in OpenCV's BGR order
  bgr.at<cv::Vec3b>(1, 2) = cv::Vec3b(255, 0, 0);     // blue
  bgr.at<cv::Vec3b>(3, 4) = cv::Vec3b(10, 20, 30);
  auto path = dir / "red.png";
  REQUIRE(cv::imwrite(path.string(), bgr));

  cv::Mat rgb = read_image_rgb(path);
  REQUIRE(rgb.type() == CV_8UC3);
  REQUIRE(rgb.rows == 4);
  REQUIRE(rgb.cols == 5);
  CHECK(pixel_at(rgb, 0, 0) == cv::Vec3b(255, 0, 0));
  CHECK(pixel_at(rgb, 1, 2) == cv::Vec3b(0, 0, 255));
  CHECK(pixel_at(rgb, 3, 4) == cv::Vec3b(30, 20, 10));
  CHECK(pixel_at(rgb, 2, 2) == cv::Vec3b(0, 0, 0));
}

TEST_CASE("write_png and encode_png round trip RGB exactly", "[io]") {
  TempDir dir;
  cv::Mat rgb(12, 43, CV_8UC3);
  cv::randu(rgb, cv::Scalar::all(0), cv::Scalar::all(256));
  auto path = dir / "sub" / "patch.png";
  write_png(path, rgb);
  cv::Mat back = read_image_rgb(path);
  CHECK(cv::norm(back, rgb, cv::NORM_INF) == 0);
  // OpenCV reading the file directly sees BGR: the first channel is our blue.
  cv::Mat bgr = cv::imread(path.string(), cv::IMREAD_COLOR);
  REQUIRE(!bgr.empty());
  CHECK(bgr.at<cv::Vec3b>(5, 7)[0] == rgb.at<cv::Vec3b>(5, 7)[2]);
  CHECK(bgr.at<cv::Vec3b>(5, 7)[2] == rgb.at<cv::Vec3b>(5, 7)[0]);

  cv::Mat decoded = decode_image_rgb(encode_png(rgb), "memory");
  CHECK(cv::norm(decoded, rgb, cv::NORM_INF) == 0);

  REQUIRE_THROWS_AS(encode_png(cv::Mat()), std::invalid_argument);
  REQUIRE_THROWS_AS(encode_png(cv::Mat(2, 2, CV_8UC1)), std::invalid_argument);
  REQUIRE_THROWS_AS(encode_png(cv::Mat(2, 2, CV_16UC3)), std::invalid_argument);
}

TEST_CASE("read_image_rgb accepts tiny and odd-sized images", "[io]") {
  TempDir dir;
  for (auto [rows, cols] : std::vector<std::pair<int, int>>{{50, 1}, {1, 50}, {12, 43}, {1, 1}}) {
    cv::Mat bgr(rows, cols, CV_8UC3, cv::Scalar(1, 2, 3));
    auto path = dir / ("img_" + std::to_string(rows) + "x" + std::to_string(cols) + ".png");
    REQUIRE(cv::imwrite(path.string(), bgr));
    cv::Mat rgb = read_image_rgb(path);
    CHECK(rgb.rows == rows);
    CHECK(rgb.cols == cols);
    CHECK(pixel_at(rgb, rows - 1, cols - 1) == cv::Vec3b(3, 2, 1));
  }
}

TEST_CASE("read_image_rgb converts grayscale, RGBA and 16-bit to 8-bit RGB", "[io]") {
  TempDir dir;
  SECTION("grayscale") {
    cv::Mat gray(3, 3, CV_8UC1, cv::Scalar(77));
    auto path = dir / "gray.png";
    REQUIRE(cv::imwrite(path.string(), gray));
    REQUIRE(cv::imread(path.string(), cv::IMREAD_UNCHANGED).channels() == 1);
    cv::Mat rgb = read_image_rgb(path);
    REQUIRE(rgb.type() == CV_8UC3);
    CHECK(pixel_at(rgb, 1, 1) == cv::Vec3b(77, 77, 77));
  }
  SECTION("RGBA (BGRA in OpenCV)") {
    cv::Mat bgra(2, 2, CV_8UC4, cv::Scalar(10, 20, 30, 128));
    auto path = dir / "rgba.png";
    REQUIRE(cv::imwrite(path.string(), bgra));
    REQUIRE(cv::imread(path.string(), cv::IMREAD_UNCHANGED).channels() == 4);
    cv::Mat rgb = read_image_rgb(path);
    REQUIRE(rgb.type() == CV_8UC3);
    CHECK(pixel_at(rgb, 0, 1) == cv::Vec3b(30, 20, 10));
  }
  SECTION("16-bit colour and gray") {
    cv::Mat bgr16(2, 2, CV_16UC3, cv::Scalar(0, 257 * 100, 65535));
    auto path = dir / "deep.png";
    REQUIRE(cv::imwrite(path.string(), bgr16));
    REQUIRE(cv::imread(path.string(), cv::IMREAD_UNCHANGED).depth() == CV_16U);
    cv::Mat rgb = read_image_rgb(path);
    REQUIRE(rgb.type() == CV_8UC3);
    CHECK(pixel_at(rgb, 1, 0) == cv::Vec3b(255, 100, 0));

    cv::Mat gray16(2, 2, CV_16UC1, cv::Scalar(257 * 200));
    auto gpath = dir / "deepgray.png";
    REQUIRE(cv::imwrite(gpath.string(), gray16));
    CHECK(pixel_at(read_image_rgb(gpath), 0, 0) == cv::Vec3b(200, 200, 200));
  }
  SECTION("BMP and JPEG") {
    cv::Mat bgr(8, 8, CV_8UC3, cv::Scalar(0, 0, 200));
    REQUIRE(cv::imwrite((dir / "a.bmp").string(), bgr));
    CHECK(pixel_at(read_image_rgb(dir / "a.bmp"), 4, 4) == cv::Vec3b(200, 0, 0));
    REQUIRE(cv::imwrite((dir / "a.jpg").string(), bgr));
    cv::Vec3b px = pixel_at(read_image_rgb(dir / "a.jpg"), 4, 4);
    CHECK(px[0] > 150);
    CHECK(px[2] < 50);
  }
}

TEST_CASE("read_image_rgb errors name the file", "[io]") {
  TempDir dir;
  SECTION("missing file") {
    auto path = dir / "missing.png";
    REQUIRE_THROWS_AS(read_image_rgb(path), std::runtime_error);
    REQUIRE_THROWS_WITH(read_image_rgb(path), Catch::Contains("missing.png"));
  }
  SECTION("directory") {
    fs::create_directory(dir / "folder.png");
    REQUIRE_THROWS_AS(read_image_rgb(dir / "folder.png"), std::runtime_error);
    REQUIRE_THROWS_WITH(read_image_rgb(dir / "folder.png"),
                        Catch::Contains("folder.png") && Catch::Contains("directory"));
  }
  SECTION("empty file") {
    write_bytes(dir / "empty.png", "");
    REQUIRE_THROWS_AS(read_image_rgb(dir / "empty.png"), std::invalid_argument);
    REQUIRE_THROWS_WITH(read_image_rgb(dir / "empty.png"),
                        Catch::Contains("empty.png") && Catch::Contains("0 bytes"));
  }
  SECTION("text file named .png") {
    write_bytes(dir / "text.png", "this is not an image\n");
    REQUIRE_THROWS_AS(read_image_rgb(dir / "text.png"), std::invalid_argument);
    REQUIRE_THROWS_WITH(read_image_rgb(dir / "text.png"),
                        Catch::Contains("text.png") && Catch::Contains("could not be decoded"));
  }
  SECTION("truncated PNG") {
    cv::Mat bgr(64, 64, CV_8UC3);
    cv::randu(bgr, cv::Scalar::all(0), cv::Scalar::all(256));
    const std::string png = png_bytes_of(bgr);
    write_bytes(dir / "half.png", png.substr(0, png.size() / 2));
    REQUIRE_THROWS_AS(read_image_rgb(dir / "half.png"), std::invalid_argument);
    REQUIRE_THROWS_WITH(read_image_rgb(dir / "half.png"),
                        Catch::Contains("half.png") && Catch::Contains("truncated PNG"));
    // Cut just before IEND: all pixel data is present, yet the stream is incomplete.
    write_bytes(dir / "noiend.png", png.substr(0, png.size() - 12));
    REQUIRE_THROWS_WITH(read_image_rgb(dir / "noiend.png"), Catch::Contains("truncated PNG"));
    // Every other cut point fails too, and none crashes.
    for (size_t cut = 1; cut < png.size(); cut += 7) {
      INFO(cut);
      REQUIRE_THROWS_AS(decode_image_rgb(png.substr(0, cut), "cut.png"), std::invalid_argument);
    }
    // Bytes after IEND are ignored as other PNG readers do.
    CHECK(decode_image_rgb(png + "trailing", "trailing.png").rows == 64);
  }
  SECTION("PNG signature followed by garbage") {
    std::string bytes("\x89PNG\r\n\x1a\n", 8);
    bytes += std::string(200, '\x5a') + "garbage garbage";
    write_bytes(dir / "garbage.png", bytes);
    REQUIRE_THROWS_AS(read_image_rgb(dir / "garbage.png"), std::invalid_argument);
    REQUIRE_THROWS_WITH(read_image_rgb(dir / "garbage.png"), Catch::Contains("garbage.png"));
    // A signature alone.
    REQUIRE_THROWS_WITH(decode_image_rgb(bytes.substr(0, 8), "sig.png"),
                        Catch::Contains("sig.png") && Catch::Contains("truncated PNG"));
  }
  SECTION("corrupted pixel data in a structurally complete PNG") {
    cv::Mat bgr(32, 32, CV_8UC3);
    cv::randu(bgr, cv::Scalar::all(0), cv::Scalar::all(256));
    std::string png = png_bytes_of(bgr);
    const auto idat = png.find("IDAT");
    REQUIRE(idat != std::string::npos);
    for (size_t i = idat + 8; i < idat + 40; ++i) png[i] = static_cast<char>(~png[i]);
    REQUIRE_THROWS_AS(decode_image_rgb(png, "crc.png"), std::invalid_argument);
  }
  SECTION("truncated JPEG") {
    cv::Mat bgr(64, 64, CV_8UC3);
    cv::randu(bgr, cv::Scalar::all(0), cv::Scalar::all(256));
    std::vector<uchar> buf;
    REQUIRE(cv::imencode(".jpg", bgr, buf));
    std::string jpg(buf.begin(), buf.end());
    REQUIRE(decode_image_rgb(jpg, "whole.jpg").rows == 64);
    REQUIRE_THROWS_WITH(decode_image_rgb(jpg.substr(0, jpg.size() * 2 / 3), "cut.jpg"),
                        Catch::Contains("cut.jpg") && Catch::Contains("truncated JPEG"));
  }
}

TEST_CASE("read_image_rgb decodes the shared BMP test images", "[io][.weights]") {
  const auto path = histocnn::test::shared_weight("testimages/cat.bmp");
  cv::Mat rgb = read_image_rgb(path);
  CHECK(rgb.type() == CV_8UC3);
  cv::Mat bgr = cv::imread(path.string(), cv::IMREAD_COLOR);
  REQUIRE(bgr.size() == rgb.size());
  cv::Mat expected;
  cv::cvtColor(bgr, expected, cv::COLOR_BGR2RGB);
  CHECK(cv::norm(rgb, expected, cv::NORM_INF) == 0);
}
