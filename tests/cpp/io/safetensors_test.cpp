// test_prelude.h (included first in every test) keeps Catch2's CHECK over glog's.
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/safetensors.h"

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <random>
#include <string>

#include "test_support.h"

using histocnn::io::load_safetensors;
using histocnn::io::parse_safetensors;
using histocnn::io::save_safetensors;
using histocnn::io::serialize_safetensors;
using histocnn::io::TensorMap;
using histocnn::test::TempDir;
using histocnn::test::write_bytes;

namespace {

std::string u64_le(uint64_t v) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return out;
}

// A file made of the given header text (unpadded) and data buffer.
std::string raw_file(const std::string& header, const std::string& buffer) {
  return u64_le(header.size()) + header + buffer;
}

std::string zeros(size_t n) { return std::string(n, '\0'); }

// Writes `bytes` to <dir>/<name>, loads it, and returns the path as a string for messages.
std::string write_case(const TempDir& dir, const std::string& name, const std::string& bytes) {
  auto path = dir / name;
  write_bytes(path, bytes);
  return path.string();
}

}  // namespace

TEST_CASE("safetensors round trip for every dtype, 0-dim and empty tensors", "[io]") {
  TensorMap tensors;
  const std::vector<std::pair<std::string, torch::ScalarType>> dtypes = {
      {"f32", torch::kFloat32}, {"f64", torch::kFloat64}, {"f16", torch::kFloat16},
      {"bf16", torch::kBFloat16}, {"i64", torch::kInt64}, {"i32", torch::kInt32},
      {"i16", torch::kInt16},   {"i8", torch::kInt8},     {"u8", torch::kUInt8}};
  for (const auto& [name, type] : dtypes) {
    tensors[name] = (torch::arange(24, torch::kFloat64).reshape({2, 3, 4}) - 7).to(type);
    tensors[name + "_scalar"] = torch::tensor(5.0).to(type);
    tensors[name + "_empty"] = torch::empty({0, 4}, torch::TensorOptions().dtype(type));
  }
  tensors["f32_precise"] = torch::tensor({1.0f / 3.0f, -1e-30f, 3.4e38f, -0.0f});
  tensors["f64_precise"] = torch::tensor({1.0 / 3.0, 1e-300, -1e300}, torch::kFloat64);
  tensors["bool"] = torch::tensor({true, false, true});
  tensors["bool_scalar"] = torch::tensor(true);
  tensors["empty_middle"] = torch::empty({2, 0, 3});
  tensors["num_batches_tracked"] = torch::tensor(int64_t{123456789012345}, torch::kInt64);

  TempDir dir;
  auto path = dir / "all.safetensors";
  save_safetensors(path, tensors, {{"format", "pt"}, {"note", "ünïcödé \"quoted\""}});
  auto loaded = load_safetensors(path);

  REQUIRE(loaded.tensors.size() == tensors.size());
  for (const auto& [name, expected] : tensors) {
    INFO(name);
    REQUIRE(loaded.tensors.count(name) == 1);
    const auto& got = loaded.tensors.at(name);
    CHECK(got.scalar_type() == expected.scalar_type());
    CHECK(got.sizes() == expected.sizes());
    CHECK(got.dim() == expected.dim());
    CHECK(torch::equal(got, expected));
  }
  CHECK(loaded.tensors.at("num_batches_tracked").dim() == 0);
  CHECK(loaded.tensors.at("num_batches_tracked").item<int64_t>() == 123456789012345);
  CHECK(loaded.metadata == std::map<std::string, std::string>{{"format", "pt"},
                                                              {"note", "ünïcödé \"quoted\""}});
}

TEST_CASE("safetensors header layout is byte exact", "[io]") {
  // {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} is 54 bytes, padded with 2 spaces to 56.
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  REQUIRE(header.size() == 54);
  const std::string expected = std::string("\x38\0\0\0\0\0\0\0", 8) + header + "  " +
                               std::string("\x00\x00\x80\x3f\x00\x00\x20\xc0", 8);  // 1.0f, -2.5f
  const std::string bytes = serialize_safetensors({{"a", torch::tensor({1.0f, -2.5f})}});
  CHECK(bytes == expected);
  CHECK((bytes.size() - 8) % 8 == 0);

  // Metadata comes first; a 0-dim tensor has shape []. 84 bytes of JSON + 4 spaces = 88 = 0x58.
  const std::string header2 =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"I64","shape":[],"data_offsets":[0,8]}})";
  REQUIRE(header2.size() == 84);
  const std::string expected2 = std::string("\x58\0\0\0\0\0\0\0", 8) + header2 + "    " +
                                std::string("\x07\0\0\0\0\0\0\0", 8);
  CHECK(serialize_safetensors({{"b", torch::tensor(int64_t{7})}}, {{"format", "pt"}}) == expected2);
}

