"""Text on RGB frames in any script the bundled font draws: names on annotated videos and contact sheets.

OpenCV's ``putText`` only knows its Hershey fonts, which are ASCII: "Zoë"
becomes "Zo?" and "佐藤" "??". Here text is drawn with Pillow in DejaVu Sans,
the TrueType font that matplotlib ships (so every install has the same one,
whatever the system's fonts), which covers Latin, Greek, Cyrillic, Hebrew,
Arabic and much more.

DejaVu has no CJK, Thai or Devanagari. A character it lacks is never drawn
as "?" nor as a blank box (tofu), which would make two people's names look
alike: :func:`drawable` first tries the character's compatibility
decomposition (full-width "Ａ" is "A", the ligature "ﬁ" is "fi", a letter
with a mark the font lacks keeps its bare letter), and otherwise writes its
code point, a run of such characters in one bracket: "佐藤" is drawn
"[U+4F50 U+85E4]", distinct and exact, and the row files keep the real name.

Speed: a label is rendered once into a small alpha mask (cached by text and
size), and only the label's rectangle of the frame is blended, so
annotating every frame of a video costs about what ``putText`` did.
"""

from __future__ import annotations

import functools
import math
import unicodedata
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: The font, as matplotlib ships it (``mpl-data/fonts/ttf/``).
FONT_FILE = "DejaVuSans.ttf"
#: Space (x, y) between a label's text and the edge of its background box, pixels.
PAD = (2, 1)

Colour = tuple[int, int, int]


@functools.cache
def font_path() -> Path:
    """DejaVu Sans inside matplotlib's data (found through matplotlib, never a system font)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / FONT_FILE


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    if size < 1:
        raise ValueError(f"a font size is >= 1 pixel, got {size}")
    return ImageFont.truetype(str(font_path()), size)


@functools.cache
def covered() -> frozenset[int]:
    """The code points the font has a glyph for (its character map, read with matplotlib's FreeType)."""
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(str(font_path())).get_charmap())


def _fallback(char: str, glyphs: frozenset[int]) -> str:
    """The drawable parts of ``char``'s compatibility decomposition, or "" when it has no base letter."""
    parts = [c for c in unicodedata.normalize("NFKD", char) if ord(c) in glyphs]
    return "".join(parts) if any(not unicodedata.combining(c) for c in parts) else ""


def drawable(text: str, glyphs: frozenset[int] | None = None) -> str:
    """``text`` as one line the font draws without a missing glyph (see the module docstring).

    Composed first (NFC), so a letter typed as letter + mark uses the font's
    precomposed glyph. Controls and line or paragraph separators become
    spaces (a label is one line); invisible format characters the font lacks
    are dropped. ``glyphs``: the code points to assume drawable (default: the font's).
    """
    glyphs = covered() if glyphs is None else glyphs
    out: list[str] = []
    missing: list[str] = []
    for char in unicodedata.normalize("NFC", text):
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp") or (category == "Zs" and ord(char) not in glyphs):
            char = " "
        if ord(char) in glyphs:
            part = char
        elif category == "Cf":
            continue
        else:
            part = _fallback(char, glyphs)
        if not part:
            missing.append(f"U+{ord(char):04X}")
            continue
        if missing:
            out.append(f"[{' '.join(missing)}]")
            missing.clear()
        out.append(part)
    if missing:
        out.append(f"[{' '.join(missing)}]")
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def text_mask(text: str, size: int) -> np.ndarray:
    """The text's coverage ``(H, W)`` ``uint8`` (255: ink), one line of the font's full height.

    Every line of one ``size`` is equally high (ascent + descent), so labels
    line up whatever letters they hold. Read-only: it is cached.
    """
    font = _font(size)
    shown = drawable(text)
    ascent, descent = font.getmetrics()
    left, _, right, _ = font.getbbox(shown) if shown else (0, 0, 0, 0)
    shift = max(0, -left)
    width = max(1, math.ceil(max(font.getlength(shown), right)) + shift)
    canvas = Image.new("L", (width, ascent + descent))
    ImageDraw.Draw(canvas).text((shift, 0), shown, font=font, fill=255)
    mask = np.array(canvas)
    mask.flags.writeable = False
    return mask


def label_size(text: str, size: int, pad: tuple[int, int] = PAD) -> tuple[int, int]:
    """Width and height of the box :func:`draw_text` fills for ``text``, padding included."""
    height, width = text_mask(text, size).shape
    return width + 2 * pad[0], height + 2 * pad[1]


def draw_text(
    image: np.ndarray,
    text: str,
    xy: tuple[int, int],
    size: int,
    colour: Colour,
    background: Colour | None = None,
    pad: tuple[int, int] = PAD,
) -> tuple[int, int, int, int]:
    """Draw ``text`` in place on an ``(H, W, 3)`` ``uint8`` image, its box's top-left corner at ``xy``.

    ``size`` is the font's size in pixels; ``colour`` and ``background``
    (the box's fill; ``None``: none) are in the image's channel order. What
    falls outside the image is cut off. Returns the box ``(x1, y1, x2, y2)``,
    ends exclusive, before clipping (as :func:`label_size` gives it).
    """
    mask = text_mask(text, size)
    width, height = label_size(text, size, pad)
    x, y = int(xy[0]), int(xy[1])
    rows, cols = image.shape[:2]
    if background is not None:
        image[max(y, 0) : max(min(y + height, rows), 0), max(x, 0) : max(min(x + width, cols), 0)] = (
            background
        )
    tx, ty = x + pad[0], y + pad[1]
    x1, y1 = max(tx, 0), max(ty, 0)
    x2, y2 = min(tx + mask.shape[1], cols), min(ty + mask.shape[0], rows)
    if x2 > x1 and y2 > y1:
        alpha = mask[y1 - ty : y2 - ty, x1 - tx : x2 - tx, None].astype(np.uint16)
        region = image[y1:y2, x1:x2]
        ink = np.asarray(colour, np.uint16)
        region[:] = ((region * (255 - alpha) + ink * alpha + 127) // 255).astype(image.dtype)
    return x, y, x + width, y + height
