#!/usr/bin/env python
"""Label who appears when in a movie: the face jobs, from Python (mxn.api).

    python scripts/example_faces.py --out out/example-faces
    python scripts/example_faces.py --out out/example-faces --preset short

The same as these commands (docs/API.md lists every function and option):

    mxn movie --preset tiny --seed 1 -o OUT/movie.mp4 --gallery OUT/cast --leave-out lfw_6
    mxn movie --preset tiny --seed 5 -o OUT/calib.mp4
    mxn tune faces OUT/calib.mp4 --gallery OUT/cast --out OUT/face-thresholds.json
    mxn faces OUT/movie.mp4 --gallery OUT/cast --thresholds OUT/face-thresholds.json \\
        --db sqlite:///OUT/faces.db --out OUT/faces.json --srt OUT/faces.srt --html OUT/faces.html

It composes a movie from real faces that ship in Python packages, with a
gallery of the cast that leaves one person out (the oracle must call them
``unknown-1``), tunes the face MXN's per-exit thresholds on a second movie
whose truth is known, then labels the first movie: each face is named by the
first exit whose running-average database is sure, and by the oracle (dlib)
only when none is. The tiny preset keeps it well under a minute.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mxn import api


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--out", default="out/example-faces", help="Folder for the movies, cast and labels.")
    parser.add_argument("--preset", default="tiny", choices=["tiny", "short", "feature"])
    parser.add_argument("--stranger", default="lfw_6", help="A cast member the gallery leaves out.")
    args = parser.parse_args(argv)

    out = Path(args.out)
    movie = api.make_movie(
        out / "movie.mp4", preset=args.preset, seed=1, gallery=out / "cast", leave_out=args.stranger
    )
    print(f"composed {movie.video} ({movie.frames} frames, {movie.shots} shots) and its truth")
    print(f"gallery {movie.gallery}: {', '.join(sorted(movie.photos))} ({args.stranger} left out)")
    calib = api.make_movie(out / "calib.mp4", preset="tiny", seed=5)

    tuning = api.tune_faces(calib.video, gallery=movie.gallery, out=out / "face-thresholds.json")
    limits = ", ".join("-" if t is None else f"{t:.3f}" for t in tuning.thresholds.thresholds)
    print(
        f"tuned on {tuning.faces} faces of {calib.video.name}: thresholds {limits}; "
        f"accuracy {tuning.replay.accuracy:.3f}, oracle calls {tuning.replay.oracle_rate:.1%}"
    )

    result = api.label_faces(
        movie.video, gallery=movie.gallery, thresholds=out / "face-thresholds.json", db=out / "faces.db",
        out=out / "faces.json", srt=out / "faces.srt", html=out / "faces.html", progress=False,
    )  # fmt: skip
    summary = result.summary()
    rates = ", ".join(f"exit {i} {r:.0%}" for i, r in enumerate(summary["hit_rate_per_exit"]))
    print(
        f"labelled {summary['faces']} faces of {len(summary['people'])} people; "
        f"oracle calls {summary['oracle_calls']} ({summary['oracle_rate']:.1%}); hit rate {rates}"
    )
    for person, seconds in sorted(result.to_dict()["screen_time_s"].items()):
        print(f"  {person}: {seconds:.1f} s on screen")
    print(f"wrote {out / 'faces.json'}, {out / 'faces.srt'} and {out / 'faces.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