TEST_CASE("safetensors sorts by name, packs offsets and makes tensors contiguous", "[io]") {
  auto base = torch::arange(6, torch::kFloat32).reshape({2, 3});
  TensorMap tensors{{"z", base.t()}, {"a", torch::ones({3}, torch::kInt16)}};
  auto file = parse_safetensors(serialize_safetensors(tensors), "memory");
  CHECK(torch::equal(file.tensors.at("z"), base.t()));
  CHECK(file.tensors.at("z").is_contiguous());
  CHECK(file.tensors.at("z").sizes() == std::vector<int64_t>{3, 2});
  const std::string bytes = serialize_safetensors(tensors);
  const auto a_pos = bytes.find("\"a\"");
  const auto z_pos = bytes.find("\"z\"");
  CHECK(a_pos < z_pos);
  CHECK(bytes.find("\"data_offsets\":[0,6]") != std::string::npos);
  CHECK(bytes.find("\"data_offsets\":[6,30]") != std::string::npos);
}

TEST_CASE("safetensors loaded tensors own their memory", "[io]") {
  std::string bytes = serialize_safetensors({{"w", torch::full({4}, 2.0f)}});
  auto file = parse_safetensors(bytes, "memory");
  std::fill(bytes.begin(), bytes.end(), '\0');
  bytes.clear();
  bytes.shrink_to_fit();
  CHECK(torch::equal(file.tensors.at("w"), torch::full({4}, 2.0f)));
}

TEST_CASE("safetensors rejects tensors it cannot save", "[io]") {
  REQUIRE_THROWS_AS(serialize_safetensors({{"c", torch::zeros({2}, torch::kComplexFloat)}}),
                    std::invalid_argument);
  REQUIRE_THROWS_WITH(serialize_safetensors({{"__metadata__", torch::zeros({2})}}),
                      Catch::Contains("reserved"));
  REQUIRE_THROWS_AS(serialize_safetensors({{"u", torch::Tensor()}}), std::invalid_argument);
}

TEST_CASE("safetensors gaps between tensors are allowed", "[io]") {
  const std::string header = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})";
  auto file = parse_safetensors(raw_file(header, std::string("\0\0\0\0\x05\x06", 6)), "gap");
  CHECK(file.tensors.at("a")[1].item<int>() == 6);
}

