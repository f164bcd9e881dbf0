#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "histocnn/core/error.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/folder_lock.h"

#include <unistd.h>
#include "test_support.h"

namespace fs = std::filesystem;
using histocnn::io::read_file;
using histocnn::io::write_file_atomic;
using histocnn::test::TempDir;
using histocnn::test::write_bytes;

namespace {
std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}
}  // namespace

TEST_CASE("write_file_atomic writes the content and read_file reads it back", "[io]") {
  TempDir dir;
  std::string binary("a\0b\xff\n\r", 6);
  write_file_atomic(dir / "file.bin", binary);
  CHECK(read_file(dir / "file.bin") == binary);
  CHECK(fs::file_size(dir / "file.bin") == 6);

  write_file_atomic(dir / "empty.txt", "");
  CHECK(read_file(dir / "empty.txt").empty());

  std::string big(3 * 1000 * 1000 + 17, 'x');
  for (size_t i = 0; i < big.size(); i += 997) big[i] = static_cast<char>(i & 0xff);
  write_file_atomic(dir / "big.bin", big);
  CHECK(read_file(dir / "big.bin") == big);
}

TEST_CASE("write_file_atomic creates missing parent folders", "[io]") {
  TempDir dir;
  auto path = dir / "a/b/c/model.json";
  write_file_atomic(path, "{}");
  CHECK(read_file(path) == "{}");
  CHECK(entries(dir / "a/b/c") == std::vector<std::string>{"model.json"});
}

TEST_CASE("write_file_atomic overwrites whole and leaves no temporary files", "[io]") {
  TempDir dir;
  auto path = dir / "weights.bin";
  write_file_atomic(path, std::string(100000, 'a'));
  write_file_atomic(path, "short");
  CHECK(read_file(path) == "short");
  write_file_atomic(path, std::string(5000, 'b'));
  CHECK(read_file(path) == std::string(5000, 'b'));
  CHECK(entries(dir.path()) == std::vector<std::string>{"weights.bin"});

  // Concurrent writers: every read sees one complete version, never a mix.
  const std::string v1(200000, '1');
  const std::string v2(100000, '2');
  std::thread writer([&] {
    for (int i = 0; i < 20; ++i) write_file_atomic(path, i % 2 ? v1 : v2);
  });
  for (int i = 0; i < 20; ++i) {
    std::string got = read_file(path);
    CHECK((got == v1 || got == v2 || got == std::string(5000, 'b')));
  }
  writer.join();
  CHECK(entries(dir.path()) == std::vector<std::string>{"weights.bin"});
}

TEST_CASE("write_file_atomic failures throw runtime_error naming the path", "[io]") {
  TempDir dir;
  write_bytes(dir / "regular", "I am a file");
  auto under_file = dir / "regular" / "sub" / "x.bin";
  REQUIRE_THROWS_AS(write_file_atomic(under_file, "data"), std::runtime_error);
  REQUIRE_THROWS_WITH(write_file_atomic(under_file, "data"), Catch::Contains(under_file.string()));
  CHECK(read_file(dir / "regular") == "I am a file");

  auto directly_under_file = dir / "regular" / "x.bin";
  REQUIRE_THROWS_WITH(write_file_atomic(directly_under_file, "data"),
                      Catch::Contains(directly_under_file.string()));

  fs::create_directory(dir / "folder");
  write_bytes(dir / "folder" / "keep", "k");
  REQUIRE_THROWS_AS(write_file_atomic(dir / "folder", "data"), std::runtime_error);
  REQUIRE_THROWS_WITH(write_file_atomic(dir / "folder", "data"), Catch::Contains("folder"));
  CHECK(entries(dir / "folder") == std::vector<std::string>{"keep"});
  CHECK(entries(dir.path()) == std::vector<std::string>{"folder", "regular"});
}

TEST_CASE("read_file errors name the file", "[io]") {
  TempDir dir;
  auto missing = dir / "nope.txt";
  REQUIRE_THROWS_AS(read_file(missing), histocnn::NotFoundError);  // the error rule: a missing file is not-found
  REQUIRE_THROWS_WITH(read_file(missing),
                      Catch::Contains("nope.txt") && Catch::Contains("does not exist"));
  REQUIRE_THROWS_AS(read_file(dir.path()), std::runtime_error);
  REQUIRE_THROWS_WITH(read_file(dir.path()),
                      Catch::Contains(dir.path().string()) && Catch::Contains("is a directory"));
}

TEST_CASE("A folder lock admits one writer, names it to the next, and is released on destruction", "[io]") {
  histocnn::test::TempDir dir;
  const auto folder = dir / "run";
  {
    histocnn::io::FolderLock first(folder, "run folder", false);
    CHECK(std::filesystem::is_directory(folder));
    // A second lock (here in the same process: flock locks conflict between open files) is refused,
    // with the holder's process id and what to do.
    CHECK_THROWS_AS(histocnn::io::FolderLock(folder, "run folder", false), histocnn::io::FolderBusy);
    CHECK_THROWS_WITH(histocnn::io::FolderLock(folder, "run folder", false),
                      Catch::Contains("is being written by process " + std::to_string(::getpid())) &&
                          Catch::Contains("--wait"));
  }
  histocnn::io::FolderLock again(folder, "run folder", false);  // released: taken at once
}
