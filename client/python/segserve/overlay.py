"""Class colors and image overlays, identical to the C++ SDK's
(client/overlay.cc), so that a Python and a C++ client draw the same
picture, pixel for pixel.

The SDK's images are RGB, so colors and palettes are RGB here; the C++ SDK
works in OpenCV's BGR order with the same colors.
"""

import io
import math
import os
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from segserve.png import decode_png, is_png

ImageLike = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview,
                  np.ndarray]
# An (N, 3) table of RGB colors indexed by class id.
Palette = Union[np.ndarray, Sequence[Sequence[int]]]

_GOLDEN_RATIO_CONJUGATE = 0.6180339887498949
_SATURATION = (0.95, 0.6)
_VALUE = (1.0, 0.8, 0.6)


def _to8(x: float) -> int:
    """std::lround of x * 255 after clamping x to [0, 1]: halves round away
    from zero, as in the C++ SDK (Python's round() would round to even)."""
    scaled = min(max(x, 0.0), 1.0) * 255
    whole = math.floor(scaled)
    return int(whole + 1 if scaled - whole >= 0.5 else whole)


def class_color(class_id: int) -> Tuple[int, int, int]:
    """The fixed display color of a class id, as (R, G, B).

    Hues step around the circle by the golden ratio, so neighbouring ids
    look clearly different; saturation and brightness alternate so ids far
    apart do not repeat exactly. Negative ids get id 0's color.
    """
    class_id = max(int(class_id), 0)
    hue = math.fmod(0.2 + class_id * _GOLDEN_RATIO_CONJUGATE, 1.0)
    saturation = _SATURATION[class_id % 2]
    value = _VALUE[(class_id // 2) % 3]
    h6 = hue * 6
    sector = int(h6) % 6
    f = h6 - math.floor(h6)
    p = value * (1 - saturation)
    q = value * (1 - saturation * f)
    t = value * (1 - saturation * (1 - f))
    r, g, b = [(value, t, p), (q, value, p), (p, value, t), (p, q, value),
               (t, p, value), (value, p, q)][sector]
    return _to8(r), _to8(g), _to8(b)


def default_palette(num_classes: int) -> np.ndarray:
    """class_color of ids 0..num_classes-1 as a (num_classes, 3) uint8 RGB
    array."""
    return np.array([class_color(i) for i in range(num_classes)],
                    np.uint8).reshape(-1, 3)


def load_rgb(image: ImageLike) -> np.ndarray:
    """An HxWx3 uint8 RGB array of `image`: an array (HxWx3 RGB, HxW gray or
    HxWx4 RGBA, uint8), a file path, or encoded file bytes.

    PNGs decode without an imaging library; other formats (and palette or
    interlaced PNGs) need OpenCV or Pillow (the package's `image` extra).
    """
    if isinstance(image, np.ndarray):
        return _as_rgb(image)
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as f:
            data = f.read()
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    else:
        raise TypeError(f"cannot read an image from {type(image).__name__}; "
                        "give an array, a path or encoded bytes")
    if is_png(data):
        try:
            return _as_rgb(decode_png(data))
        except ValueError:
            pass  # A PNG this decoder does not read: try a library.
    return _decode_with_library(data)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """An array of gray, gray + alpha, RGB or RGBA pixels as HxWx3 uint8."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)  # As OpenCV reads 16-bit files.
    if image.dtype != np.uint8:
        raise TypeError(f"image dtype {image.dtype} is not supported; use "
                        "uint8")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (1, 2):
        return np.repeat(image[:, :, :1], 3, axis=2)  # Gray (+ alpha).
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return np.ascontiguousarray(image[:, :, :3])
    raise ValueError(f"image shape {image.shape} is not HxW, HxWx3 or HxWx4")


def _decode_with_library(data: bytes) -> np.ndarray:
    """Any image file OpenCV or Pillow reads, as HxWx3 uint8 RGB."""
    try:
        import cv2  # Optional: the package's 'image' extra.
    except ImportError:
        cv2 = None
    if cv2 is not None:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError("OpenCV cannot decode the image")
        return np.ascontiguousarray(bgr[:, :, ::-1])
    try:
        from PIL import Image  # Optional: the package's 'image' extra.
    except ImportError:
        raise ValueError(
            "this image is not a PNG the SDK reads by itself; install OpenCV "
            "or Pillow (the package's 'image' extra, or Debian's "
            "python3-opencv / python3-pil), or pass an RGB array") from None
    with Image.open(io.BytesIO(data)) as decoded:
        return np.asarray(decoded.convert("RGB")).copy()


def _resize_nearest(labels: np.ndarray, height: int,
                    width: int) -> np.ndarray:
    """cv::resize with INTER_NEAREST: source index floor(x * src / dst),
    with the scale computed as OpenCV does."""
    def index(dst: int, src: int) -> np.ndarray:
        """The source index of each destination index along one axis."""
        inverse_scale = 1.0 / (dst / src)
        return np.minimum(np.floor(np.arange(dst) * inverse_scale)
                          .astype(np.intp), src - 1)
    rows = index(height, labels.shape[0])
    cols = index(width, labels.shape[1])
    return labels[rows[:, None], cols[None, :]]


def overlay(image: ImageLike, mask: np.ndarray, alpha: float = 0.5,
            palette: Optional[Palette] = None) -> np.ndarray:
    """Blends each pixel of `image` with its class color:
    out = (1 - alpha) * image + alpha * color(label), rounded as OpenCV does.

    `image` is RGB (see load_rgb); `mask` an HxW label map (uint8 or uint16),
    resized with nearest neighbour when its size differs from the image's.
    `alpha` is clamped to [0, 1]. `palette` is an (N, 3) RGB table indexed by
    class id; by default the colors of class_color. Returns a new HxWx3
    uint8 RGB array.
    """
    rgb = load_rgb(image)
    labels = np.asarray(mask)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"mask must be an HxW integer label map, not "
                         f"{labels.dtype} of shape {labels.shape}")
    if labels.size == 0 or rgb.size == 0:
        raise ValueError("cannot draw an overlay of an empty image or mask")
    if labels.min() < 0:
        raise ValueError("mask has negative class ids")
    if labels.shape != rgb.shape[:2]:
        labels = _resize_nearest(labels, rgb.shape[0], rgb.shape[1])
    max_label = int(labels.max())
    if palette is None:
        colors = default_palette(max_label + 1)
    else:
        colors = np.asarray(palette, np.uint8).reshape(-1, 3)
        if max_label >= len(colors):
            raise ValueError(f"mask has class id {max_label} but the palette "
                             f"has only {len(colors)} colors")
    # The C++ blend computes in float and rounds half to even (cvRound).
    weight = np.float32(min(max(float(alpha), 0.0), 1.0))
    blended = ((np.float32(1) - weight) * rgb.astype(np.float32) +
               weight * colors[labels].astype(np.float32))
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