TEST_CASE("safetensors malformed files give clear errors naming the file", "[io]") {
  TempDir dir;
  const std::string f32_entry = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

  SECTION("missing file") {
    auto path = (dir / "missing.safetensors");
    REQUIRE_THROWS_AS(load_safetensors(path), std::runtime_error);
    REQUIRE_THROWS_WITH(load_safetensors(path), Catch::Contains("missing.safetensors"));
  }
  SECTION("directory") {
    REQUIRE_THROWS_WITH(load_safetensors(dir.path()), Catch::Contains("directory"));
  }
  SECTION("shorter than 8 bytes") {
    auto p = write_case(dir, "short.safetensors", "abc");
    REQUIRE_THROWS_AS(load_safetensors(p), std::invalid_argument);
    REQUIRE_THROWS_WITH(load_safetensors(p), Catch::Contains("short.safetensors") &&
                                                 Catch::Contains("fewer than the 8-byte"));
    auto empty = write_case(dir, "empty.safetensors", "");
    REQUIRE_THROWS_WITH(load_safetensors(empty), Catch::Contains("empty.safetensors"));
  }
  SECTION("header longer than the file") {
    auto p = write_case(dir, "long.safetensors", u64_le(1000) + "{}");
    REQUIRE_THROWS_AS(load_safetensors(p), std::invalid_argument);
    REQUIRE_THROWS_WITH(load_safetensors(p), Catch::Contains("long.safetensors") &&
                                                 Catch::Contains("1000-byte header"));
  }
  SECTION("absurd header length") {
    auto p = write_case(dir, "absurd.safetensors", u64_le(~0ULL) + "{}");
    REQUIRE_THROWS_WITH(load_safetensors(p), Catch::Contains("absurd.safetensors") &&
                                                 Catch::Contains("absurd header length"));
    auto p2 = write_case(dir, "absurd2.safetensors", u64_le(200ULL * 1000 * 1000) + "{}");
    REQUIRE_THROWS_WITH(load_safetensors(p2), Catch::Contains("absurd header length"));
  }
  SECTION("header not JSON") {
    auto p = write_case(dir, "notjson.safetensors", raw_file("{\"a\": [1, 2", ""));
    REQUIRE_THROWS_AS(load_safetensors(p), std::invalid_argument);
    REQUIRE_THROWS_WITH(load_safetensors(p), Catch::Contains("notjson.safetensors") &&
                                                 Catch::Contains("not valid JSON"));
    auto empty_header = write_case(dir, "emptyheader.safetensors", raw_file("", ""));
    REQUIRE_THROWS_WITH(load_safetensors(empty_header), Catch::Contains("not valid JSON"));
    auto bad_utf8 = write_case(dir, "utf8.safetensors", raw_file("{\"\xff\xfe\": 1}", ""));
    REQUIRE_THROWS_WITH(load_safetensors(bad_utf8), Catch::Contains("utf8.safetensors"));
  }
  SECTION("header not an object") {
    auto p = write_case(dir, "array.safetensors", raw_file("[1, 2, 3]", ""));
    REQUIRE_THROWS_AS(load_safetensors(p), std::invalid_argument);
    REQUIRE_THROWS_WITH(load_safetensors(p), Catch::Contains("array.safetensors") &&
                                                 Catch::Contains("not an object"));
  }
  SECTION("entry is not an object") {
    auto p = write_case(dir, "entry.safetensors", raw_file(R"({"a": 5})", ""));
    REQUIRE_THROWS_WITH(load_safetensors(p), Catch::Contains("entry.safetensors") &&
                                                 Catch::Contains("'a'"));
  }
  SECTION("missing dtype, shape or data_offsets") {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"dtype", R"({"shape":[2],"data_offsets":[0,8]})"},
        {"shape", R"({"dtype":"F32","data_offsets":[0,8]})"},
        {"data_offsets", R"({"dtype":"F32","shape":[2]})"},
    };
    for (const auto& [key, entry] : cases) {
      INFO(entry);
      const std::string name = "missing_" + key + ".safetensors";
      auto p = write_case(dir, name, raw_file("{\"a\":" + entry + "}", zeros(8)));
      REQUIRE_THROWS_AS(load_safetensors(p), std::invalid_argument);
      REQUIRE_THROWS_WITH(load_safetensors(p),
                          Catch::Contains(name) && Catch::Contains("no \"" + key + "\""));
    }
  }
  SECTION("wrong field types") {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"({"dtype":3,"shape":[2],"data_offsets":[0,8]})", "non-string dtype"},
        {R"({"dtype":"F32","shape":"2","data_offsets":[0,8]})", "not a list"},
        {R"({"dtype":"F32","shape":[2.5],"data_offsets":[0,8]})", "not an integer"},
        {R"({"dtype":"F32","shape":[2],"data_offsets":[0]})", "needs data_offsets"},
        {R"({"dtype":"F32","shape":[2],"data_offsets":"0,8"})", "needs data_offsets"},
        {R"({"dtype":"F32","shape":[2],"data_offsets":[0,8.0]})", "non-negative integers"},
        {R"({"dtype":"F32","shape":[2],"data_offsets":[-1,8]})", "non-negative integers"},
    };
    int i = 0;
    for (const auto& [entry, phrase] : cases) {
      INFO(entry);
      const std::string name = "types" + std::to_string(i++) + ".safetensors";
      auto p = write_case(dir, name, raw_file("{\"a\":" + entry + "}", zeros(8)));
      REQUIRE_THROWS_AS(load_safetensors(p), std::invalid_argument);
      REQUIRE_THROWS_WITH(load_safetensors(p), Catch::Contains(name) && Catch::Contains(phrase));
    }
  }
  SECTION("metadata must be an object of strings") {
    auto p = write_case(dir, "meta.safetensors", raw_file(R"({"__metadata__":{"k":1}})", ""));
    REQUIRE_THROWS_WITH(load_safetensors(p), Catch::Contains("meta.safetensors") &&
                                                 Catch::Contains("must be a string"));
    auto p2 = write_case(dir, "meta2.safetensors", raw_file(R"({"__metadata__":[1]})", ""));
    REQUIRE_THROWS_AS(load_safetensors(p2), std::invalid_argument);
  }
  SECTION("unknown dtype") {
    auto p = write_case(dir, "dtype.safetensors",
                        raw_file(R"({"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})",
                                 zeros(2)));
    REQUIRE_THROWS_AS(load_safetensors(p), std::invalid_argument);
    REQUIRE_THROWS_WITH(load_safetensors(p), Catch::Contains("dtype.safetensors") &&
                                                 Catch::Contains("unsupported dtype 'F8_E4M3'"));
  }
  SECTION("negative dims") {
    auto p = write_case(dir, "negdim.safetensors",
                        raw_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})",
                                 zeros(8)));
    REQUIRE_THROWS_WITH(load_safetensors(p), Catch::Contains("negdim.safetensors") &&
                                                 Catch::Contains("negative dimension"));
  }
  SECTION("begin > end") {
    auto p = write_case(dir, "order.safetensors",
                        raw_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})",
                                 zeros(8)));
    REQUIRE_THROWS_WITH(load_safetensors(p), Catch::Contains("order.safetensors") &&
                                                 Catch::Contains("begin > end"));
  }
  SECTION("end beyond the buffer") {
    auto p = write_case(dir, "beyond.safetensors",
                        raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                 zeros(7)));
    REQUIRE_THROWS_WITH(load_safetensors(p), Catch::Contains("beyond.safetensors") &&
                                                 Catch::Contains("only 7 bytes"));
    auto huge = write_case(
        dir, "huge.safetensors",
        raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}})",
                 zeros(8)));
    REQUIRE_THROWS_WITH(load_safetensors(huge), Catch::Contains("huge.safetensors"));
  }
  SECTION("byte count does not match the shape") {
    auto p = write_case(dir, "count.safetensors",
                        raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                                 zeros(8)));
    REQUIRE_THROWS_WITH(load_safetensors(p), Catch::Contains("count.safetensors") &&
                                                 Catch::Contains("cover 8 bytes"));
    // A product of dimensions that overflows 64 bits must not wrap around to a small number.
    auto overflow = write_case(
        dir, "overflow.safetensors",
        raw_file(R"({"a":{"dtype":"U8","shape":[4294967296,4294967296,1],"data_offsets":[0,0]}})",
                 ""));
    REQUIRE_THROWS_WITH(load_safetensors(overflow), Catch::Contains("overflow.safetensors"));
    auto scalar = write_case(dir, "scalar.safetensors",
                             raw_file(R"({"a":{"dtype":"I64","shape":[],"data_offsets":[0,4]}})",
                                      zeros(8)));
    REQUIRE_THROWS_WITH(load_safetensors(scalar), Catch::Contains("8 bytes expected"));
  }
  SECTION("overlapping tensors") {
    auto p = write_case(
        dir, "overlap.safetensors",
        raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                 zeros(8)));
    REQUIRE_THROWS_AS(load_safetensors(p), std::invalid_argument);
    REQUIRE_THROWS_WITH(load_safetensors(p), Catch::Contains("overlap.safetensors") &&
                                                 Catch::Contains("overlap"));
    // An empty tensor inside another's range occupies no bytes and is fine.
    auto ok = write_case(
        dir, "empty_inside.safetensors",
        raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("b":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                 zeros(8)));
    CHECK(load_safetensors(ok).tensors.size() == 2);
  }
  SECTION("duplicate names") {
    auto p = write_case(dir, "dup.safetensors",
                        raw_file("{\"a\":" + f32_entry + ",\"a\":" + f32_entry + "}", zeros(8)));
    REQUIRE_THROWS_WITH(load_safetensors(p), Catch::Contains("dup.safetensors") &&
                                                 Catch::Contains("twice"));
  }
  SECTION("BOOL bytes other than 0 and 1") {
    auto p = write_case(dir, "bool.safetensors",
                        raw_file(R"({"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})",
                                 std::string("\x01\x02", 2)));
    REQUIRE_THROWS_WITH(load_safetensors(p), Catch::Contains("bool.safetensors"));
  }
}

