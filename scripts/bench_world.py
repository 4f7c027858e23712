"""How fast the traffic world renders, per camera preset.

The issue's target: a 10-minute 640x360 video renders faster than real time.
For each preset this renders a clip to an mp4 file with its truth (the whole
path `mxn world video` takes) and reports frames per second and the multiple
of real time (30 fps). Peak memory is reported too: rendering streams, so it
must not grow with the clip's length.

Usage::

    python scripts/bench_world.py --quick --json out/bench_world_quick.json
    python scripts/bench_world.py --json out/bench_world.json      # 10-minute clips
"""

from __future__ import annotations

import resource
import sys
import tempfile
from pathlib import Path

from harness import new_parser, write_result

from mxn.datasets.world.presets import PRESETS
from mxn.datasets.world.video import render_clip


def main() -> int:
    args = new_parser(__doc__, "20-second clips instead of 10-minute ones").parse_args()
    seconds = 20.0 if args.quick else 600.0
    results: dict = {"seconds_per_clip": seconds, "size": [640, 360], "fps": 30.0, "presets": {}}
    print(f"{'preset':11s} {'frames':>7s} {'seconds':>8s} {'frames/s':>9s} {'x real time':>12s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in PRESETS:
            clip = render_clip(Path(tmp) / f"{name}.mp4", name, seconds, seed=0, progress=False)
            realtime = clip.render_fps / 30.0
            results["presets"][name] = {
                "frames": clip.frames,
                "render_seconds": clip.seconds,
                "render_fps": clip.render_fps,
                "realtime_factor": realtime,
                "video_mb": clip.video.stat().st_size / 2**20,
            }
            print(f"{name:11s} {clip.frames:7d} {clip.seconds:8.1f} {clip.render_fps:9.0f} {realtime:11.1f}x")
            clip.video.unlink()
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    slowest = min(p["realtime_factor"] for p in results["presets"].values())
    results["slowest_realtime_factor"] = slowest
    results["targets_met"] = {"faster_than_real_time": slowest > 1.0}
    print(f"slowest preset: {slowest:.1f}x real time (target > 1x); peak RSS {results['peak_rss_mb']:.0f} MB")
    write_result(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
