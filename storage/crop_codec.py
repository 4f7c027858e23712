"""How a cluster's representative crop is stored: losslessly, and quick to read back.

A label query reads and decodes the representative crop of every candidate
before any CNN sees it, so the decode is a cost every mode pays per
candidate. PNG (what indexes held until 2026-12-02) decodes a 128 px crop in
0.4-0.5 ms, a fifth of the ground-truth CNN's time. Ingest's crops carry
sensor noise, which no lossless coder compresses much, so the stored form is
the raw RGB pixels compressed with LZ4's high-compression mode: 31 KB per
128 px crop on a downtown index (PNG: 24 KB; raw: 48 KB), decoded in
0.03-0.05 ms. Lossy JPEG would be smaller and fast too, but it changes the
ground-truth CNN's answer on 0.7% of candidates against the crops
``gt-all`` sees.

The stored bytes are ``MAGIC``, the height, width and channels as three
little-endian uint16, then the LZ4 block. Crops stored as PNG (older indexes)
decode as before.
"""

from __future__ import annotations

import struct

import cv2
import lz4.block
import numpy as np

MAGIC = b"MXNC1"
_HEADER = struct.Struct("<HHH")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: LZ4 high-compression level: 3 keeps the encode (0.5 ms per 128 px crop, as PNG's) off
#: ingest's critical path; level 9 saves 0.3% more bytes for a third more time.
LZ4_LEVEL = 3


class CropFormatError(ValueError):
    """Bytes that are not a stored crop (a damaged database, or not written by mxn)."""


def encode_crop(image: np.ndarray) -> bytes:
    """An RGB uint8 image (H x W x 3) as the bytes the store keeps (lossless)."""
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"a crop must be an H x W x 3 uint8 image, got {image.dtype} {image.shape}")
    packed = lz4.block.compress(
        image.tobytes(), mode="high_compression", compression=LZ4_LEVEL, store_size=False
    )
    return MAGIC + _HEADER.pack(*image.shape) + packed


def decode_crop(data: bytes) -> np.ndarray:
    """Stored crop bytes (this module's format, or PNG) as an RGB uint8 image."""
    data = bytes(data)
    if data.startswith(MAGIC):
        return _decode_lz4(data)
    if data.startswith(_PNG_SIGNATURE):
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is not None:
            return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    raise CropFormatError("a stored representative crop cannot be read (damaged database?)")


def crop_png(data: bytes) -> bytes:
    """Stored crop bytes as a PNG file's bytes (as they are, where the index stored PNG)."""
    data = bytes(data)
    if data.startswith(_PNG_SIGNATURE):
        return data
    ok, buf = cv2.imencode(".png", cv2.cvtColor(decode_crop(data), cv2.COLOR_RGB2BGR))
    if not ok:
        raise CropFormatError("PNG encoding of a stored crop failed")
    return buf.tobytes()


def _decode_lz4(data: bytes) -> np.ndarray:
    start = len(MAGIC) + _HEADER.size
    if len(data) < start:
        raise CropFormatError("a stored representative crop is cut short (damaged database?)")
    shape = _HEADER.unpack_from(data, len(MAGIC))
    size = shape[0] * shape[1] * shape[2]
    try:
        pixels = lz4.block.decompress(data[start:], uncompressed_size=size, return_bytearray=True)
    except lz4.block.LZ4BlockError as err:
        raise CropFormatError(f"a stored representative crop is damaged ({err})") from None
    if len(pixels) != size or shape[2] != 3:
        raise CropFormatError("a stored representative crop has the wrong size (damaged database?)")
    return np.frombuffer(pixels, np.uint8).reshape(shape)
