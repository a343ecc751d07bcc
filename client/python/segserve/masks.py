"""Decoding of the server's masks: PNG, RAW and RLE, as the C++ SDK does.

A label map has the input image's size. Its class ids are uint8 when the
model has at most 256 classes, else uint16 (little-endian in RAW, a 16-bit
PNG). RLE is the row-major label map as consecutive (class_id, run_length)
pairs, each a protobuf-style unsigned varint, covering width*height pixels.
Every function raises SegserveError(INVALID_ARGUMENT), saying what was
wrong, when the data does not describe exactly width x height pixels.
"""

from typing import Optional, Union

import grpc
import numpy as np

from segserve.errors import SegserveError
from segserve.png import decode_png

# The wire values of segserve.v1.MaskEncoding, by the names the SDK takes.
MASK_ENCODINGS = {"png": 0, "raw": 1, "rle": 2}

# Mask sides are ints on the C++ side; larger ones are refused there too.
_MAX_SIDE = 2**31 - 1
# A protobuf varint carries 7 bits per byte: 64 bits need at most 10 bytes.
_MAX_VARINT_BYTES = 10


def _invalid(message: str) -> SegserveError:
    """The error of data that is not a valid mask."""
    return SegserveError(grpc.StatusCode.INVALID_ARGUMENT, message)


def encoding_value(encoding: Union[str, int]) -> int:
    """The MaskEncoding wire value of "png", "raw" or "rle" (any case), or of
    that value itself. Raises ValueError for anything else."""
    if isinstance(encoding, str) and encoding.lower() in MASK_ENCODINGS:
        return MASK_ENCODINGS[encoding.lower()]
    if isinstance(encoding, int) and encoding in MASK_ENCODINGS.values():
        return int(encoding)
    raise ValueError(f"mask encoding {encoding!r} is not one of "
                     f"{', '.join(MASK_ENCODINGS)}")


def check_size(width: int, height: int) -> None:
    """Raises SegserveError(INVALID_ARGUMENT) unless both sides are
    1..2**31-1."""
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):
        raise _invalid(f"mask size {width}x{height} is invalid; each side "
                       f"must be 1..{_MAX_SIDE}")


def decode_mask(data: bytes, encoding: Union[str, int], width: int,
                height: int) -> np.ndarray:
    """Decodes mask data of the given encoding to an HxW uint8 or uint16
    label map."""
    check_size(width, height)
    value = encoding_value(encoding)
    if value == MASK_ENCODINGS["png"]:
        return decode_png_mask(data, width, height)
    if value == MASK_ENCODINGS["raw"]:
        return decode_raw(data, width, height)
    return decode_rle(data, width, height)


def decode_png_mask(data: bytes, width: int, height: int) -> np.ndarray:
    """An 8- or 16-bit grayscale PNG mask of exactly width x height."""
    try:
        labels = decode_png(data, expect_size=(width, height))
    except ValueError as error:
        raise _invalid(f"cannot decode the PNG mask: {error}") from None
    if labels.ndim != 2:
        raise _invalid(f"PNG mask has {labels.shape[2]} channels; a mask must "
                       "be an 8- or 16-bit single-channel grayscale PNG")
    return labels


def decode_raw(data: bytes, width: int, height: int) -> np.ndarray:
    """Row-major ids: one byte per pixel, or two (uint16 little-endian)."""
    pixels = width * height
    if len(data) == pixels:
        return np.frombuffer(data, np.uint8).reshape(height, width).copy()
    if len(data) == 2 * pixels:
        return (np.frombuffer(data, "<u2").astype(np.uint16)
                .reshape(height, width))
    raise _invalid(f"RAW mask has {len(data)} bytes; a {width}x{height} mask "
                   f"needs {pixels} (uint8 ids) or {2 * pixels} (uint16 ids) "
                   "bytes")


