#!/usr/bin/env python3
"""Serving throughput: `histocnn serve` against a Flask + PyTorch server, in the same run.

Both servers answer TensorFlow Serving's `POST /v1/models/idc:predict` with
`{"instances": [{"b64": "<PNG>"}]}` -> `{"predictions": [[p_neg, p_pos]]}` for the same model bundle
(`model.safetensors` + `model.json`, a MobileNetV2 backbone with the study's dense head):

  * `histocnn serve`, with batching (`--enable-batching --max-batch-size 32
    --batch-timeout-micros 2000`) and without (both with `--no-access-log`, as Flask's is off);
  * Flask + PyTorch, as the study served it: torchvision's `mobilenet_v2().features` plus the same
    dense head, loaded from the bundle's weights (every key and shape checked, strict), run by Flask's
    threaded development server (Werkzeug, one process, HTTP/1.1 keep-alive; request logging off).
    The preprocessing is the bundle's (`model.json` `preprocessing`: white padding to `pad_to`, OpenCV's
    bilinear resize, mean/std), with OpenCV's fixed-point INTER_LINEAR ported to numpy so that both
    servers see the same pixels. `--flask-workers N` pre-forks N such servers on one listening socket
    (gunicorn's model; gunicorn itself is not installed on Debian 12 here). `--servers` can add
    `flask-channels-last`: the same Flask server running its convolutions on NHWC tensors, as histocnn
    does on the CPU, which tells what the model's kernels buy from what the serving stack buys.

Real patches (Kaggle layout `<patient>/<class>/<file>.png`) are sent one patch per request by 1, 8 and
32 concurrent clients with persistent connections, each cell `--duration` seconds after a warm-up;
the table gives requests/s, p50/p99 latency, errors and the ratios to the ceiling and to Flask.

The ceiling is the model itself: in the same run, the bundle's batched throughput through histocnn's
inference path (`histocnn.Predictor(model).predict_proba(arrays, batch_size=32)`, patches/s, with one
thread per core as `histocnn serve` runs) and its single-patch latency, from the Python package in
`build/python` (this fails with a message when the bindings are not importable). It is measured before
and after the servers and the higher rate is taken: on a small VM the speed drifts by 10-30 %.

Correctness comes first: before a server is timed, the same patches (one request with all of them,
and one request per patch from 8 clients) are sent to it and its probabilities are compared with the
ceiling's and with Flask's; a difference above 1e-4 stops the run with exit status 2. A MISS of a
performance target still exits 0: this is a benchmark.

Run it with Debian's interpreter, /usr/bin/python3 (the one that has python3-torch, torchvision and
Flask; the `python3` first on PATH may be another one without torch):

    /usr/bin/python3 bench/serve_vs_flask.py --model runs/<run>/model
    /usr/bin/python3 bench/serve_vs_flask.py --model runs/<run>/model/1 --clients 1,8,32 --duration 10 \\
        --out serve_vs_flask.md
    /usr/bin/python3 bench/serve_vs_flask.py --model runs/<run>/model --smoke     # under a minute

The load generator is a client on the same machine, sharing its cores with the servers: `--loadgen
wrk` (default, C, epoll, a Lua script cycling through the request bodies; about 0.02 cores at 200
requests/s where the Python client takes 0.07) or `--loadgen python` (one thread and one keep-alive
`http.client` connection per client, and `--requests` to cap a cell); the table shows the CPU the
server, the client and everything else on the machine used. Run it on an otherwise idle machine:
with torch's OpenMP threads on every core, a second job slows PyTorch (and histocnn) by far more than
its share, and the report says when the machine was not idle.
"""
import argparse
import base64
import http.client
import io
import json
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-4
MODEL_NAME = "idc"
PREDICT_PATH = f"/v1/models/{MODEL_NAME}:predict"
SERVER_KINDS = ("flask", "flask-channels-last", "batching", "no-batching")
HISTOCNN_BATCHING = ["--enable-batching", "--max-batch-size", "32", "--batch-timeout-micros", "2000"]


