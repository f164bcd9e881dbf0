"""Serving from a notebook, and a client for any TensorFlow Serving REST endpoint.

    import histocnn
    with histocnn.serve("runs/x/model", model_name="idc") as server:     # a running server
        client = histocnn.Client(server.url, model="idc")
        p = client.predict(["patch.png", numpy_array, pil_image])         # [N, 2] probabilities
"""
from __future__ import annotations

import base64
import io
import json
import os
import urllib.error
import urllib.request
from typing import Optional, Sequence, Union

import numpy as np

from ._loader import _histocnn
from .predictor import _as_rgb_array


class Server:
    """A running ``histocnn serve`` in this process (the same C++ server as the command line).

    Stops when closed, on leaving a ``with`` block, or when garbage-collected."""

    def __init__(self, cpp):
        self._cpp = cpp

    @property
    def url(self) -> str:
        return self._cpp.url

    @property
    def port(self) -> int:
        return self._cpp.port

    def stop(self) -> None:
        self._cpp.stop()

    close = stop

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"histocnn.Server({self.url})"


def serve(model_base_path: Union[str, os.PathLike, None] = None, model_name: str = "default", *,
          model_config_file: Union[str, os.PathLike, None] = None, host: str = "127.0.0.1", port: int = 0,
          **options) -> Server:
    """Starts a server on ``model_base_path`` (numeric version folders, e.g. a run's ``model/``)
    or on a ``model_config_file``, and returns it once it listens. ``port=0`` picks a free port
    (``server.url`` says which). Other options: ``enable_batching``, ``max_batch_size``,
    ``batch_timeout_micros``, ``num_batch_threads``, ``max_enqueued_batches``,
    ``file_system_poll_wait_seconds``, ``max_body_bytes``, ``max_instances``,
    ``max_image_pixels``, ``api_key``, ``device``, ``access_log``."""
    cpp = _histocnn.serve.Server(model_base_path=os.fspath(model_base_path or ""), model_name=model_name,
                                 model_config_file=os.fspath(model_config_file or ""), host=host, port=port,
                                 **options)
    cpp.start()
    return Server(cpp)


def _encode(image) -> dict:
    """An instance for :predict: file paths and bytes are sent as they are; arrays, tensors and PIL
    images as PNG."""
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as f:
            data = f.read()
    elif isinstance(image, (bytes, bytearray)):
        data = bytes(image)
    else:
        from PIL import Image
        buffer = io.BytesIO()
        Image.fromarray(_as_rgb_array(image)).save(buffer, format="PNG")
        data = buffer.getvalue()
    return {"b64": base64.b64encode(data).decode("ascii")}


class ServingError(RuntimeError):
    """The server answered with an error status; ``status`` and ``message`` say which."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class Client:
    """Calls a TensorFlow Serving REST endpoint (``histocnn serve`` or TF Serving itself).

    ``predict`` accepts file paths, bytes, numpy arrays (HxWx3 uint8), torch tensors and PIL
    images, alone or in a list, and returns the probabilities [N, classes]. ``version`` or
    ``label`` pin the model version."""

    def __init__(self, url: str, model: str = "default", version: Optional[int] = None,
                 label: Optional[str] = None, api_key: Optional[str] = None, timeout: float = 60.0):
        if version is not None and label is not None:
            raise ValueError("give a version or a label, not both")
        self.url = url.rstrip("/")
        self.model = model
        self.version = version
        self.label = label
        self.api_key = api_key
        self.timeout = timeout
        self.last_version: Optional[str] = None  # the version that answered the last request

    def _model_url(self) -> str:
        url = f"{self.url}/v1/models/{self.model}"
        if self.version is not None:
            url += f"/versions/{self.version}"
        elif self.label is not None:
            url += f"/labels/{self.label}"
        return url

    def _call(self, url: str, body: Optional[dict] = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
        request.add_header("Content-Type", "application/json")
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                self.last_version = response.headers.get("X-Model-Version")
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read()).get("error", "")
            except ValueError:
                message = e.reason
            raise ServingError(e.code, message) from None

    def predict(self, images) -> np.ndarray:
        items = images if isinstance(images, (list, tuple)) else [images]
        answer = self._call(self._model_url() + ":predict", {"instances": [_encode(i) for i in items]})
        return np.asarray(answer["predictions"], dtype=np.float64)

    def classify(self, images) -> list:
        items = images if isinstance(images, (list, tuple)) else [images]
        return self._call(self._model_url() + ":classify", {"instances": [_encode(i) for i in items]})["results"]

    def explain(self, images, method: str = "gradcam", target_class: int = 1, layer: Optional[str] = None,
                outputs=("overlay",)) -> list:
        """Grad-CAM from the server's ``:explain``: one dict per image with what ``outputs`` names,
        ``"overlay"`` (the patch under the heatmap with a colour bar, HxWx3 uint8), ``"map"`` (at the
        model's input size) and ``"layer_map"`` (at the layer's resolution), float32 in [0, 1].
        ``layer`` is a backbone layer by module path (None: its last feature map)."""
        items = images if isinstance(images, (list, tuple)) else [images]
        parameters = {"method": method, "target_class": target_class, "outputs": list(outputs)}
        if layer:
            parameters["layer"] = layer
        answer = self._call(self._model_url() + ":explain",
                            {"instances": [_encode(i) for i in items], "parameters": parameters})
        decoded = []
        for e in answer["explanations"]:
            out = {}
            if "overlay" in e:
                from PIL import Image
                png = base64.b64decode(e["overlay"]["b64"])
                out["overlay"] = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
            for key in ("map", "layer_map"):
                if key in e:
                    out[key] = np.asarray(e[key], dtype=np.float32)
            decoded.append(out)
        return decoded

    def status(self) -> dict:
        return self._call(self._model_url())

    def metadata(self) -> dict:
        return self._call(self._model_url() + "/metadata")
