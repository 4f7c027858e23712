"""A small real data set that needs no download: scikit-learn's handwritten digits.

1,797 scanned 8x8 digits (0-9) ship inside scikit-learn. They are upscaled
and tinted with a random ink and paper colour per image (seeded), so the
three input channels carry something and colour alone gives nothing away.
Until the traffic world exists, this is what the quick end-to-end run uses.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from mxn.images import ImageSet, resize_batch


def digits(size: int = 32, seed: int = 0) -> ImageSet:
    """The digits as ``uint8`` RGB images of ``size x size``, labels 0-9."""
    data = load_digits()
    ink = data.images / 16.0  # (N, 8, 8) in [0, 1]
    rng = np.random.default_rng(seed)
    paper = rng.uniform(0, 255, (len(ink), 1, 1, 3))
    # Ink differs from paper by 88-168 levels per channel, so no digit vanishes.
    pen = (paper + 128 + rng.uniform(-40, 40, paper.shape)) % 256
    rgb = paper + (pen - paper) * ink[..., None]
    images = resize_batch(rgb.round().astype(np.uint8), size)
    return ImageSet(images, data.target.astype(np.int64), [str(d) for d in range(10)])