TEST_CASE("safetensors parser survives corrupted input", "[io]") {
  TensorMap tensors{{"a", torch::randn({3, 4})},
                    {"b", torch::arange(5, torch::kInt64)},
                    {"c", torch::tensor(int64_t{3})},
                    {"d", torch::tensor({true, false})},
                    {"e", torch::empty({0})}};
  const std::string valid = serialize_safetensors(tensors, {{"k", "v"}});
  REQUIRE_NOTHROW(parse_safetensors(valid, "valid"));

  std::mt19937 rng(1234);
  int parsed = 0;
  int rejected = 0;
  for (int round = 0; round < 600; ++round) {
    std::string bytes = valid;
    const int mode = round % 4;
    if (mode == 0) {  // flip a few random bytes anywhere
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < flips; ++i) bytes[rng() % bytes.size()] = static_cast<char>(rng() & 0xff);
    } else if (mode == 1) {  // truncate
      bytes.resize(rng() % bytes.size());
    } else if (mode == 2) {  // flip bytes inside the header only
      const size_t header_end = 8 + static_cast<unsigned char>(valid[0]) +
                                256 * static_cast<unsigned char>(valid[1]);
      for (int i = 0; i < 3; ++i) bytes[8 + rng() % (header_end - 8)] = static_cast<char>(rng() & 0xff);
    } else {  // corrupt the length prefix
      bytes[rng() % 8] = static_cast<char>(rng() & 0xff);
    }
    try {
      auto file = parse_safetensors(bytes, "fuzz");
      for (const auto& [name, t] : file.tensors) (void)t.sum();
      ++parsed;
    } catch (const std::exception&) {
      ++rejected;
    }
  }
  CHECK(parsed + rejected == 600);
  CHECK(rejected > 0);
}

