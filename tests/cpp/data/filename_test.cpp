#include <catch2/catch.hpp>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "histocnn/data/filename.h"
#include "test_support.h"

using histocnn::data::format_patch_filename;
using histocnn::data::parse_patch_filename;
using histocnn::data::PatchName;

TEST_CASE("parse_patch_filename reads a real Kaggle name", "[data]") {
  auto name = parse_patch_filename("8863_idx5_x1051_y1051_class1.png");
  REQUIRE(name.has_value());
  CHECK(name->patient == "8863");
  CHECK(name->x == 1051);
  CHECK(name->y == 1051);
  CHECK(name->label == 1);

  auto neg = parse_patch_filename("10253_idx5_x51_y2201_class0.png");
  REQUIRE(neg.has_value());
  CHECK(neg->patient == "10253");
  CHECK(neg->x == 51);
  CHECK(neg->y == 2201);
  CHECK(neg->label == 0);
}

TEST_CASE("parse_patch_filename accepts any extension case and patient ids with letters", "[data]") {
  auto upper = parse_patch_filename("8863_idx5_x1_y1_class0.PNG");
  REQUIRE(upper.has_value());
  CHECK(upper->label == 0);
  CHECK(parse_patch_filename("8863_idx5_x1_y1_class0.Png").has_value());

  auto lettered = parse_patch_filename("P-01a_idx5_x0_y100_class1.png");
  REQUIRE(lettered.has_value());
  CHECK(lettered->patient == "P-01a");
  CHECK(lettered->x == 0);
  CHECK(lettered->y == 100);
}

TEST_CASE("parse_patch_filename rejects near misses", "[data]") {
  const char* misses[] = {
      "8863_idx5_x1051_y1051_class2.png",    // class must be 0 or 1
      "8863_x1051_y1051_class1.png",         // missing idx5
      "8863_idx4_x1051_y1051_class1.png",    // wrong idx
      "8863_idx5_x1051_y1051_class1.jpg",    // not png
      "8863_idx5_x1051_y1051_class1",        // no extension
      "8863_idx5_x1051_y1051_class1.png.bak",
      "8863_idx5_x_y1051_class1.png",        // no number
      "8863_idx5_x-5_y1051_class1.png",      // negative
      "8863_idx5_x1051_y1051_class01.png",   // two-digit class
      "8863_idx5_x1051_y1051_class1_copy.png",
      "8863_idx5_x1051_y1051_class.png",
      "8863_idx5_y1051_x1051_class1.png",    // swapped coordinates
      "_idx5_x1051_y1051_class1.png",        // empty patient
      "88_63_idx5_x1051_y1051_class1.png",   // underscore in patient
      "8863 _idx5_x1051_y1051_class1.png",   // space in patient
      "8863_idx5_x1051_y1051_class1 .png",
      "8863_idx5_x99999999999_y1_class1.png",  // coordinate overflows int
      "8863/1/8863_idx5_x1051_y1051_class1.png",  // folder part
      ".png",
      "",
  };
  for (const char* miss : misses) {
    INFO(miss);
    CHECK_FALSE(parse_patch_filename(miss).has_value());
    std::string why;
    CHECK_FALSE(parse_patch_filename(miss, &why).has_value());
    CHECK_FALSE(why.empty());
  }
  std::string why;
  parse_patch_filename("8863_idx5_x1051_y1051_class2.png", &why);
  CHECK(why.find("class") != std::string::npos);
  parse_patch_filename("8863_idx5_x1051_y1051_class1.jpg", &why);
  CHECK(why.find("png") != std::string::npos);
}

TEST_CASE("format_patch_filename round-trips and validates", "[data]") {
  PatchName n{"9125", 2301, 51, 1};
  const std::string file = format_patch_filename(n);
  CHECK(file == "9125_idx5_x2301_y51_class1.png");
  auto back = parse_patch_filename(file);
  REQUIRE(back.has_value());
  CHECK(back->patient == n.patient);
  CHECK(back->x == n.x);
  CHECK(back->y == n.y);
  CHECK(back->label == n.label);

  CHECK_THROWS_AS(format_patch_filename({"9125", 1, 1, 2}), std::invalid_argument);
  CHECK_THROWS_AS(format_patch_filename({"91_25", 1, 1, 0}), std::invalid_argument);
  CHECK_THROWS_AS(format_patch_filename({"", 1, 1, 0}), std::invalid_argument);
  CHECK_THROWS_AS(format_patch_filename({"9125", -1, 1, 0}), std::invalid_argument);
}

TEST_CASE("parse_patch_filename agrees with the folders of the real data", "[data][.real-data]") {
  const auto dir = histocnn::test::real_data_dir();
  namespace fs = std::filesystem;
  int checked = 0;
  for (const auto& patient : fs::directory_iterator(dir)) {
    if (!patient.is_directory()) continue;
    for (const char* label : {"0", "1"}) {
      const fs::path folder = patient.path() / label;
      if (!fs::is_directory(folder)) continue;
      int per_folder = 0;
      for (const auto& file : fs::directory_iterator(folder)) {
        if (++per_folder > 20) break;
        auto name = parse_patch_filename(file.path().filename().string());
        INFO(file.path().string());
        REQUIRE(name.has_value());
        CHECK(name->patient == patient.path().filename().string());
        CHECK(name->label == label[0] - '0');
        CHECK(name->x % 50 == 1);  // the real grid starts at 1 with a 50 px step
        CHECK(name->y % 50 == 1);
        ++checked;
      }
    }
  }
  CHECK(checked > 500);
}
