#!/usr/bin/env bash
# Installs the Debian 12 packages histocnn needs to build and run; with --test also what the tests
# and benchmarks drive (a headless browser, Flask, libFuzzer, wrk). Idempotent; run as root.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-pthread
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libeigen3-dev libfmt-dev nlohmann-json3-dev libcli11-dev catch2 libhdf5-dev
  pybind11-dev python3-dev python3-pybind11
  python3-torch python3-torchvision python3-numpy python3-pytest python3-sklearn
  python3-protobuf python3-crc32c python3-pandas python3-tqdm python3-pil python3-matplotlib python3-h5py
  python3-nbclient python3-nbformat python3-ipykernel
  python3-pip python3-venv python3-setuptools python3-wheel
  libcpp-httplib-dev prometheus-cpp-dev libjs-bootstrap5 python3-requests
  libyaml-cpp-dev libsqlitecpp-dev libsqlite3-dev libopenslide-dev libtiff-dev
  libgloo-dev
)
if [ "${1:-}" = "--test" ]; then
  PACKAGES+=(chromium chromium-driver python3-selenium python3-flask clang-14 libfuzzer-14-dev wrk
             python3-jsonschema python3-yaml)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run this script as root (or with sudo) to install them" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
