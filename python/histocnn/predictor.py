"""Predicting with a saved model from the inputs Python users hold."""
from __future__ import annotations

import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._loader import _histocnn


def _as_rgb_array(x) -> np.ndarray:
    """numpy HxWx3 uint8, a torch tensor (HxWx3 uint8, or 3xHxW uint8/float in [0, 1]) or a PIL image."""
    if hasattr(x, "convert") and hasattr(x, "size") and not isinstance(x, np.ndarray):  # PIL.Image
        return np.asarray(x.convert("RGB"), dtype=np.uint8)
    if type(x).__module__.startswith("torch"):
        t = x.detach().cpu()
        if t.dim() == 3 and t.shape[0] == 3 and t.shape[-1] != 3:
            t = t.permute(1, 2, 0)
        if t.is_floating_point():
            low, high = (float(t.min()), float(t.max())) if t.numel() else (0.0, 0.0)
            if low < 0 or high > 1:
                raise ValueError(f"a float image tensor must hold values in [0, 1]; got {low:g}..{high:g} "
                                 "(scale 0..255 data by 1/255, or pass uint8)")
            t = (t * 255).round()
        return np.ascontiguousarray(t.to(dtype=__import__("torch").uint8).numpy())
    a = np.asarray(x)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"an image must be HxWx3 (RGB); got an array of shape {a.shape}")
    if a.dtype != np.uint8:
        raise ValueError(f"an image array must be uint8; got {a.dtype} (scale floats to 0..255 first)")
    return np.ascontiguousarray(a)


class Predictor:
    """A saved model (``runs/<run>/model``) that classifies patches.

    ``predict`` takes file paths, numpy arrays (HxWx3 uint8), torch tensors (HxWx3 uint8, or 3xHxW
    uint8 or float in [0, 1]) or PIL images, alone or in a list, and returns P(IDC-positive) as a
    numpy array. Images of any size are padded with white to the model's pad size (50 px) when
    smaller, then resized (stretched, not cropped) to its input size, as in training.
    """

    def __init__(self, model_dir: Union[str, os.PathLike], device: str = "auto", tta: bool = False,
                 threads: Optional[int] = 0):
        """``tta``: test-time augmentation, each patch's probabilities averaged over its 8 flips
        and quarter turns (8 times the compute). ``threads``: LibTorch's threads for the process,
        set as ``histocnn.configure_threads(threads)`` does (0, the default: every core, OpenBLAS
        one thread); ``None`` leaves the process's settings as they are."""
        if threads is not None:
            if threads < 0:
                raise ValueError(f"threads must be 0 (every core), a count or None (leave as set); got {threads}")
            _histocnn.configure_threads(threads)
        self._cpp = _histocnn.inference.Predictor(os.fspath(model_dir), device)
        self._cpp.tta = tta

    @property
    def class_names(self) -> List[str]:
        return list(self._cpp.class_names)

    @property
    def threshold(self) -> float:
        return self._cpp.threshold

    @property
    def image_size(self) -> int:
        return self._cpp.image_size

    @property
    def colour(self) -> str:
        """What of the colour the model sees: "rgb", "grey" or "haematoxylin" (the ``colour`` option)."""
        return self._cpp.colour

    def predict_proba(self, images, batch_size: int = 64) -> np.ndarray:
        items = images if isinstance(images, (list, tuple)) else [images]
        if items and all(isinstance(i, (str, os.PathLike)) for i in items):
            p1 = self._cpp.predict_files([os.fspath(i) for i in items], batch_size)
            return np.stack([1 - p1, p1], axis=1)
        return self._cpp.predict_proba([_as_rgb_array(i) for i in items], batch_size)

    def predict(self, images, batch_size: int = 64) -> np.ndarray:
        """P(class 1) for each image."""
        return self.predict_proba(images, batch_size)[:, 1]

    def explain(self, images, method: str = "gradcam", target_class: int = 1, layer: Optional[str] = None,
                upsample: bool = True, batch_size: int = 32) -> np.ndarray:
        """What the model looks at: Grad-CAM ("gradcam") or Grad-CAM++ ("gradcam++") maps of
        ``target_class``, [N, S, S] float32 in [0, 1] at the model's input size S (each image
        prepared as predict_proba prepares it).

        ``layer``: the backbone layer mapped, by module path (``explain_layers()`` lists them);
        None maps its last feature map (``default_layer``). ``upsample=False`` returns the maps at
        the layer's own resolution, [N, h, w]."""
        items = images if isinstance(images, (list, tuple)) else [images]
        if items and all(isinstance(i, (str, os.PathLike)) for i in items):
            from PIL import Image
            items = [Image.open(os.fspath(i)) for i in items]
        return self._cpp.explain([_as_rgb_array(i) for i in items], method, target_class, layer or "", upsample,
                                 batch_size)

    def explain_layers(self) -> Dict[str, Tuple[int, int, int]]:
        """The layers ``explain(layer=...)`` can map, in forward order: module path -> output shape
        (channels, height, width) at the model's input size. The last is ``default_layer``."""
        return {name: tuple(shape) for name, shape in self._cpp.explain_layers()}

    @property
    def default_layer(self) -> str:
        """The layer ``explain`` maps when none is named: the backbone's last feature map."""
        return self._cpp.default_layer

    def features(self, images, batch_size: int = 64):
        """What the head reads (pooled backbone features), as a torch tensor."""
        import torch
        items = images if isinstance(images, (list, tuple)) else [images]
        return torch.from_numpy(self._cpp.features([_as_rgb_array(i) for i in items], batch_size))
