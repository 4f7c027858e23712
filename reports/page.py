"""A small builder of self-contained HTML pages: one file, no network, nothing to install to read it.

A report must open years later on a machine with no network, so everything
it shows travels inside the file: the CSS inline, every image a base64
``data:`` URI (matplotlib figures are rendered to PNG in memory, stored
PNG crops are embedded as they are), and no JavaScript at all.

Markup is built from :class:`Markup` (HTML already made safe) and plain
text, which is always escaped with :func:`html.escape`; so text from a
database (a video's file name, a label) can never inject markup.

Numbers that a reader (or a test) may want to check are shown as *figures*:
``<dd data-key="KEY" data-value="RAW">shown</dd>``; ``data-value`` holds the
exact number, the text its rounded form.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: JPEG quality of embedded photos (frames, crops): small files, no visible loss at report sizes.
JPEG_QUALITY = 85

#: The page's whole style sheet (inline: the file must stand alone).
CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0; }
header { background: #1f3a5f; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; opacity: 0.85; }
main { padding: 8px 32px 40px; max-width: 1200px; }
h2 { border-bottom: 2px solid #1f3a5f; padding-bottom: 2px; margin-top: 32px; }
h3 { margin: 20px 0 8px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #ccd; padding: 3px 9px; text-align: right; vertical-align: top; }
th { background: #eef1f6; }
td:first-child, th:first-child { text-align: left; }
dl.figures { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0 16px; }
dl.figures div { background: #f4f6fa; border: 1px solid #dde; border-radius: 6px; padding: 6px 12px;
                 min-width: 110px; }
dl.figures dt { font-size: 12px; color: #556; }
dl.figures dd { margin: 0; font-size: 20px; font-weight: 600; }
img.plot, img.sheet { max-width: 100%; border: 1px solid #dde; }
.thumbs { display: flex; flex-wrap: wrap; gap: 6px; margin: 4px 0 12px; }
.thumbs figure { margin: 0; width: 100px; font-size: 11px; text-align: center; color: #445; }
.thumbs img { width: 96px; height: 96px; image-rendering: pixelated; border: 1px solid #ccd; }
p.note { color: #666; font-style: italic; }
nav a { margin-right: 14px; }
footer { color: #888; font-size: 12px; padding: 0 32px 24px; }
"""


class Markup(str):
    """A string of HTML that is already safe: :func:`escape` passes it through unchanged."""


def escape(value: Any) -> Markup:
    """``value`` as HTML: markup as it is, anything else as escaped text."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def join(parts: Iterable[Any]) -> Markup:
    """Several pieces (markup or text) one after the other."""
    return Markup("".join(escape(p) for p in parts))


def tag(element: str, /, *children: Any, **attrs: Any) -> Markup:
    """``<element attrs>children</element>``; ``class_`` gives ``class``, ``data_key`` gives ``data-key``.

    Attributes that are ``None`` or ``False`` are left out; ``True`` writes the bare name.
    """
    rendered = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        key = key.rstrip("_").replace("_", "-")
        rendered.append(f" {key}" if value is True else f' {key}="{escape(value)}"')
    if element in ("img", "br", "meta", "hr"):
        return Markup(f"<{element}{''.join(rendered)}>")
    return Markup(f"<{element}{''.join(rendered)}>{join(children)}</{element}>")


# -- formatting numbers -------------------------------------------------------------------------------


def fmt_count(value: int | None) -> str:
    return "-" if value is None else f"{int(value):,}"


def fmt_pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def fmt_number(value: Any) -> str:
    """A table cell: counts with separators, other numbers to 3 significant decimals, text as it is."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return fmt_count(int(value))
    if isinstance(value, float | np.floating):
        return f"{value:.3f}" if math.isfinite(value) else str(value)
    return str(value)


# -- building blocks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fig:
    """One figure of a figures block: a label, the exact value and how it is shown."""

    key: str
    label: str
    value: float | int | str | None
    shown: str


def count(key: str, label: str, value: int | None) -> Fig:
    return Fig(key, label, None if value is None else int(value), fmt_count(value))


def pct(key: str, label: str, value: float | None) -> Fig:
    return Fig(key, label, value, fmt_pct(value))


def seconds(key: str, label: str, value: float | None) -> Fig:
    return Fig(key, label, value, fmt_seconds(value))


def text(key: str, label: str, value: str) -> Fig:
    return Fig(key, label, value, value)


def figures(items: Sequence[Fig]) -> Markup:
    """A row of labelled numbers, each ``<dd data-key data-value>`` so it can be read back exactly."""
    cells = [
        tag(
            "div",
            tag("dt", f.label),
            tag("dd", f.shown, data_key=f.key, data_value="" if f.value is None else repr_value(f.value)),
        )
        for f in items
    ]
    return tag("dl", *cells, class_="figures")


