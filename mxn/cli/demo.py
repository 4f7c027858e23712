"""``mxn demo``: the whole story on the embedded defaults, offline, from a fresh clone, in a few minutes.

A newcomer's first command should show every job mxn does, on data and
models that ship with it, and leave files worth opening:

1. render a traffic clip with the world (:func:`mxn.api.render_traffic_video`);
2. ingest it twice into one SQLite file: the mxn index (the bundled ingest
   MXN) and the gt-all reference (the bundled GT-CNN on every object), so
   answers can be judged;
3. tune the query thresholds on the index (what ``mxn tune query`` finds,
   with its trade-off plot), then ask a few labels in mxn mode with the
   query model's bundled thresholds: answers, contact sheets;
4. compose the short face movie of real faces and its cast gallery
   (:func:`mxn.api.make_movie`, one person left out as a stranger);
5. label it with the bundled face MXN (Algorithm 3, dlib's oracle): face
   rows, subtitles, accuracy against the movie's truth;
6. write ``index.html``, the front page that links every job's HTML report
   (:mod:`reports`; each is written as soon as its job is done).

Everything lands under one folder (``out/demo``). Running again into it
reuses what is there when the plan (quick or not, seconds, seed) is the
same: videos already indexed and movies already labelled are skipped, and
cached verdicts answer the queries. With another plan the demo's own data
files are removed first, so the database never mixes two clips.

Each step is a job of the Python API (:mod:`mxn.api`, what every ``mxn``
command runs), called with the models loaded once and the one open database,
so the demo runs the same code as the commands it stands for. Only what no
single job does is done here: the ingest report over both indexes, and the
faces' accuracy against the movie's truth in the faces report. Like the
command line, this is a top-layer module, importing the library inside the
functions so ``mxn --help`` stays fast.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import fmt, friendly_errors, job_option, print_table, write_json_file

if TYPE_CHECKING:
    from mxn.datasets.movies import Truth
    from mxn.facerec.outputs import LabelledFace
    from mxn.ingest.pipeline import IngestResult
    from mxn.modelfile import MXNModel
    from mxn.query.result import QueryResult
    from mxn.storage.store import Store

#: The stranger of the demo's movie: in the movie, left out of the gallery (named ``unknown-N``).
STRANGER = "lfw_6"
#: Format of the plan file that decides whether a second run may reuse the first one's data.
PLAN_FORMAT = "mxn-demo-plan"
PLAN_VERSION = 1


class DemoError(RuntimeError):
    """A step of the story failed on the bundled data (the message says which and why)."""


@dataclass(frozen=True)
class DemoPlan:
    """What the demo renders and asks: the full story, or its reduced form (``quick``) for CI."""

    quick: bool = False
    preset: str = "downtown"  # the camera with every class: cars, vans, trucks, buses, people, bikes
    seconds: float = 60.0
    size: tuple[int, int] = (640, 360)
    fps: float = 30.0
    seed: int = 0
    labels: tuple[str, ...] = ("car", "person", "bus", "truck")
    movie_preset: str = "short"

    @classmethod
    def make(cls, quick: bool = False, seconds: float | None = None, seed: int = 0) -> DemoPlan:
        """The full plan, or the quick one (8 s at 320x180, 15 fps, the tiny movie); ``seconds`` overrides."""
        plan = (
            cls(quick=True, seconds=8.0, size=(320, 180), fps=15.0, movie_preset="tiny") if quick else cls()
        )
        if seconds is not None:
            if not seconds > 0:
                raise ValueError(f"--seconds must be > 0, got {seconds}")
            plan = replace(plan, seconds=float(seconds))
        return replace(plan, seed=int(seed))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "size": list(self.size), "labels": list(self.labels)}


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo writes: reports at the top, results (answers, sheets, rows) and data below."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def db(self) -> Path:
        return self.data / "demo.db"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.db.resolve()}"

    @property
    def plan(self) -> Path:
        return self.data / "demo-plan.json"

    def clip(self, plan: DemoPlan) -> Path:
        return self.data / f"{plan.preset}.mp4"

    def movie(self, plan: DemoPlan) -> Path:
        return self.data / f"movie-{plan.movie_preset}.mp4"

    @property
    def cast(self) -> Path:
        return self.data / "cast"

    def owned(self, plan: DemoPlan) -> list[Path]:
        """Every data path the demo writes for ``plan`` (what a new plan removes), truth files included."""
        from mxn.datasets.movies import truth_path as movie_truth
        from mxn.datasets.world.video import truth_path as clip_truth

        clip, movie = self.clip(plan), self.movie(plan)
        return [
            self.db,
            self.db.with_name(self.db.name + ".faiss"),
            clip,
            clip_truth(clip),
            movie,
            movie_truth(movie),
            self.cast,
            self.plan,
        ]


@dataclass
class DemoSummary:
    """What the demo did and where it put it: what ``--json`` writes and ``index.html`` shows."""

    plan: DemoPlan
    out: Path
    reused: bool = False
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    clip: dict[str, Any] = field(default_factory=dict)
    ingest: list[dict[str, Any]] = field(default_factory=list)
    tuning: dict[str, Any] | None = None
    queries: list[dict[str, Any]] = field(default_factory=list)
    faces: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "mxn-demo-summary",
            "plan": self.plan.to_dict(),
            "out": str(self.out),
            "reused": self.reused,
            "seconds": self.seconds,
            "stages": self.stages,
            "clip": self.clip,
            "ingest": self.ingest,
            "tuning": self.tuning,
            "queries": self.queries,
            "faces": self.faces,
            "files": self.files,
        }


class _Stages:
    """Numbered step headers (``[2/5] ingesting ...``) and the seconds each step took."""

    def __init__(self, total: int, echo: Callable[[str], None] | None) -> None:
        self.total, self.echo, self.done = total, echo, 0
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, title: str) -> Iterator[None]:
        self.done += 1
        if self.echo:
            self.echo(f"\n[{self.done}/{self.total}] {title} ...")
        began = time.perf_counter()
        yield
        self.seconds[title] = time.perf_counter() - began
        if self.echo:
            self.echo(f"      done in {self.seconds[title]:.1f} s")


# -- the plan file: reuse or start over --------------------------------------------------------------------


def prepare(paths: DemoPaths, plan: DemoPlan) -> bool:
    """True when the data of an earlier run with the same plan is all there and can be reused.

    Otherwise the demo's own data files (and nothing else in the folder) are
    removed and the plan is recorded, so a rerun never mixes two clips or two
    movies in one database.
    """
    try:
        recorded = json.loads(paths.plan.read_text())
    except (OSError, ValueError):
        recorded = None
    wanted = {"format": PLAN_FORMAT, "format_version": PLAN_VERSION, **plan.to_dict()}
    needed = (paths.db, paths.clip(plan), paths.movie(plan), paths.cast)
    if recorded == wanted and all(p.exists() for p in needed):
        return True
    for path in paths.owned(plan):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    paths.data.mkdir(parents=True, exist_ok=True)
    paths.plan.write_text(json.dumps(wanted, indent=2) + "\n")
    return False


# -- the stages ----------------------------------------------------------------------------------------------


def render_traffic(paths: DemoPaths, plan: DemoPlan, reuse: bool, progress: bool) -> dict[str, Any]:
    """The clip (rendered unless reused: :func:`mxn.api.render_traffic_video`) and what it is."""
    from mxn import api
    from mxn.media.video import probe

    video = paths.clip(plan)
    if not reuse:
        api.render_traffic_video(
            video, plan.preset, plan.seconds, seed=plan.seed, size=plan.size, fps=plan.fps, progress=progress
        )
    info = probe(video)
    return {
        "video": str(video),
        "preset": plan.preset,
        "seconds": plan.seconds,
        "size": list(plan.size),
        "fps": plan.fps,
        "frames": info.frame_count,
    }


def ingest_both(store: Store, video: Path, models: dict[str, MXNModel], progress: bool) -> list[IngestResult]:
    """The mxn index (bundled ingest MXN) and the gt-all reference (bundled GT-CNN) of one clip."""
    from mxn import api

    results = []
    for mode, model in (("mxn", "ingest"), ("gt-all", "gt")):
        [result] = api.ingest(video, db=store, model=models[model], mode=mode, progress=progress)
        if result.status == "failed":
            raise DemoError(f"the demo's clip did not ingest ({mode}): {result.error}")
        results.append(result)
    return results


def ingest_row(store: Store, result: IngestResult) -> dict[str, Any]:
    s = result.stats
    return {
        "video": result.video,
        "mode": store.get_run(result.run_id).mode,
        "status": result.status,
        "frames": int(s.get("frames", 0)),
        "objects": int(s.get("objects", 0)),
        "indexing": int(s.get("indexing", 0)),
        "clusters": int(s.get("clusters", 0)),
        "seconds": float(s.get("seconds", 0.0)),
    }


def tune_on_index(
    store: Store, gt: MXNModel, qmodel: MXNModel, paths: DemoPaths, progress: bool
) -> dict[str, Any] | None:
    """What ``mxn tune query`` finds on the demo's index, and its trade-off plot (None: too few samples)."""
    from mxn import api
    from mxn.query.tuning import TuningError

    thresholds, plot = paths.results / "query-thresholds.json", paths.results / "query-tradeoff.png"
    try:
        result = api.tune_query(
            db=store, gt=gt, qmodel=qmodel, index="mxn", out=thresholds, plot=plot, progress=progress
        )
    except TuningError:
        return None
    held = result.held_out
    return {
        "candidates": result.thresholds.evaluation["samples"],
        "target_precision": result.thresholds.target_precision,
        "precision": held["precision"],
        "recall": held["recall"],
        "gt_call_rate": held["gt_call_rate"],
        "index_ceiling": result.index_ceiling,
        "thresholds": str(thresholds),
        "plot": str(plot),
    }


