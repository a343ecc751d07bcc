"""A small PNG decoder in Python, numpy and zlib.

The server writes masks as 8- or 16-bit grayscale PNGs, and tools such as
segclient write masks and overlays as grayscale or RGB PNGs. Decoding those
needs no imaging library: this module reads every non-interlaced PNG that is
not palette-based, which keeps OpenCV and Pillow optional for the SDK.
"""

import struct
import zlib
from typing import List, Optional, Tuple

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Channels per PNG color type: gray, RGB, gray + alpha, RGBA. Type 3
# (palette) is left to an imaging library.
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def is_png(data: bytes) -> bool:
    """True when `data` starts with the PNG signature."""
    return bytes(data[:8]) == PNG_SIGNATURE


def png_size(data: bytes) -> Tuple[int, int]:
    """(width, height) from a PNG's header, without decoding it. Raises
    ValueError when `data` is not a PNG with a header."""
    if not is_png(data) or len(data) < 24 or bytes(data[12:16]) != b"IHDR":
        raise ValueError("not a PNG: the signature or IHDR header is missing")
    return struct.unpack(">II", bytes(data[16:24]))


def decode_png(data: bytes,
               expect_size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Decodes a PNG to an array of its samples.

    Returns HxW for grayscale, else HxWxC (C = 2 gray + alpha, 3 RGB, 4 RGBA),
    of uint8 for 8-bit and uint16 for 16-bit PNGs. `expect_size`, a (width,
    height), is checked against the header before anything is inflated, so a
    wrong or hostile image costs nothing. Raises ValueError, saying what is
    wrong, for anything else: a bad signature or CRC, palette or interlaced
    PNGs, bit depths below 8, or pixel data of the wrong length.
    """
    data = bytes(data)
    if not is_png(data):
        raise ValueError("not a PNG: the data does not start with the PNG "
                         "signature")
    header = None
    idat: List[bytes] = []
    pos = len(PNG_SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError(f"PNG truncated: a chunk header at byte {pos} "
                             "is cut off")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 8 + length + 4
        if end > len(data):
            raise ValueError(f"PNG truncated: the {kind!r} chunk at byte "
                             f"{pos} needs {length} bytes")
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[end - 4:end])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise ValueError(f"PNG corrupt: the {kind!r} chunk at byte {pos} "
                             "fails its CRC")
        pos = end
        if kind == b"IHDR":
            header = _read_header(body, expect_size)
        elif kind == b"IDAT":
            if header is None:
                raise ValueError("PNG corrupt: image data before the header")
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None or not idat:
        raise ValueError("PNG has no header or no image data")
    width, height, depth, channels = header
    return _unfilter(b"".join(idat), width, height, depth, channels)


def _read_header(body: bytes, expect_size: Optional[Tuple[int, int]]
                 ) -> Tuple[int, int, int, int]:
    """(width, height, bit depth, channels) of an IHDR chunk, checked."""
    if len(body) != 13:
        raise ValueError(f"PNG corrupt: IHDR has {len(body)} bytes, not 13")
    width, height, depth, color, compression, filtering, interlace = (
        struct.unpack(">IIBBBBB", body))
    if expect_size is not None and (width, height) != tuple(expect_size):
        raise ValueError(f"PNG is {width}x{height} but {expect_size[0]}x"
                         f"{expect_size[1]} was expected")
    if width == 0 or height == 0:
        raise ValueError(f"PNG size {width}x{height} is invalid")
    if color not in _CHANNELS:
        raise ValueError(f"PNG color type {color} (palette) is not supported "
                         "without an imaging library; gray, gray + alpha, "
                         "RGB and RGBA are")
    if depth not in (8, 16):
        raise ValueError(f"PNG bit depth {depth} is not supported; 8 and 16 "
                         "are")
    if compression != 0 or filtering != 0:
        raise ValueError("PNG uses an unknown compression or filter method")
    if interlace != 0:
        raise ValueError("interlaced PNGs are not supported without an "
                         "imaging library")
    return width, height, depth, _CHANNELS[color]


def _unfilter(compressed: bytes, width: int, height: int, depth: int,
              channels: int) -> np.ndarray:
    """Inflates the image data and undoes each row's filter."""
    bpp = channels * depth // 8  # Bytes per pixel: the filters' distance.
    stride = width * bpp
    expected = height * (stride + 1)
    # Bounded inflate: a zip bomb stops at one byte past the expected size.
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(compressed, expected + 1)
    except zlib.error as error:
        raise ValueError(f"PNG image data does not inflate: {error}") from None
    if len(raw) != expected:
        raise ValueError(f"PNG image data has {len(raw)} bytes; a {width}x"
                         f"{height} image needs {expected}")
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    filters = rows[:, 0]
    if not filters.any():
        # Unfiltered, as the server writes masks: nothing to undo.
        out = rows[:, 1:].copy()
    else:
        out = np.empty((height, stride), np.uint8)
        prior = np.zeros(stride, np.uint8)
        for y in range(height):
            out[y] = _unfilter_row(int(filters[y]), rows[y, 1:], prior, bpp)
            prior = out[y]
    if depth == 16:
        # PNG samples are big-endian.
        out = out.view(">u2").astype(np.uint16)
    if channels == 1:
        return out.reshape(height, width)
    return out.reshape(height, width, channels)


def _unfilter_row(kind: int, row: np.ndarray, prior: np.ndarray,
                  bpp: int) -> np.ndarray:
    """Undoes one row's filter (PNG spec, section 9). Sub and Up vectorize;
    Average and Paeth depend on the byte just decoded, so they loop."""
    if kind == 0:
        return row
    if kind == 1:
        # Each byte lane is a running sum modulo 256.
        return np.cumsum(row.reshape(-1, bpp), axis=0,
                         dtype=np.uint8).reshape(-1)
    if kind == 2:
        return row + prior  # uint8 arithmetic wraps modulo 256, as PNG does.
    if kind not in (3, 4):
        raise ValueError(f"PNG corrupt: unknown row filter {kind}")
    cur = row.tolist()
    up = prior.tolist()
    for i in range(len(cur)):
        left = cur[i - bpp] if i >= bpp else 0
        if kind == 3:
            cur[i] = (cur[i] + ((left + up[i]) >> 1)) & 0xFF
            continue
        up_left = up[i - bpp] if i >= bpp else 0
        estimate = left + up[i] - up_left
        to_left = abs(estimate - left)
        to_up = abs(estimate - up[i])
        to_up_left = abs(estimate - up_left)
        if to_left <= to_up and to_left <= to_up_left:
            predictor = left
        elif to_up <= to_up_left:
            predictor = up[i]
        else:
            predictor = up_left
        cur[i] = (cur[i] + predictor) & 0xFF
    return np.array(cur, np.uint8)
