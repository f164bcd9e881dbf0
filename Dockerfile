# histocnn model server: `histocnn serve`, TensorFlow Serving's REST API on port 8501.
#
#   docker build -t histocnn:0.1.0 .
#   docker run --rm -p 8501:8501 -v "$PWD/models:/models:ro" histocnn:0.1.0
#
# The volume holds /models/idc/<version>/{model.safetensors,model.json}: numeric version folders in
# the layout of a run's model/ folder (`histocnn push runs/<run> models/idc` adds the next one). The
# newest version is served; a folder added later is picked up without a restart. The image also
# carries the rest of the command-line tool (`histocnn push`, `histocnn models rollback`, ...), and it
# is the image every step of a compiled Kubeflow pipeline runs (`histocnn pipeline component NAME
# ...`, docs/pipeline.md): the steps override the entrypoint's arguments.
#
# Two stages: the build stage installs the repository's own build dependencies
# (scripts/install-deps.sh) and compiles the library and the command-line tool; the runtime stage
# has only the shared libraries those need, the installed files and a non-root user.

# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS build

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src

# The dependency script alone first: editing the sources does not reinstall the packages.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN bash scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*

COPY . .

# scripts/build.sh also builds the Python bindings and the Catch2 tests, which the image does not
# ship: call CMake with the same generator and build type, without them. BUILD_JOBS caps the
# parallel compiles (each LibTorch translation unit takes 1-2 GB of memory).
ARG BUILD_JOBS=
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DHISTOCNN_BUILD_TESTS=OFF -DHISTOCNN_BUILD_PYTHON=OFF \
 && CCACHE_DISABLE=1 cmake --build /build -j "${BUILD_JOBS:-$(nproc)}" \
 && cmake --install /build --prefix /usr/local

# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The run-time halves of the -dev packages in scripts/install-deps.sh (from `apt-cache depends`):
#   libtorch-dev -> libtorch1.13 (BLAS/LAPACK through libopenblas0-pthread)
#   libopencv-{core,imgproc,imgcodecs}-dev -> libopencv-{core,imgproc,imgcodecs}406
#   libfmt-dev -> libfmt9; libhdf5-dev -> libhdf5-103-1
#   libcpp-httplib-dev -> libcpp-httplib0.11
#   libyaml-cpp-dev -> libyaml-cpp0.7; libsqlite3-dev -> libsqlite3-0 (libsqlitecpp-dev is a static library)
#   libopenslide-dev -> libopenslide0; libtiff-dev -> libtiff6
#   prometheus-cpp-dev -> libprometheus-cpp-core1.0 (the server links prometheus-cpp::core only)
#   libjs-bootstrap5: the page's CSS and JS, served from /usr/share/javascript/bootstrap5/
# nlohmann-json3-dev, libcli11-dev and libeigen3-dev are header-only. curl is for HEALTHCHECK.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libtorch1.13 libopenblas0-pthread \
        libopencv-core406 libopencv-imgproc406 libopencv-imgcodecs406 \
        libfmt9 libhdf5-103-1 \
        libcpp-httplib0.11 libprometheus-cpp-core1.0 \
        libyaml-cpp0.7 libsqlite3-0 libopenslide0 libtiff6 libgloo0 \
        libjs-bootstrap5 \
        curl \
 && rm -rf /var/lib/apt/lists/*

# What `cmake --install` wrote: the executable and libhistocnn.so* (with its CMake package files).
COPY --from=build /usr/local/bin/histocnn /usr/local/bin/histocnn
COPY --from=build /usr/local/lib/ /usr/local/lib/

# Fail the build here, not at the first request, if a library the binary links is missing.
RUN ldconfig \
 && if ldd /usr/local/bin/histocnn | grep 'not found'; then exit 1; fi \
 && histocnn --version

# A numeric non-root user: Kubernetes' runAsNonRoot can only verify a numeric USER.
RUN groupadd --system --gid 10001 histocnn \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/histocnn --create-home \
        --shell /usr/sbin/nologin histocnn \
 && mkdir -p /models
USER 10001:10001
WORKDIR /home/histocnn

LABEL org.opencontainers.image.title="histocnn" \
      org.opencontainers.image.description="IDC classification of breast histology patches behind TensorFlow Serving's REST API" \
      org.opencontainers.image.licenses="Apache-2.0"

EXPOSE 8501
# SIGTERM (the default stop signal; SIGINT too) makes the server finish the requests in flight and
# exit 0. SIGHUP makes it read its configuration again.
STOPSIGNAL SIGTERM
# /healthz answers as soon as the server listens; /readyz only once a model version is AVAILABLE.
# The port is the one in CMD: a container started with another --port needs --health-cmd too.
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8501/healthz"]

ENTRYPOINT ["histocnn"]
CMD ["serve", "--model-base-path", "/models/idc", "--model-name", "idc", "--host", "0.0.0.0", "--port", "8501"]