def query_row(result: QueryResult) -> dict[str, Any]:
    s, a = result.stats, result.accuracy or {}
    return {
        "label": result.label,
        "candidates": s.candidates,
        "decided_by_index": s.decided_by_index,
        "decided_by_exits": sum(s.decided_per_exit.values()),
        "decided_per_exit": {str(k): v for k, v in sorted(s.decided_per_exit.items())},
        "gt_decided": s.gt_decided,
        "gt_calls": s.gt_calls,
        "cached": s.cached,
        "hits": result.hits,
        "frames": sum(len(v.frames) for v in result.videos),
        "segments": sum(len(v.segments) for v in result.videos),
        "precision": a.get("precision"),
        "recall": a.get("recall"),
        "seconds": s.seconds,
    }


def ask_labels(
    store: Store,
    gt: MXNModel,
    qmodel: MXNModel,
    plan: DemoPlan,
    paths: DemoPaths,
    images: Sequence[Path],
    progress: bool,
) -> list[dict[str, Any]]:
    """The plan's labels the index knows, each asked in mxn mode: answer, contact sheet, report."""
    from mxn import api

    known = set(store.labels(mode="mxn"))
    rows = []
    for label in (lab for lab in plan.labels if lab in known):
        answer, sheet = paths.results / f"query-{label}.json", paths.results / f"query-{label}.png"
        report = paths.root / f"query-{label}.html"
        result = api.query(
            label, db=store, gt=gt, qmodel=qmodel, mode="mxn", index="mxn", out=answer, sheet=sheet,
            progress=progress, html=report, html_images=images,
        )  # fmt: skip
        rows.append(query_row(result) | {"answer": str(answer), "sheet": str(sheet), "report": str(report)})
    return rows