def repr_value(value: float | int | str) -> str:
    """The exact value written into ``data-value`` (floats round-trip through ``float()``)."""
    return repr(float(value)) if isinstance(value, float | np.floating) else str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], id: str | None = None) -> Markup:
    """A plain table; cells that are not markup are formatted with :func:`fmt_number` and escaped."""
    head = tag("tr", *(tag("th", h) for h in headers))
    body = [
        tag("tr", *(tag("td", c if isinstance(c, Markup) else fmt_number(c)) for c in row)) for row in rows
    ]
    return tag("table", tag("thead", head), tag("tbody", *body), id=id)


def note(message: str) -> Markup:
    return tag("p", message, class_="note")


def link(href: str, label: str) -> Markup:
    return tag("a", label, href=href)


# -- images -------------------------------------------------------------------------------------------


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def png_img(data: bytes, alt: str, class_: str | None = None, title: str | None = None) -> Markup:
    """PNG bytes as an embedded image."""
    return tag("img", src=data_uri(data), alt=alt, class_=class_, title=title)


def jpeg_bytes(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """An RGB (or grey) uint8 array as JPEG: video frames are noisy, and PNG makes them much larger."""
    image = np.asarray(image)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cannot encode an image of shape {image.shape} as JPEG")
    return data.tobytes()


def photo_img(image: np.ndarray, alt: str, class_: str = "sheet", title: str | None = None) -> Markup:
    """A picture of the world (frames, crops) embedded as JPEG; charts stay PNG (sharp lines)."""
    return tag("img", src=data_uri(jpeg_bytes(image), "image/jpeg"), alt=alt, class_=class_, title=title)


def decode_image(data: bytes, source: str = "image") -> np.ndarray:
    """Encoded image bytes (PNG, JPEG) as an RGB array."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{source}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def new_figure(width: float = 8.0, height: float = 3.5) -> Figure:
    """A matplotlib figure that belongs to no window or global state (no pyplot), so it needs no closing."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def figure_img(fig: Figure, alt: str) -> Markup:
    """A matplotlib figure rendered to PNG in memory and embedded."""
    return png_img(figure_png(fig), alt, "plot")


def file_img(path: str | os.PathLike, alt: str | None = None) -> Markup:
    """A PNG file (a plot another tool drew) embedded, so the report does not depend on it staying there."""
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG"):
        raise ValueError(f"{path}: not a PNG file (a report embeds PNG images only)")
    return png_img(data, alt or path.name, "plot", title=path.name)


def extra_images(paths: Sequence[str | os.PathLike]) -> list[Markup]:
    """Each PNG with its file name as a caption."""
    return [tag("figure", file_img(p), tag("figcaption", Path(p).name)) for p in paths]


# -- the page -----------------------------------------------------------------------------------------


@dataclass
class Section:
    """One ``<section>`` under an ``<h2 id=...>``: the ids are stable, so links and tests can rely on them."""

    id: str
    heading: str
    body: list[Markup] = field(default_factory=list)

    def add(self, *parts: Markup) -> Section:
        self.body.extend(parts)
        return self

    def render(self) -> Markup:
        return tag("section", tag("h2", self.heading, id=self.id), *self.body)


@dataclass
class Page:
    """A report page: a title, a subtitle and sections in order."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    footer: str = "Written by mxn. Self-contained: every image is embedded, nothing is loaded from elsewhere."

    def section(self, id: str, heading: str) -> Section:
        if any(s.id == id for s in self.sections):
            raise ValueError(f"the page already has a section {id!r}")
        section = Section(id, heading)
        self.sections.append(section)
        return section

    def render(self) -> str:
        nav = tag("nav", *(link(f"#{s.id}", s.heading) for s in self.sections))
        head = tag(
            "head",
            tag("meta", charset="utf-8"),
            tag("meta", name="viewport", content="width=device-width, initial-scale=1"),
            tag("title", self.title),
            tag("style", Markup(CSS)),
        )
        body = tag(
            "body",
            tag("header", tag("h1", self.title), tag("p", self.subtitle) if self.subtitle else ""),
            tag("main", nav, *(s.render() for s in self.sections)),
            tag("footer", self.footer),
        )
        return "<!DOCTYPE html>\n" + tag("html", head, body, lang="en") + "\n"

    def write(self, path: str | os.PathLike) -> Path:
        """Write the page (parents created) to a temporary name, then rename: never a half-written report."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.render(), encoding="utf-8")
        os.replace(tmp, path)
        return path
