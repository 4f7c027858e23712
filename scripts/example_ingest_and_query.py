#!/usr/bin/env python
"""Index a traffic clip and ask where a label is: the ingest and query jobs, from Python (mxn.api).

    python scripts/example_ingest_and_query.py --out out/example-query
    python scripts/example_ingest_and_query.py --out out/example-query --label person --seconds 20

The same as these commands (docs/API.md lists every function and option):

    mxn world video --preset downtown --seconds 6 --size 320x180 --fps 15 -o OUT/downtown.mp4
    mxn ingest OUT/downtown.mp4 --db sqlite:///OUT/index.db
    mxn ingest OUT/downtown.mp4 --db sqlite:///OUT/index.db --mode gt-all
    mxn query car --db sqlite:///OUT/index.db --out OUT/car.csv --sheet OUT/car.png --html OUT/car.html

It renders a short clip of the synthetic downtown camera, indexes it twice
(the cheap MXN index queries use, and the ground-truth CNN's gt-all index that
judges their answers), then asks for the label: confident MXN exits accept
clusters, the rest go to the ground-truth CNN. Small settings keep it well
under a minute on a laptop CPU; running it again reuses the index and the
cached verdicts, so the second query runs no CNN at all.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mxn import api


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--out", default="out/example-query", help="Folder for the clip, index and answer.")
    parser.add_argument("--label", default="car", help="What to look for (car, bus, person, ...).")
    parser.add_argument("--seconds", type=float, default=6.0, help="Length of the rendered clip.")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)

    out = Path(args.out)
    db = out / "index.db"  # a Path is an SQLite file; a URL string works too (postgresql+psycopg://...)
    clip = api.render_traffic_video(
        out / "downtown.mp4", preset="downtown", seconds=args.seconds, seed=args.seed, size="320x180",
        fps=15, progress=False,
    )  # fmt: skip
    print(f"rendered {clip.video} ({clip.frames} frames) and its truth {clip.truth.name}")

    for mode in ("mxn", "gt-all"):
        # short chunks and background warm-up because the clip is short; the defaults suit real videos
        [result] = api.ingest(clip.video, db=db, mode=mode, chunk_frames=30, warmup=10, progress=False)
        if result.status == "failed":
            raise SystemExit(f"ingest failed: {result.error}")
        stats = result.stats
        print(
            f"ingest ({mode}): {result.status}, {stats.get('objects', 0)} objects, "
            f"{stats.get('indexing', 0)} (object, label) pairs, {stats.get('clusters', 0)} clusters"
        )

    answer = api.query(
        args.label, db=db, out=out / f"{args.label}.json", sheet=out / f"{args.label}.png",
        html=out / f"{args.label}.html", progress=False,
    )  # fmt: skip
    s = answer.stats
    frames = sum(len(v.frames) for v in answer.videos)
    print(
        f"query {args.label!r}: {frames} frames; {s.candidates} candidate clusters, {s.accepted} accepted; "
        f"decided by MXN exits {dict(sorted(s.decided_per_exit.items()))}, by the GT-CNN {s.gt_decided}; "
        f"GT-CNN calls {s.gt_calls}, cached verdicts {s.cached}"
    )
    if answer.accuracy:
        a = answer.accuracy
        print(f"against the gt-all index: precision {a['precision']:.3f}, recall {a['recall']:.3f}")
    for video in answer.videos:
        shown = ", ".join(f"{start:.1f}-{end:.1f} s" for start, end in video.segments[:6])
        print(f"  {video.name}: {shown or 'no frames'}")
    print(f"wrote {out / f'{args.label}.json'}, {out / f'{args.label}.png'} and {out / f'{args.label}.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
