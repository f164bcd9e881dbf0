#!/usr/bin/env bash
# Builds the request fuzzer with clang's libFuzzer and AddressSanitizer, then either replays the
# committed corpus once (--replay: what the test suite runs) or fuzzes for SECONDS (default 60),
# adding new inputs to a copy of the corpus in the build folder.
#   tests/fuzz/run.sh --replay          # exit 77 (skipped) without clang-14 / libfuzzer-14-dev
#   tests/fuzz/run.sh 600               # ten minutes of fuzzing
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${HISTOCNN_BUILD_DIR:-build}/fuzz
CXX=${FUZZ_CXX:-clang++-14}
if ! command -v "$CXX" >/dev/null || [ ! -e /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a ]; then
  echo "fuzz: SKIPPED: $CXX or libFuzzer is not installed (apt-get install clang-14 libfuzzer-14-dev)" >&2
  exit 77
fi
mkdir -p "$BUILD_DIR"
BIN=$BUILD_DIR/fuzz_request
SOURCES=(tests/fuzz/fuzz_request.cpp src/serve/request.cpp src/io/image.cpp src/io/atomic_file.cpp src/core/error.cpp)
if [ ! -x "$BIN" ] || [ -n "$(find "${SOURCES[@]}" include/histocnn/serve/request.h include/histocnn/io/image.h -newer "$BIN")" ]; then
  echo "fuzz: building $BIN with $CXX"
  "$CXX" -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iinclude \
    -I/usr/include/opencv4 "${SOURCES[@]}" -o "$BIN" \
    -lopencv_imgcodecs -lopencv_imgproc -lopencv_core -lfmt
fi
if [ "${1:-}" = "--replay" ]; then
  n=$(ls tests/fuzz/corpus | wc -l)
  "$BIN" -runs=0 tests/fuzz/corpus 2>&1 | tail -3
  echo "fuzz: replayed $n corpus inputs without a crash"
  exit 0
fi
SECONDS_TO_RUN=${1:-60}
mkdir -p "$BUILD_DIR/corpus"
cp -n tests/fuzz/corpus/* "$BUILD_DIR/corpus/" 2>/dev/null || true
# A crash leaves its input in $BUILD_DIR (crash-*) and the full report in $BUILD_DIR/fuzz.log.
status=0
"$BIN" -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$BUILD_DIR/" "$BUILD_DIR/corpus" tests/fuzz/corpus >"$BUILD_DIR/fuzz.log" 2>&1 || status=$?
grep -E "what\(\)|ERROR:|runtime error:|Test unit written" "$BUILD_DIR/fuzz.log" || true
tail -6 "$BUILD_DIR/fuzz.log"
if [ "$status" -ne 0 ]; then
  echo "fuzz: FAILED after $SECONDS s (exit $status); report in $BUILD_DIR/fuzz.log" >&2
  exit "$status"
fi
echo "fuzz: $SECONDS_TO_RUN s without a crash ($(ls "$BUILD_DIR/corpus" | wc -l) inputs in the corpus)"