def compose_movie(paths: DemoPaths, plan: DemoPlan, reuse: bool) -> Path:
    """The face movie and its cast gallery, with :data:`STRANGER` left out (rendered unless reused)."""
    from mxn import api

    video = paths.movie(plan)
    if not reuse:  # a movie on disk means its gallery is whole (make_movie writes the gallery first)
        api.make_movie(
            video, preset=plan.movie_preset, seed=plan.seed, gallery=paths.cast, leave_out=STRANGER
        )
    return video


def truth_accuracy(faces: Sequence[LabelledFace], truth: Truth, gallery: set[str]) -> float:
    """Share of the drawn faces found that got the right name (a stranger: one stable ``unknown-N``).

    Each labelled box is matched to the frame's drawn faces as tuning matches
    them (:func:`mxn.facerec.evaluation.match_truth`) and scored as tuning scores
    (:func:`mxn.facerec.tuning.truth_accuracy`).
    """
    import numpy as np

    from mxn.facerec.evaluation import match_truth
    from mxn.facerec.tuning import truth_accuracy as score

    by_frame: dict[int, list[LabelledFace]] = defaultdict(list)
    for face in faces:
        by_frame[face.frame].append(face)
    names, truths = [], []
    for frame, found in sorted(by_frame.items()):
        drawn = truth.frames[frame] if frame < len(truth.frames) else []
        truths += match_truth(np.array([f.box for f in found]), drawn)
        names += [f.name for f in found]
    return score(names, truths, gallery)