def decode_rle(data: bytes, width: int, height: int) -> np.ndarray:
    """(class_id, run_length) varint pairs over the row-major map.

    As in the C++ decoder, the result is uint16 only when an id above 255
    occurs, and every varint, id (at most 65535) and run (at least 1) is
    checked before anything is allocated for the label map.
    """
    pixels = width * height
    buf = np.frombuffer(bytes(data), np.uint8)
    if buf.size == 0:
        raise _invalid(f"RLE mask covers 0 pixels; a {width}x{height} mask "
                       f"needs {pixels}")
    # A varint ends at each byte without the continuation bit.
    ends = np.flatnonzero(buf < 0x80)
    if ends.size == 0 or ends[-1] != buf.size - 1:
        start = int(ends[-1]) + 1 if ends.size else 0
        raise _invalid(f"RLE mask truncated: the varint at byte {start} is "
                       f"cut off at the end of the data ({buf.size} bytes)")
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    # The 10th byte may only contribute the single remaining bit of 64.
    long = np.flatnonzero(lengths >= _MAX_VARINT_BYTES)
    if long.size:
        tenth = buf[starts[long] + _MAX_VARINT_BYTES - 1]
        if (tenth > 1).any():
            at = int(starts[long[np.argmax(tenth > 1)]])
            raise _invalid(f"RLE mask has a varint at byte {at} that "
                           "overflows 64 bits")
    # Each byte's 7 bits shifted to its place in its varint, then summed per
    # varint (the bits never overlap, so the sum is the value).
    place = np.arange(buf.size) - np.repeat(starts, lengths)
    bits = (buf & 0x7F).astype(np.uint64) << (7 * place).astype(np.uint64)
    values = np.add.reduceat(bits, starts)
    if values.size % 2:
        raise _invalid(f"RLE mask truncated: the run length varint at byte "
                       f"{buf.size} is cut off at the end of the data "
                       f"({buf.size} bytes)")
    ids, runs = values[0::2], values[1::2]
    pair_starts = starts[0::2]
    if (ids > 0xFFFF).any():
        i = int(np.argmax(ids > 0xFFFF))
        raise _invalid(f"RLE mask has class id {int(ids[i])} at byte "
                       f"{int(pair_starts[i])}; ids must be at most 65535")
    if (runs == 0).any():
        i = int(np.argmax(runs == 0))
        raise _invalid(f"RLE mask has a zero run length at byte "
                       f"{int(pair_starts[i])}; every run must cover at least "
                       "one pixel")
    # No run may reach past the mask. Checking each run first keeps the
    # running total below 2**64 for any mask that fits in memory.
    too_long = runs > pixels
    covered = np.cumsum(np.minimum(runs, pixels + 1), dtype=np.uint64)
    over = too_long | (covered > pixels)
    if over.any():
        i = int(np.argmax(over))
        start = int(covered[i] - min(int(runs[i]), pixels + 1))
        raise _invalid(f"RLE mask runs overflow the {width}x{height} mask "
                       f"({pixels} pixels): the run of {int(runs[i])} pixels "
                       f"at byte {int(pair_starts[i])} starts at pixel "
                       f"{start}")
    if int(covered[-1]) != pixels:
        raise _invalid(f"RLE mask covers {int(covered[-1])} pixels; a {width}x"
                       f"{height} mask needs {pixels}")
    dtype = np.uint16 if int(ids.max()) > 0xFF else np.uint8
    return np.repeat(ids.astype(dtype), runs.astype(np.intp)).reshape(
        height, width)


def decode_confidence(data: bytes, width: int,
                      height: int) -> Optional[np.ndarray]:
    """The per-pixel confidence (0..255, the winning class's softmax
    probability) as HxW uint8; None when the response has none (it was not
    asked for)."""
    if not data:
        return None
    check_size(width, height)
    pixels = width * height
    if len(data) != pixels:
        raise _invalid(f"confidence has {len(data)} bytes; a {width}x{height} "
                       f"mask needs {pixels}")
    return np.frombuffer(data, np.uint8).reshape(height, width).copy()
