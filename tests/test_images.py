"""Images for the Python tests, made without an imaging library: scenes
like those the default models learned, and PNG files of them."""
import struct
import zlib

import numpy as np


def scene(seed, height, width):
    """An RGB image with a flat disk and rectangle on a noisy background,
    like the scenes the model was trained on."""
    rng = np.random.default_rng(seed)
    image = rng.integers(90, 140, (height, width, 3), dtype=np.uint8)
    y, x = np.mgrid[:height, :width]
    radius = min(height, width) // 4
    image[(y - height // 3) ** 2 + (x - width // 3) ** 2 < radius ** 2] = (
        220, 40, 40)
    image[height // 2:height * 7 // 8, width // 2:width * 7 // 8] = (
        40, 200, 60)
    return image


def png_bytes(rgb):
    """An 8-bit RGB PNG of `rgb`, unfiltered."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data)))
    height, width = rgb.shape[:2]
    rows = b"".join(b"\x00" + rgb[r].tobytes() for r in range(height))
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0,
                                       0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
