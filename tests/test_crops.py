"""Stored representative crops: lossless, and readable whether an index wrote them as LZ4 or PNG."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mxn.storage.crop_codec import MAGIC, CropFormatError, crop_png, decode_crop, encode_crop


def noisy_crop(h: int = 128, w: int = 96, seed: int = 0) -> np.ndarray:
    """A grey road with a coloured box and sensor noise, as ingest's crops look."""
    rng = np.random.default_rng(seed)
    image = np.full((h, w, 3), 90.0) + rng.normal(0, 4, (h, w, 3))
    image[h // 4 : h // 2, w // 5 : w // 2] = rng.integers(30, 230, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_a_crop_comes_back_exactly_and_smaller_than_its_pixels():
    image = noisy_crop()
    data = encode_crop(image)
    assert data.startswith(MAGIC) and len(data) < image.nbytes
    back = decode_crop(data)
    assert back.dtype == np.uint8 and back.shape == image.shape
    np.testing.assert_array_equal(back, image)
    back[0, 0] = 0  # a caller may draw on what it gets


def test_crops_an_older_index_stored_as_png_still_decode():
    image = noisy_crop(64, 64, seed=1)
    ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    np.testing.assert_array_equal(decode_crop(png.tobytes()), image)
    assert crop_png(png.tobytes()) == png.tobytes()  # PNG stays as stored
    np.testing.assert_array_equal(decode_crop(crop_png(encode_crop(image))), image)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[:-7],  # truncated
        lambda d: d[: len(MAGIC) + 3],  # header cut
        lambda d: d[: len(MAGIC) + 6] + bytes(len(d) - len(MAGIC) - 6),  # block zeroed
        lambda d: b"not a crop at all",
        lambda d: b"\x89PNG\r\n\x1a\n" + b"garbage",
        lambda d: b"",
    ],
)
def test_damaged_crop_bytes_raise_a_clear_error(damage):
    with pytest.raises(CropFormatError, match="crop"):
        decode_crop(damage(encode_crop(noisy_crop())))


def test_only_rgb_uint8_images_are_stored():
    with pytest.raises(ValueError, match="uint8"):
        encode_crop(noisy_crop().astype(np.float32))
    with pytest.raises(ValueError, match="H x W x 3"):
        encode_crop(noisy_crop()[:, :, 0])