def label_faces(store: Store, video: Path, paths: DemoPaths, progress: bool) -> dict[str, Any]:
    """Label the movie with the bundled face MXN and its thresholds; rows, subtitles, report.

    :func:`mxn.api.label_faces` labels and writes the rows and subtitles; the
    report is written here, with the accuracy against the movie's truth.
    """
    from mxn import api
    from mxn.datasets.movies import read_truth
    from mxn.facerec.model import FaceMXN
    from mxn.reports import write_faces_report

    face_model = FaceMXN.default()
    if face_model.model.thresholds is None:
        raise DemoError("the bundled face model carries no thresholds (scripts/build_face_model.sh)")
    rows, srt = paths.results / "faces.json", paths.results / "faces.srt"
    result = api.label_faces(
        video, gallery=paths.cast, model=face_model, movie="demo", db=store, out=rows, srt=srt,
        progress=progress,
    )  # fmt: skip
    if result.failed:
        raise DemoError(f"the demo's movie could not be labelled: {result.failed[0]['error']}")
    accuracy = truth_accuracy(result.faces, read_truth(video), set(result.gallery_people))
    summary = result.to_dict()  # the figures of `mxn faces --json`: the summary and the screen times
    report = write_faces_report(paths.root / "faces.html", result, truth_accuracy=accuracy)
    return {
        "movie": result.movie,
        "video": str(video),
        "faces": summary["faces"],
        "people": summary["people"],
        "hits_per_exit": summary["hits_per_exit"],
        "hit_rate_per_exit": summary["hit_rate_per_exit"],
        "oracle_calls": summary["oracle_calls"],
        "oracle_rate": summary["oracle_rate"],
        "truth_accuracy": accuracy,
        "screen_time_s": summary["screen_time_s"],
        "seconds": result.seconds,
        "rows": str(rows),
        "srt": str(srt),
        "report": str(report),
    }


def collect_files(summary: DemoSummary, paths: DemoPaths) -> dict[str, str]:
    """Every result the demo wrote, by what it is, in story order."""
    files = {
        "overview (open this)": str(paths.root / "index.html"),
        "ingest report": str(paths.root / "ingest.html"),
    }
    for q in summary.queries:
        files[f"query {q['label']}: report"] = q["report"]
        files[f"query {q['label']}: answer"] = q["answer"]
        files[f"query {q['label']}: contact sheet"] = q["sheet"]
    if summary.tuning:
        files["tuned query thresholds"] = summary.tuning["thresholds"]
        files["tuning trade-off plot"] = summary.tuning["plot"]
    if summary.faces:
        files["faces report"] = summary.faces["report"]
        files["face rows and timeline"] = summary.faces["rows"]
        files["subtitles"] = summary.faces["srt"]
    files["traffic clip"] = summary.clip["video"]
    if summary.faces:
        files["face movie"] = summary.faces["video"]
    files["database (SQLite)"] = str(paths.db)
    files["summary (JSON)"] = str(paths.results / "demo.json")
    return files


