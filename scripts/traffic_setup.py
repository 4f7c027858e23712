"""The traffic-world setup that bench_ingest and bench_query share: clips, their options, the models.

Both benchmarks render clips of the world's camera presets, ingest them with
the same extractor and chunk settings, and take the same command-line options
for the clips (``--presets``, ``--seconds``, ``--size``, ``--fps``,
``--seed``). Their settings extend :class:`ClipSettings` with what only they
measure; neither imports the other.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness import given, host

from mxn.datasets.world.presets import PRESETS
from mxn.datasets.world.video import RenderedClip, render_clip
from mxn.defaults import load_default_model
from mxn.ingest.config import IngestConfig
from mxn.ingest.extraction import ExtractorConfig
from mxn.modelfile import MXNModel, load_model


@dataclass(frozen=True)
class ClipSettings:
    """The clips of one run and how ingest cuts them (the quick preset or the full one, plus overrides)."""

    quick: bool
    presets: tuple[str, ...]
    seconds: float
    size: tuple[int, int]
    fps: float
    seed: int
    warmup: int  # background-model warm-up frames
    chunk_frames: int

    def ingest_config(self, **changes: Any) -> IngestConfig:
        """The ingest settings every run of the benchmark shares, with ``changes``."""
        return IngestConfig(
            chunk_frames=self.chunk_frames, extractor=ExtractorConfig(warmup=self.warmup), **changes
        )

    def render(
        self, out: Path, preset: str, seconds: float | None = None, seed: int | None = None
    ) -> RenderedClip:
        """A clip of ``preset`` at this run's size and frame rate (its length and seed unless given)."""
        return render_clip(
            out,
            preset,
            self.seconds if seconds is None else seconds,
            self.seed if seed is None else seed,
            self.size,
            self.fps,
            progress=False,
        )

    def describe(self) -> dict[str, Any]:
        """The run's mode, every setting (tuples as lists) and the host: the head of the JSON's config."""
        fields = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        return {"mode": "quick" if self.quick else "full", **fields, **host()}


def preset_names(text: str) -> tuple[str, ...]:
    """Comma-separated camera presets, each one the world knows."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in PRESETS]
    if unknown or not names:
        raise SystemExit(f"unknown preset(s) {unknown}; choose from {', '.join(PRESETS)}")
    return names


def frame_size(text: str) -> tuple[int, int]:
    """``WxH`` as (width, height)."""
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def add_clip_arguments(parser: argparse.ArgumentParser, seconds: str, seed: str) -> None:
    """The clip options; ``seconds`` and ``seed`` are the help of ``--seconds`` and ``--seed``."""
    parser.add_argument("--presets", help=f"comma-separated presets (default: all of {', '.join(PRESETS)})")
    parser.add_argument("--seconds", type=float, help=seconds)
    parser.add_argument("--size", help="frame size WxH, e.g. 640x360")
    parser.add_argument("--fps", type=float, help="frame rate of the clips")
    parser.add_argument("--seed", type=int, help=seed)


def clip_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`ClipSettings` fields the clip options changed."""
    changes = given(args, ("seconds", "fps", "seed"))
    if args.presets:
        changes["presets"] = preset_names(args.presets)
    if args.size:
        changes["size"] = frame_size(args.size)
    return changes


def load_models(names: tuple[str, ...], folder: Path | None = None) -> dict[str, MXNModel]:
    """The bundled models ``names`` (``ingest``, ``query``, ``gt``), or ``<folder>/<name>.mxn``."""
    return {
        name: load_model(folder / f"{name}.mxn") if folder else load_default_model(name) for name in names
    }