TEST_CASE("safetensors loads the shared MobileNetV2 weights", "[io][.weights]") {
  auto path = histocnn::test::shared_weight(
      "mobilenet_v2_1.0_224_quant/mobilenet_v2_1.0_224.torchvision.safetensors");
  auto file = load_safetensors(path);
  CHECK(file.tensors.size() == 314);
  CHECK(file.metadata.at("format") == "pt");

  const auto& w = file.tensors.at("features.0.0.weight");
  CHECK(w.sizes() == std::vector<int64_t>{32, 3, 3, 3});
  CHECK(w.scalar_type() == torch::kFloat32);
  const auto& c = file.tensors.at("classifier.1.weight");
  CHECK(c.sizes() == std::vector<int64_t>{1000, 1280});
  const auto& nbt = file.tensors.at("features.0.1.num_batches_tracked");
  CHECK(nbt.dim() == 0);
  CHECK(nbt.scalar_type() == torch::kInt64);
  CHECK(nbt.item<int64_t>() == 0);

  // Expected values computed independently with Debian's system python3: struct.unpack('<Q')
  // for the header length, json.loads for the header, np.frombuffer(..., dtype=np.float32) on
  // the data_offsets slice and reshape to the shape; bit patterns via struct.pack('<f').
  //   features.0.0.weight[0,0,0,0]   = -0.5095338821411133  (0xbf0270d0)
  //   features.0.0.weight[5,1,2,0]   = -0.30572032928466797 (0xbe9c8760)
  //   classifier.1.weight[999,1279]  = -0.0591878741979599  (0xbd726efc)
  //   classifier.1.weight[123,456]   = -0.04904138296842575 (0xbd48df9e)
  //   sum(features.0.0.weight) in float64 = -16.50889778137207
  //   sum(classifier.1.weight) in float64 = 1196.4202979069669
  CHECK(w[0][0][0][0].item<float>() == -0.5095338821411133f);
  CHECK(w[5][1][2][0].item<float>() == -0.30572032928466797f);
  CHECK(c[999][1279].item<float>() == -0.0591878741979599f);
  CHECK(c[123][456].item<float>() == -0.04904138296842575f);
  CHECK(w.to(torch::kFloat64).sum().item<double>() == Approx(-16.50889778137207).epsilon(1e-12));
  CHECK(c.to(torch::kFloat64).sum().item<double>() == Approx(1196.4202979069669).epsilon(1e-9));
}

TEST_CASE("safetensors loads the shared SqueezeNet features and re-saves them identically", "[io][.weights]") {
  auto path = histocnn::test::shared_weight(
      "squeezenet1_1_notop/squeezenet1_1_features.torchvision.safetensors");
  auto file = load_safetensors(path);
  CHECK(file.tensors.size() == 50);
  CHECK(file.tensors.at("features.0.weight").sizes() == std::vector<int64_t>{64, 3, 3, 3});
  // Checked with Debian's python3 + numpy as above: features.0.bias[0] = -0.014374157.
  CHECK(file.tensors.at("features.0.bias")[0].item<float>() == Approx(-0.014374157f));

  auto again = parse_safetensors(serialize_safetensors(file.tensors, file.metadata), "re-saved");
  REQUIRE(again.tensors.size() == file.tensors.size());
  for (const auto& [name, t] : file.tensors) CHECK(torch::equal(again.tensors.at(name), t));
  CHECK(again.metadata == file.metadata);
}