def run_demo(
    out: str | Path = "out/demo",
    quick: bool = False,
    progress: bool = True,
    seconds: float | None = None,
    seed: int = 0,
    echo: Callable[[str], None] = print,
) -> DemoSummary:
    """Run the whole story (see the module docstring) into ``out``; the summary of what it did.

    ``progress`` shows the step headers (through ``echo``) and the jobs'
    progress bars; ``quick`` is the reduced form CI runs.
    """
    from mxn.defaults import load_default_model
    from mxn.jsonfile import write_json
    from mxn.quiet import import_tensorflow_quietly
    from mxn.reports import write_ingest_report
    from mxn.reports.overview import write_overview
    from mxn.storage.store import Store

    began = time.perf_counter()
    plan = DemoPlan.make(quick, seconds, seed)
    paths = DemoPaths(Path(out))
    import_tensorflow_quietly()
    reuse = prepare(paths, plan)
    paths.results.mkdir(parents=True, exist_ok=True)
    summary = DemoSummary(plan, paths.root, reused=reuse)
    stage = _Stages(5, echo if progress else None)
    if progress and reuse:
        echo(f"reusing the data in {paths.data} (same plan): indexed videos and labelled movies are skipped")
    rendering, composing = ("reusing", "reusing") if reuse else ("rendering", "composing")
    with stage(f"{rendering} {plan.seconds:g} s of the {plan.preset} traffic camera"):
        summary.clip = render_traffic(paths, plan, reuse, progress)
    video = Path(summary.clip["video"])
    with Store(paths.url) as store:
        with stage("ingesting it: the mxn index and the gt-all reference"):
            models = {name: load_default_model(name) for name in ("ingest", "gt", "query")}
            ingested = ingest_both(store, video, models, progress)
            summary.ingest = [ingest_row(store, r) for r in ingested]
            write_ingest_report(paths.root / "ingest.html", store, ingested)
        with stage("tuning the query thresholds and asking for labels"):
            summary.tuning = tune_on_index(store, models["gt"], models["query"], paths, progress)
            images = [Path(summary.tuning["plot"])] if summary.tuning else []
            summary.queries = ask_labels(store, models["gt"], models["query"], plan, paths, images, progress)
        with stage(f"{composing} the {plan.movie_preset} face movie and its cast gallery"):
            movie = compose_movie(paths, plan, reuse)
        with stage("labelling its faces (face MXN exits, dlib oracle)"):
            summary.faces = label_faces(store, movie, paths, progress)
    # the overview and the JSON are written last, with the same final figures
    summary.files = collect_files(summary, paths)
    summary.stages = dict(stage.seconds)
    summary.seconds = time.perf_counter() - began
    write_overview(paths.root / "index.html", summary.to_dict(), images)
    write_json(paths.results / "demo.json", summary.to_dict())
    return summary


EXAMPLES_DEMO = """
Examples:

  mxn demo                  # the whole story into out/demo, a few minutes

  mxn demo --quick          # the reduced form CI runs, about a minute

  mxn demo --out /tmp/d --seconds 120 --seed 3 --json /tmp/d.json

Then open out/demo/index.html. Run again with the same options, it reuses what it made.
"""


@click.command(epilog=EXAMPLES_DEMO)
@job_option(run_demo, "--out", "-o", show_default=True, type=click.Path(file_okay=False))
@job_option(
    run_demo, "--quick", is_flag=True, help="The reduced form: an 8 s clip at 320x180 and the tiny movie."
)
@job_option(run_demo, "--seconds", type=float, help="Length of the traffic clip (default 60, quick 8).")
@job_option(run_demo, "--seed", type=int, show_default=True, help="Seed of the clip and the movie.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the summary here.")
@friendly_errors
def demo(out: str, quick: bool, seconds: float | None, seed: int, json_out: str | None) -> None:
    """The whole story on the bundled models, offline: ingest, label queries, faces, HTML reports.

    Renders a traffic clip, indexes it into SQLite (the mxn index and the
    gt-all reference), tunes the query thresholds, asks for a few labels,
    composes a movie of real faces and labels it, then writes one HTML
    report per job and OUT/index.html linking them (mxn.cli.demo.run_demo).
    """
    from mxn.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()

    try:
        summary = run_demo(out, quick=quick, seconds=seconds, seed=seed, echo=click.echo).to_dict()
    except DemoError as err:
        raise click.ClickException(str(err)) from err
    print_demo_summary(summary)
    write_json_file(json_out, summary)


def print_demo_summary(data: dict[str, Any]) -> None:
    """The story in a few lines, then where every result is."""
    click.echo(f"\ndone in {data['seconds']:.0f} s")
    for r in data["ingest"]:
        when = "indexed before" if r["status"] == "skipped" else "indexed"
        click.echo(
            f"  {r['mode']} index: {r['objects']} objects, {r['clusters']} clusters "
            f"({when} in {r['seconds']:.1f} s)"
        )
    rows = [
        [
            q["label"],
            q["candidates"],
            q["decided_by_exits"],
            q["gt_calls"],
            fmt(q["precision"]),
            fmt(q["recall"]),
        ]
        for q in data["queries"]
    ]
    if rows:
        click.echo("")
        print_table(["label", "candidates", "decided by exits", "GT-CNN calls", "precision", "recall"], rows)
    faces = data.get("faces")
    if faces:
        click.echo(
            f"\nfaces: {faces['faces']} labelled, {len(faces['people'])} people, oracle calls "
            f"{faces['oracle_calls']} ({fmt(faces['oracle_rate'])}), right vs the truth "
            f"{fmt(faces['truth_accuracy'])}"
        )
    click.echo("")
    print_table(["result", "where"], list(data["files"].items()))
