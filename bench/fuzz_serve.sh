#!/usr/bin/env bash
# Fuzzes the server's request path (JSON, base64, image headers, image decoding) for SECONDS
# (default 60) with clang's libFuzzer, AddressSanitizer and UBSan. See docs/serving.md, "Fuzzing".
#   bench/fuzz_serve.sh 600
exec "$(dirname "$0")/../tests/fuzz/run.sh" "${1:-60}"