def fail(message, status=1):
    print(f"serve_vs_flask: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


# ---------------------------------------------------------------------------------------------
# The model bundle
# ---------------------------------------------------------------------------------------------

def bundle_complete(d):
    return os.path.isfile(os.path.join(d, "model.json")) and os.path.isfile(os.path.join(d, "model.safetensors"))


def resolve_bundle(path):
    """A version folder, or a model folder whose newest complete numeric version is taken (as histocnn)."""
    p = os.path.abspath(path)
    if not os.path.isdir(p):
        fail(f"--model '{path}' is not a folder")
    if bundle_complete(p):
        return p
    versions = [int(d) for d in os.listdir(p) if d.isdigit() and bundle_complete(os.path.join(p, d))]
    if not versions:
        fail(f"--model '{path}' holds neither model.json + model.safetensors nor numeric version folders with them")
    return os.path.join(p, str(max(versions)))


SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                      "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        if info["dtype"] == "BF16":
            raw = np.frombuffer(data, dtype=np.uint16, count=(end - begin) // 2, offset=base + begin)
            arr = (raw.astype(np.uint32) << 16).view(np.float32)
        else:
            dt = np.dtype(SAFETENSORS_DTYPES[info["dtype"]])
            arr = np.frombuffer(data, dtype=dt, count=(end - begin) // dt.itemsize, offset=base + begin)
        tensors[name] = arr.reshape(info["shape"]).copy()
    return tensors


# ---------------------------------------------------------------------------------------------
# The bundle's preprocessing in numpy: decode, white padding, OpenCV's bilinear resize, mean/std
# ---------------------------------------------------------------------------------------------

def decode_rgb(data):
    """Image bytes -> HxWx3 uint8 RGB (alpha dropped, gray expanded, 16 bit scaled as histocnn does)."""
    from PIL import Image
    img = Image.open(io.BytesIO(data))
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img).astype(np.float64)
        a = np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(a[:, :, None], 3, axis=2))
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


_INTER_RESIZE_COEF_SCALE = 2048  # OpenCV's INTER_RESIZE_COEF_BITS = 11


def _linear_tables(src, dst, clamp):
    """OpenCV resizeGeneric's source offsets and fixed-point weights for one axis (INTER_LINEAR, 8U)."""
    scale = 1.0 / (float(dst) / float(src))
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    if clamp:  # only the x axis is clamped in the tables; y rows are clipped when read
        low = s < 0
        f[low], s[low] = 0, 0
        high = s >= src - 1
        f[high], s[high] = 0, src - 1
    w0 = np.rint((np.float32(1) - f) * np.float32(_INTER_RESIZE_COEF_SCALE)).astype(np.int32)
    w1 = np.rint(f * np.float32(_INTER_RESIZE_COEF_SCALE)).astype(np.int32)
    return s, w0, w1


def cv_resize_linear(img, size):
    """cv::resize(img, (size, size), INTER_LINEAR) for HxWx3 uint8, bit for bit (x86 SIMD path)."""
    h, w = img.shape[:2]
    if h == 2 * size and w == 2 * size:  # OpenCV switches to INTER_AREA for exact halving
        s = img.astype(np.int32)
        return ((s[0::2, 0::2] + s[0::2, 1::2] + s[1::2, 0::2] + s[1::2, 1::2] + 2) >> 2).astype(np.uint8)
    sx, a0, a1 = _linear_tables(w, size, clamp=True)
    sy, b0, b1 = _linear_tables(h, size, clamp=False)
    src = img.astype(np.int32)
    x1 = np.minimum(sx + 1, w - 1)
    rows = src[:, sx, :] * a0[None, :, None] + src[:, x1, :] * a1[None, :, None]   # [h, size, 3], int32
    r0 = np.clip(sy, 0, h - 1)
    r1 = np.clip(sy + 1, 0, h - 1)
    # VResizeLinearVec_32s8u: v_rshr_pack_u<2>(v_mul_hi(S0 >> 4, b0) + v_mul_hi(S1 >> 4, b1)).
    t0 = ((np.minimum(rows[r0] >> 4, 32767) * b0[:, None, None]) >> 16)
    t1 = ((np.minimum(rows[r1] >> 4, 32767) * b1[:, None, None]) >> 16)
    return np.clip((t0 + t1 + 2) >> 2, 0, 255).astype(np.uint8)


class Preprocessing:
    """model.json `preprocessing`: pad white (bottom/right) to pad_to, resize to image_size, (x/255 - mean)/std."""

    def __init__(self, pre):
        self.image_size = int(pre["image_size"])
        self.pad_to = int(pre.get("pad_to", 50))
        mean, std = pre["mean"], pre["std"]
        self.scale = np.array([1.0 / (255.0 * s) for s in std], dtype=np.float32)
        self.shift = np.array([-m / s for m, s in zip(mean, std)], dtype=np.float32)

    def prepare(self, rgb):
        h, w = rgb.shape[:2]
        if h < self.pad_to or w < self.pad_to:
            padded = np.full((max(h, self.pad_to), max(w, self.pad_to), 3), 255, dtype=np.uint8)
            padded[:h, :w] = rgb
            rgb = padded
        if rgb.shape[0] == self.image_size and rgb.shape[1] == self.image_size:
            return rgb
        return cv_resize_linear(rgb, self.image_size)

    def __call__(self, rgb):
        """HxWx3 uint8 -> 3xSxS float32, the same float arithmetic as histocnn's normalise_into."""
        x = self.prepare(rgb).astype(np.float32) * self.scale + self.shift
        return np.ascontiguousarray(x.transpose(2, 0, 1))


# ---------------------------------------------------------------------------------------------
# The Flask + PyTorch server
# ---------------------------------------------------------------------------------------------

def build_torch_model(bundle, channels_last=False):
    """torchvision's mobilenet_v2().features + the study's dense head, with the bundle's weights (strict).
    channels_last: run the convolutions on NHWC tensors (what histocnn does on the CPU; a plain PyTorch
    script, and the study, use NCHW)."""
    import torch
    import torchvision
    from torch import nn

    meta = json.load(open(os.path.join(bundle, "model.json")))
    c = meta.get("classifier", {})
    if c.get("backbone") != "mobilenet_v2" or c.get("head", "dense") != "dense":
        fail(f"the Flask baseline knows MobileNetV2 with the dense head; this bundle has backbone "
             f"'{c.get('backbone')}' and head '{c.get('head', 'dense')}'")

    class DenseHead(nn.Module):
        def __init__(self, in_features):
            super().__init__()
            self.fc1 = nn.Linear(in_features, int(c.get("hidden1", 512)))
            self.dropout1 = nn.Dropout(float(c.get("dropout", 0.2)))
            self.fc2 = nn.Linear(int(c.get("hidden1", 512)), int(c.get("hidden2", 128)))
            self.dropout2 = nn.Dropout(float(c.get("dropout", 0.2)))
            self.bn = nn.BatchNorm1d(int(c.get("hidden2", 128))) if c.get("batch_norm") else None
            self.logits = nn.Linear(int(c.get("hidden2", 128)), int(c.get("num_classes", 2)))

        def forward(self, x):
            x = self.dropout1(torch.relu(self.fc1(x)))
            x = self.dropout2(torch.relu(self.fc2(x)))
            if self.bn is not None:
                x = self.bn(x)
            return self.logits(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Module()
            self.backbone.features = torchvision.models.mobilenet_v2().features
            self.head = DenseHead(1280)

        def forward(self, x):
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            f = nn.functional.adaptive_avg_pool2d(self.backbone.features(x), 1).flatten(1)
            return self.head(f)

    net = Net()
    if c.get("tf_padding"):
        # TensorFlow "SAME" padding (what histocnn's tf_padding does): pad (bottom, right) first.
        def same_pad(conv, inputs):
            x = inputs[0]
            k, s = conv.kernel_size[0], conv.stride[0]

            def pad_for(n):
                return max((-(-n // s) - 1) * s + k - n, 0)

            ph, pw = pad_for(x.shape[2]), pad_for(x.shape[3])
            return (nn.functional.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)),)

        for m in net.backbone.features.modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size[0] > 1:
                m.padding = (0, 0)
                m.register_forward_pre_hook(same_pad)

    weights = read_safetensors(os.path.join(bundle, "model.safetensors"))
    expected = net.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = [f"{k}: bundle {list(weights[k].shape)}, torchvision {list(expected[k].shape)}"
              for k in sorted(set(expected) & set(weights)) if tuple(weights[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:
        fail("the bundle's state dict does not match torchvision mobilenet_v2 + dense head: "
             f"missing {missing[:10]} ({len(missing)}), unexpected {unexpected[:10]} ({len(unexpected)}), "
             f"shapes {shapes[:10]}")
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}, strict=True)
    net.eval()
    return net, Preprocessing(meta["preprocessing"]), len(weights)


def flask_worker(args):
    """One Flask process serving :predict on an inherited listening socket (threaded Werkzeug server)."""
    import logging

    import flask
    import torch
    import torchvision
    from werkzeug.serving import make_server

    torch.set_num_threads(args.flask_threads)
    net, pre, n_tensors = build_torch_model(args.model, args.flask_channels_last)
    app = flask.Flask("histocnn_flask_baseline")

    @app.route("/v1/models/<name>:predict", methods=["POST"])
    def predict(name):
        if name != MODEL_NAME:
            return flask.jsonify(error=f"Servable not found for request: Latest({name})"), 404
        try:
            body = flask.request.get_json(force=True)
            images = [decode_rgb(base64.b64decode(i["b64"])) for i in body["instances"]]
            x = torch.from_numpy(np.stack([pre(im) for im in images]))
        except Exception as e:  # noqa: BLE001 -- a bad request, answered as TF Serving does
            return flask.jsonify(error=str(e)), 400
        with torch.inference_mode():
            p = torch.softmax(net(x), 1)
        return flask.jsonify(predictions=p.tolist())

    @app.route("/healthz")
    def healthz():
        return flask.jsonify(status="alive")

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request log line
    server = make_server("127.0.0.1", 0, app, threaded=True, fd=args.flask_fd)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print("FLASK-READY " + json.dumps({"torch": torch.__version__, "torchvision": torchvision.__version__,
                                       "flask": flask.__version__, "threads": torch.get_num_threads(),
                                       "state_dict_tensors": n_tensors}), flush=True)
    server.serve_forever()


# ---------------------------------------------------------------------------------------------
# The ceiling: histocnn's own batched inference path, from its Python package
# ---------------------------------------------------------------------------------------------

def ceiling_worker(args):
    sys.path.insert(0, args.histocnn_python)
    try:
        import histocnn
    except Exception as e:  # noqa: BLE001
        fail(f"cannot import histocnn's Python package from '{args.histocnn_python}' ({type(e).__name__}: {e}); "
             "build the bindings (scripts/build.sh builds build/python for /usr/bin/python3) or pass "
             "--histocnn-python", 3)
    spec = json.load(open(args.ceiling_spec))
    images = [decode_rgb(open(p, "rb").read()) for p in spec["patches"]]
    check = [decode_rgb(open(p, "rb").read()) for p in spec["check"]]
    # One intra-op thread per core, as `histocnn serve` configures itself (a Python process that imports
    # torch may start with fewer: Debian's torch starts with one here).
    if hasattr(histocnn, "configure_threads"):
        threads = histocnn.configure_threads(0)
    else:
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
        threads = torch.get_num_threads()
    predictor = histocnn.Predictor(args.model)
    batch, seconds = 32, spec["seconds"]
    work = (images * (1 + 256 // len(images)))[:256]
    predictor.predict_proba(work[:batch], batch_size=batch)  # warm-up
    # Chunks of 256 patches (8 batches); the median chunk's rate is robust to a moment of interference.
    n, rates, t0 = 0, [], time.perf_counter()
    while True:
        t = time.perf_counter()
        predictor.predict_proba(work, batch_size=batch)
        rates.append(len(work) / (time.perf_counter() - t))
        n += len(work)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and len(rates) >= 3:
            break
    per_second = float(np.median(rates))
    singles = []
    for i in range(5):
        predictor.predict_proba([images[i % len(images)]], batch_size=1)
    t_end = time.perf_counter() + seconds / 2
    i = 0
    while time.perf_counter() < t_end or len(singles) < 20:
        t = time.perf_counter()
        predictor.predict_proba([images[i % len(images)]], batch_size=1)
        singles.append(time.perf_counter() - t)
        i += 1
    probs = predictor.predict_proba(check, batch_size=batch)
    print("CEILING " + json.dumps({"patches_per_s": per_second, "mean_patches_per_s": n / elapsed,
                                   "chunk_rates": [min(rates), max(rates)],
                                   "batch": batch, "patches": n, "seconds": elapsed,
                                   "single_ms_p50": 1000 * float(np.percentile(singles, 50)),
                                   "single_ms_p99": 1000 * float(np.percentile(singles, 99)),
                                   "singles": len(singles), "probs": probs.tolist(), "threads": threads,
                                   "histocnn_version": getattr(histocnn, "__version__", "?")}), flush=True)


def run_ceiling(args, bundle, patches, check, tmp):
    spec = os.path.join(tmp, "ceiling.json")
    json.dump({"patches": patches, "check": check, "seconds": args.ceiling_seconds}, open(spec, "w"))
    cmd = [sys.executable, os.path.abspath(__file__), "--ceiling-worker", "--model", bundle,
           "--histocnn-python", args.histocnn_python, "--ceiling-spec", spec]
    env = {**os.environ, "HISTOCNN_LOG_LEVEL": "warn", "HISTOCNN_PROGRESS": "0"}
    ru0, busy0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), machine_busy_seconds(), time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ru1, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter() - t0
    own = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    for line in r.stdout.splitlines():
        if line.startswith("CEILING "):
            result = json.loads(line[len("CEILING "):])
            result["other_cores"] = max(0.0, (machine_busy_seconds() - busy0 - own) / wall)
            return result
    sys.stderr.write(r.stderr)
    fail(f"the ceiling measurement failed (exit {r.returncode}); see above", 3)


# ---------------------------------------------------------------------------------------------
# Servers: start, wait until ready, stop
# ---------------------------------------------------------------------------------------------

def proc_cpu_seconds(pids):
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def machine_busy_seconds():
    """CPU seconds all cores spent busy since boot (/proc/stat), to see what else ran during a cell."""
    try:
        fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, label, procs, host, port, log_path, info=None):
        self.label, self.procs, self.host, self.port, self.log_path = label, procs, host, port, log_path
        self.info = info or {}

    def pids(self):
        return [p.pid for p in self.procs]

    def alive(self):
        return all(p.poll() is None for p in self.procs)

    def log_tail(self, n=30):
        try:
            return "".join(open(self.log_path, errors="replace").readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = []
        for p in self.procs:
            try:
                codes.append(p.wait(timeout=20))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(p.wait())
        return codes


def _pump(stream, log, pattern, found, event):
    for line in stream:
        log.write(line)
        log.flush()
        if not event.is_set():
            m = pattern.search(line)
            if m:
                found.append(m)
                if len(found) >= getattr(event, "needed", 1):
                    event.set()
    event.set()


def _wait_ready(procs, event, found, needed, log_path, what, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if event.wait(0.2):
            if len(found) >= needed:
                return
            break
        if any(p.poll() is not None for p in procs):
            event.wait(1)
            if len(found) >= needed:
                return
            break
    for p in procs:
        if p.poll() is None:
            p.kill()
    tail = "".join(open(log_path, errors="replace").readlines()[-40:])
    fail(f"{what} did not become ready (log {log_path}):\n{tail}", 3)


def start_histocnn(args, base_path, batching, tmp):
    label = "histocnn serve, batching" if batching else "histocnn serve, no batching"
    cmd = [args.histocnn, "serve", "--model-base-path", base_path, "--model-name", MODEL_NAME,
           "--host", "127.0.0.1", "--port", "0", "--no-access-log"] + (HISTOCNN_BATCHING if batching else [])
    log_path = os.path.join(tmp, ("histocnn-batching" if batching else "histocnn-nobatch") + ".log")
    log = open(log_path, "w")
    log.write("$ " + shlex.join(cmd) + "\n")
    log.flush()
    env = {**os.environ, "HISTOCNN_PROGRESS": "0"}
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    event, found = threading.Event(), []
    pattern = re.compile(r"histocnn serve: listening on http://([^\s:/]+|\[[^\]]+\]):(\d+)")
    threading.Thread(target=_pump, args=(p.stdout, log, pattern, found, event), daemon=True).start()
    _wait_ready([p], event, found, 1, log_path, label)
    host, port = found[0].group(1), int(found[0].group(2))
    return Server(label, [p], host.strip("[]"), port, log_path, {"command": shlex.join(cmd)})


def start_flask(args, bundle, tmp, channels_last=False):
    workers = args.flask_workers
    label = "Flask + PyTorch" + (", channels_last" if channels_last else "") + \
        (f" ({workers} workers)" if workers > 1 else "")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # Werkzeug's LISTEN_QUEUE
    port = sock.getsockname()[1]
    threads = args.flask_torch_threads or max(1, (os.cpu_count() or 1) // workers)
    log_path = os.path.join(tmp, "flask.log")
    log = open(log_path, "w")
    procs = []
    event, found = threading.Event(), []
    event.needed = workers
    pattern = re.compile(r"^FLASK-READY (.*)$")
    for _ in range(workers):
        cmd = [sys.executable, os.path.abspath(__file__), "--flask-worker", "--model", bundle,
               "--flask-fd", str(sock.fileno()), "--flask-threads", str(threads)] + \
              (["--flask-channels-last"] if channels_last else [])
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, pass_fds=[sock.fileno()])
        procs.append(p)
        threading.Thread(target=_pump, args=(p.stdout, log, pattern, found, event), daemon=True).start()
    _wait_ready(procs, event, found, workers, log_path, label)
    sock.close()
    info = json.loads(found[0].group(1))
    info["workers"] = workers
    return Server(label, procs, "127.0.0.1", port, log_path, info)


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------

def request_body(pngs):
    return json.dumps({"instances": [{"b64": base64.b64encode(b).decode("ascii")} for b in pngs]}).encode()


def post(host, port, body, timeout=120):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", PREDICT_PATH, body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    finally:
        conn.close()


def server_predictions(server, check_pngs):
    """Probabilities for the check patches: one request with all of them, and one request per patch
    sent by 8 concurrent clients (which exercises the batching path)."""
    status, data, headers = post(server.host, server.port, request_body(check_pngs))
    if status != 200:
        fail(f"{server.label}: :predict with {len(check_pngs)} instances answered {status}: {data[:300]!r}", 2)
    together = np.array(json.loads(data)["predictions"], dtype=np.float64)
    singles = [None] * len(check_pngs)
    errors = []

    def one(i):
        s, d, _ = post(server.host, server.port, request_body([check_pngs[i]]))
        if s != 200:
            errors.append(f"patch {i}: {s} {d[:200]!r}")
        else:
            singles[i] = json.loads(d)["predictions"][0]

    for start in range(0, len(check_pngs), 8):
        ts = [threading.Thread(target=one, args=(i,)) for i in range(start, min(start + 8, len(check_pngs)))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    if errors:
        fail(f"{server.label}: one-patch requests failed: {errors[:3]}", 2)
    version = {k.lower(): v for k, v in headers.items()}.get("x-model-version")
    return together, np.array(singles, dtype=np.float64), version


# ---------------------------------------------------------------------------------------------
# Load generators
# ---------------------------------------------------------------------------------------------

def load_python(host, port, bodies, clients, duration, warmup, cap):
    """One thread with one keep-alive HTTPConnection per client, closed loop."""
    t_start = time.perf_counter() + 0.05
    t_measure = t_start + warmup
    t_end = t_measure + duration
    lock = threading.Lock()
    latencies, errors, first_errors = [], [0], []
    state = {"count": 0, "last": t_measure, "capped": False}
    headers = {"Content-Type": "application/json"}

    def client(k):
        conn = http.client.HTTPConnection(host, port, timeout=60)
        i = k * 7919
        mine = []
        my_errors = 0
        while time.perf_counter() < t_start:
            time.sleep(0.001)
        while True:
            t0 = time.perf_counter()
            if t0 >= t_end or state["capped"]:
                break
            ok, what = False, None
            try:
                conn.request("POST", PREDICT_PATH, bodies[i % len(bodies)], headers)
                r = conn.getresponse()
                data = r.read()
                ok = r.status == 200 and b'"predictions"' in data
                if not ok:
                    what = f"{r.status} {data[:200]!r}"
            except Exception as e:  # noqa: BLE001 -- counted as an error, the connection renewed
                what = f"{type(e).__name__}: {e}"
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=60)
            t1 = time.perf_counter()
            i += 1
            if t0 >= t_measure and t1 <= t_end:
                mine.append(t1 - t0)
                if not ok:
                    my_errors += 1
                    if len(first_errors) < 3:
                        first_errors.append(what)
                if cap:
                    with lock:
                        state["count"] += 1
                        state["last"] = max(state["last"], t1)
                        if state["count"] >= cap:
                            state["capped"] = True
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += my_errors

    cpu0 = time.process_time()
    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = time.process_time() - cpu0
    window = (state["last"] - t_measure) if state["capped"] else duration
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {"requests": len(latencies), "seconds": window, "rps": len(latencies) / window,
            "p50_ms": 1000 * float(np.percentile(lat, 50)), "p99_ms": 1000 * float(np.percentile(lat, 99)),
            "errors": errors[0], "first_errors": first_errors, "client_cpu_s": cpu,
            "measured": (t_measure, t_end)}


WRK_LUA = r"""
local bodies = {}
local f = assert(io.open(os.getenv("BENCH_BODIES"), "r"))
for line in f:lines() do bodies[#bodies + 1] = line end
f:close()
local path = os.getenv("BENCH_PATH")
local counter = 0
function setup(thread)
  thread:set("offset", counter * 7919)
  counter = counter + 1
end
local i = 0
function init(args)
  i = tonumber(offset) or 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  i = i + 1
  return wrk.format(nil, path, nil, bodies[(i % #bodies) + 1])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.connect, e.read,
    e.write, e.status, e.timeout))
end
"""


def load_wrk(host, port, bodies_file, lua_file, clients, duration, warmup):
    """wrk: one thread (an epoll loop is plenty for a few hundred requests/s), closed loop over
    keep-alive connections."""
    threads = 1
    url = f"http://{host}:{port}"
    env = {**os.environ, "BENCH_BODIES": bodies_file, "BENCH_PATH": PREDICT_PATH}

    def wrk(seconds):
        cmd = ["wrk", "-t", str(threads), "-c", str(clients), "-d", f"{seconds}s", "--timeout", "60s",
               "-s", lua_file, url]
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if warmup > 0:
        wrk(max(1, int(round(warmup))))
    r = wrk(max(1, int(round(duration))))
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = re.search(r"^WRKJSON (.*)$", r.stdout, re.M)
    if not m:
        fail(f"wrk gave no result (exit {r.returncode}):\n{r.stdout[-2000:]}", 3)
    w = json.loads(m.group(1))
    seconds = w["duration_us"] / 1e6
    errors = w["connect"] + w["read"] + w["write"] + w["status"] + w["timeout"]
    return {"requests": w["requests"], "seconds": seconds, "rps": w["requests"] / seconds,
            "p50_ms": w["p50_us"] / 1000, "p99_ms": w["p99_us"] / 1000, "errors": errors,
            "first_errors": [] if not errors else [f"wrk errors: {w}"],
            "client_cpu_s": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)}


# ---------------------------------------------------------------------------------------------
# Patches
# ---------------------------------------------------------------------------------------------

def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", head[16:24])


def select_patches(data_dir, n, n_check, seed):
    """n real patches, half of each class, from every patient; the check set includes border patches."""
    by_class = {"0": [], "1": []}
    for patient in sorted(os.listdir(data_dir)):
        for c in ("0", "1"):
            d = os.path.join(data_dir, patient, c)
            if os.path.isdir(d):
                by_class[c] += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".png")]
    if not by_class["0"] or not by_class["1"]:
        fail(f"'{data_dir}' has no patches of both classes in the layout <patient>/<class>/<file>.png")
    rng = random.Random(seed)
    chosen = []
    for c in ("0", "1"):
        pool = by_class[c]
        chosen += rng.sample(pool, min(len(pool), n // 2 + n % 2 * (c == "0")))
    rng.shuffle(chosen)
    chosen = chosen[:n]
    border = [p for p in chosen if png_size(p) != (50, 50)]
    check = (border[: max(1, n_check // 8)] + [p for p in chosen if p not in border])[:n_check]
    if len(border) < max(1, n_check // 8):  # add a few border patches from outside the selection
        others = [p for c in ("0", "1") for p in rng.sample(by_class[c], min(400, len(by_class[c])))]
        extra = [p for p in others if png_size(p) != (50, 50) and p not in check][: max(1, n_check // 8) - len(border)]
        check = (extra + check)[:n_check]
    return chosen, check


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------

def machine_info():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "kernel": platform.release()}


def fmt(x, digits=1):
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a bundle version folder, or a model folder with numeric versions")
    ap.add_argument("--data", default=os.environ.get("HISTOCNN_DATA_DIR",
                                                     os.path.join(REPO, "..", "shared", "data", "idc_real")),
                    help="real patches, <patient>/<class>/<file>.png (default $HISTOCNN_DATA_DIR or "
                         "../shared/data/idc_real)")
    ap.add_argument("--histocnn", default=os.path.join(REPO, "build", "histocnn"), help="the histocnn CLI")
    ap.add_argument("--histocnn-python", default=os.path.join(REPO, "build", "python"),
                    help="where `import histocnn` is found (default build/python)")
    ap.add_argument("--clients", default="1,8,32", help="concurrent clients, comma-separated")
    ap.add_argument("--duration", type=float, default=10, help="seconds per cell (after the warm-up)")
    ap.add_argument("--warmup", type=float, default=1, help="seconds of warm-up per cell, not counted")
    ap.add_argument("--requests", type=int, default=0, help="stop a cell after this many requests (python loadgen)")
    ap.add_argument("--patches", type=int, default=200, help="distinct patches the clients cycle through")
    ap.add_argument("--check-patches", type=int, default=32, help="patches for the correctness check")
    ap.add_argument("--servers", default="flask,batching,no-batching",
                    help="which servers to run, in order: flask, batching, no-batching, and flask-channels-last "
                         "(Flask with NHWC convolutions as histocnn runs them, to tell the model's kernels from "
                         "the serving stack)")
    ap.add_argument("--loadgen", choices=["wrk", "python"], default="wrk")
    ap.add_argument("--flask-workers", type=int, default=1,
                    help="Flask processes sharing the listening socket (1: the study's threaded dev server; "
                         "gunicorn is not installed, so N > 1 pre-forks Werkzeug servers the way it would)")
    ap.add_argument("--flask-channels-last", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--flask-torch-threads", type=int, default=0,
                    help="torch threads per Flask process (default: cores / workers)")
    ap.add_argument("--ceiling-seconds", type=float, default=5, help="seconds of batched ceiling measurement")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="also write the markdown report here")
    ap.add_argument("--smoke", action="store_true", help="tiny: 1 and 2 clients, 2 s, 16 patches (under a minute)")
    ap.add_argument("--flask-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--flask-fd", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--flask-threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--ceiling-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ceiling-spec", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.flask_worker:
        return flask_worker(args)
    if args.ceiling_worker:
        return ceiling_worker(args)
    if not args.model:
        ap.error("--model is required")
    if args.smoke:
        args.clients, args.duration, args.warmup = "1,2", 2.0, 0.5
        args.patches, args.check_patches, args.ceiling_seconds = 16, 16, 1.5
    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in servers:
        if s not in SERVER_KINDS:
            ap.error(f"unknown server '{s}' in --servers; use {', '.join(SERVER_KINDS)}")
    if args.loadgen == "wrk" and not shutil.which("wrk"):
        fail("wrk is not installed (apt-get install wrk), or use --loadgen python")
    if args.loadgen == "wrk" and args.requests:
        fail("--requests needs --loadgen python (wrk runs for a duration)")
    if any(not s.startswith("flask") for s in servers) and not os.access(args.histocnn, os.X_OK):
        fail(f"'{args.histocnn}' is not an executable; build histocnn or pass --histocnn")

    command = shlex.join([sys.executable] + sys.argv)
    bundle = resolve_bundle(args.model)
    meta = json.load(open(os.path.join(bundle, "model.json")))
    data_dir = os.path.abspath(args.data)
    if not os.path.isdir(data_dir):
        fail(f"--data '{args.data}' is not a folder (set HISTOCNN_DATA_DIR or pass --data)")
    patches, check = select_patches(data_dir, args.patches, args.check_patches, args.seed)
    pngs = [open(p, "rb").read() for p in patches]
    check_pngs = [open(p, "rb").read() for p in check]
    bodies = [request_body([b]) for b in pngs]

    tmp = tempfile.mkdtemp(prefix="histocnn-serve-bench-")
    base_path = os.path.join(tmp, "models", MODEL_NAME)
    os.makedirs(os.path.join(base_path, "1"))
    for f in os.listdir(bundle):
        if os.path.isfile(os.path.join(bundle, f)):
            shutil.copy2(os.path.join(bundle, f), os.path.join(base_path, "1", f))
    bodies_file = os.path.join(tmp, "bodies.jsonl")
    with open(bodies_file, "wb") as f:
        f.write(b"\n".join(bodies) + b"\n")
    lua_file = os.path.join(tmp, "predict.lua")
    open(lua_file, "w").write(WRK_LUA)

    print(f"model: {bundle} ({meta.get('backbone')}, {meta['preprocessing']['image_size']} px)", flush=True)
    print(f"patches: {len(patches)} from {data_dir}; correctness on {len(check)} "
          f"({sum(png_size(p) != (50, 50) for p in check)} border patches smaller than 50x50)", flush=True)

    # Is the machine idle? Other jobs on these few cores change every number below.
    busy0, t0 = machine_busy_seconds(), time.perf_counter()
    time.sleep(2)
    idle_check = (machine_busy_seconds() - busy0) / (time.perf_counter() - t0)
    print(f"before the run, other processes kept {idle_check:.2f} of {os.cpu_count()} cores busy"
          + (" -- the machine is not idle; the numbers will be low and noisy" if idle_check > 0.2 else ""),
          flush=True)

    # The ceiling first.
    ceiling = run_ceiling(args, bundle, patches, check, tmp)
    ceiling_probs = np.array(ceiling["probs"], dtype=np.float64)
    print(f"ceiling: {ceiling['patches_per_s']:.1f} patches/s at batch {ceiling['batch']}, single patch "
          f"{ceiling['single_ms_p50']:.2f} ms (p50); other processes used {ceiling['other_cores']:.2f} cores",
          flush=True)

    rows, checks, flask_info, reference = [], [], {}, None
    exit_codes = {}
    for which in servers:
        if which.startswith("flask"):
            server = start_flask(args, bundle, tmp, channels_last=which == "flask-channels-last")
            flask_info = flask_info or server.info
        else:
            server = start_histocnn(args, base_path, which == "batching", tmp)
        print(f"{server.label}: ready on {server.host}:{server.port}", flush=True)
        try:
            together, singles, version = server_predictions(server, check_pngs)
            diffs = {"vs ceiling": max(np.abs(together - ceiling_probs).max(), np.abs(singles - ceiling_probs).max()),
                     "one vs all in one request": np.abs(singles - together).max()}
            if reference is not None:
                diffs["vs Flask"] = max(np.abs(together - reference).max(), np.abs(singles - reference).max())
            if which == "flask":
                reference = together
            line = ", ".join(f"{k} {v:.2e}" for k, v in diffs.items())
            print(f"{server.label}: max |p - p'|: {line}" + (f" (X-Model-Version {version})" if version else ""),
                  flush=True)
            checks.append((server.label, diffs))
            bad = {k: v for k, v in diffs.items() if not v <= TOLERANCE}
            if bad:
                fail(f"{server.label}: predictions differ by more than {TOLERANCE}: {bad}", 2)
            for n in clients:
                pids = server.pids()
                cpu0, busy0, own0 = proc_cpu_seconds(pids), machine_busy_seconds(), time.process_time()
                w0 = time.perf_counter()
                if args.loadgen == "wrk":
                    r = load_wrk(server.host, server.port, bodies_file, lua_file, n, args.duration, args.warmup)
                else:
                    r = load_python(server.host, server.port, bodies, n, args.duration, args.warmup, args.requests)
                # CPU over the whole cell (warm-up included), in cores: the server, the client, and
                # everything else on the machine (another job running beside the benchmark shows here).
                wall = time.perf_counter() - w0
                server_s = proc_cpu_seconds(pids) - cpu0
                own_s = time.process_time() - own0
                client_s = r["client_cpu_s"] + (own_s if args.loadgen == "wrk" else 0.0)
                r["server_cores"] = server_s / wall
                r["client_cores"] = client_s / wall
                r["other_cores"] = max(0.0, (machine_busy_seconds() - busy0 - server_s - client_s) / wall)
                r.update(server=server.label, which=which, clients=n)
                rows.append(r)
                print(f"  {n:3d} clients: {r['rps']:7.1f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                      f"errors {r['errors']}" + (f" {r['first_errors']}" if r["first_errors"] else ""), flush=True)
                if not server.alive():
                    print(f"  {server.label} died:\n{server.log_tail()}", flush=True)
                    break
        finally:
            exit_codes[server.label] = server.stop()

    # The ceiling again: a machine's speed drifts (these are VMs); the higher of the two is the ceiling.
    after = run_ceiling(args, bundle, patches, check, tmp)
    print(f"ceiling again: {after['patches_per_s']:.1f} patches/s; other processes used {after['other_cores']:.2f} cores",
          flush=True)
    ceiling["before"], ceiling["after"] = ceiling["patches_per_s"], after["patches_per_s"]
    if after["patches_per_s"] > ceiling["patches_per_s"]:
        ceiling.update({k: after[k] for k in ("patches_per_s", "chunk_rates", "patches", "other_cores")})
    report = render(args, command, bundle, meta, ceiling, rows, checks, flask_info, clients, exit_codes, len(patches),
                    idle_check)
    print()
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def render(args, command, bundle, meta, ceiling, rows, checks, flask_info, clients, exit_codes, n_patches,
           idle_check):
    ceil = ceiling["patches_per_s"]
    flask_by_clients = {r["clients"]: r for r in rows if r["which"] == "flask"}
    out = []
    out.append(f"# histocnn serve vs Flask + PyTorch ({meta.get('backbone')}, "
               f"{meta['preprocessing']['image_size']} px, one patch per request)")
    out.append("")
    out.append("| server | clients | req/s | p50 ms | p99 ms | errors | req/s ÷ ceiling | req/s ÷ Flask | "
               "server cores | client cores | other cores |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        f = flask_by_clients.get(r["clients"])
        vs_flask = r["rps"] / f["rps"] if f and f["rps"] > 0 else None
        out.append(f"| {r['server']} | {r['clients']} | {fmt(r['rps'])} | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | "
                   f"{r['errors']} | {fmt(r['rps'] / ceil, 2)} | {fmt(vs_flask, 2)} | {fmt(r['server_cores'], 2)} | "
                   f"{fmt(r['client_cores'], 2)} | {fmt(r['other_cores'], 2)} |")
    out.append("")
    out.append(f"Ceiling (the model itself, `histocnn.Predictor.predict_proba` on decoded uint8 patches, in this run): "
               f"**{ceil:.1f} patches/s** at batch {ceiling['batch']} ({ceiling['threads']} threads; the higher of "
               f"{ceiling['before']:.1f} before the servers and {ceiling['after']:.1f} after them); one patch at a time "
               f"{ceiling['single_ms_p50']:.2f} ms p50, {ceiling['single_ms_p99']:.2f} ms p99 "
               f"({1000 / ceiling['single_ms_p50']:.0f} patches/s). Each batched rate is the median of "
               f"{ceiling['patches'] // 256} chunks of 256 patches (range {ceiling['chunk_rates'][0]:.0f}-"
               f"{ceiling['chunk_rates'][1]:.0f}); other processes used {ceiling['other_cores']:.2f} cores meanwhile.")
    out.append("")
    out.append("Correctness (max |p - p'| over the check patches, sent in one request and one per request; "
               f"tolerance {TOLERANCE:g}): " + "; ".join(
                   f"{label}: " + ", ".join(f"{k} {v:.1e}" for k, v in d.items()) for label, d in checks) + ".")
    out.append("")
    n = max(clients)
    by = {(r["which"], r["clients"]): r for r in rows}
    b, nb, fl = by.get(("batching", n)), by.get(("no-batching", n)), by.get(("flask", n))
    out.append(f"Targets at {n} clients (histocnn serve with batching):")
    out.append("")

    def target(name, ok, detail):
        out.append(f"- {'PASS' if ok else 'MISS'}: {name} ({detail})")

    if b:
        target("at least 0.8x the ceiling", b["rps"] >= 0.8 * ceil, f"{b['rps']:.1f} req/s = {b['rps'] / ceil:.2f}x")
        if fl:
            target("at least 2x Flask's requests/s", b["rps"] >= 2 * fl["rps"],
                   f"{b['rps']:.1f} vs {fl['rps']:.1f} = {b['rps'] / fl['rps']:.2f}x" if fl["rps"] else "Flask 0")
            target("lower p99 than Flask", b["p99_ms"] < fl["p99_ms"], f"{b['p99_ms']:.1f} vs {fl['p99_ms']:.1f} ms")
        else:
            out.append("- not measured: Flask (not in --servers)")
        target("zero errors", b["errors"] == 0, f"{b['errors']} errors")
        if nb:
            out.append(f"- batching on vs off: {b['rps']:.1f} vs {nb['rps']:.1f} req/s "
                       f"({b['rps'] / nb['rps']:.2f}x), p99 {b['p99_ms']:.1f} vs {nb['p99_ms']:.1f} ms"
                       if nb["rps"] else "- batching off: no successful request")
    else:
        out.append("- not measured: histocnn serve with batching (not in --servers)")
    out.append("")
    out.append("Setup:")
    out.append("")
    info = machine_info()
    out.append(f"- machine: {info['nproc']} cores ({info['cpu']}), Linux {info['kernel']}, Python {info['python']}; "
               f"busy before the run: {idle_check:.2f} cores" + (" (NOT IDLE: other jobs were running)"
                                                                 if idle_check > 0.2 else " (idle)"))
    if flask_info:
        out.append(f"- Flask {flask_info.get('flask')} (Werkzeug threaded dev server, {flask_info.get('workers')} "
                   f"process(es), request logging off), torch {flask_info.get('torch')} with "
                   f"{flask_info.get('threads')} threads, torchvision {flask_info.get('torchvision')}; "
                   f"state dict: {flask_info.get('state_dict_tensors')} tensors, all keys and shapes matched")
    out.append(f"- histocnn serve: `{args.histocnn} serve --port 0` with and without "
               f"`{' '.join(HISTOCNN_BATCHING)}`; exit codes after SIGTERM: "
               + ", ".join(f"{k}: {v}" for k, v in exit_codes.items()))
    out.append(f"- model: {bundle}")
    out.append(f"- load: {args.loadgen} on the same machine ({'C, epoll, Lua script' if args.loadgen == 'wrk' else 'Python threads, http.client'}), "
               f"closed loop, keep-alive, one b64 PNG patch per request cycling through {n_patches} real patches, "
               f"{args.warmup:g} s warm-up + {args.duration:g} s per cell; the client shares the cores with the "
               "server (its CPU is in the table)")
    out.append(f"- command: `{command}`")
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
