"""HTML reports on small real runs: one self-contained file each, the expected sections, the same numbers."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

# the clip, models, small ingest settings and face fixtures of the job tests, reused as they are
from test_facerec_pipeline import STRANGER, _config, cast, face_model, gallery  # noqa: F401
from test_query import SMALL, clip  # noqa: F401

from mxn.datasets.movies import write_movie
from mxn.facerec.oracle import GalleryOracle
from mxn.facerec.outputs import person_timeline, screen_time
from mxn.facerec.pipeline import label_movie
from mxn.ingest.config import IngestConfig
from mxn.ingest.pipeline import IngestResult, ingest_videos
from mxn.query.executor import QueryExecutor
from mxn.query.result import QueryResult, QueryStats
from mxn.query.sheet import contact_sheet
from mxn.reports import write_faces_report, write_ingest_report, write_query_report
from mxn.reports.page import Markup, escape, tag
from mxn.storage.store import Store


class Report(HTMLParser):
    """What a test reads back from a report: section ids, figures, images, links, tables."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.sections: list[str] = []
        self.ids: set[str] = set()
        self.figures: dict[str, tuple[str, str]] = {}  # key -> (data-value, shown text)
        self.images: list[str] = []
        self.links: list[str] = []
        self.tags: list[str] = []
        self._key: tuple[str, str] | None = None
        self._h2 = False
        self.feed(text)

    def handle_starttag(self, name, attrs):
        a = dict(attrs)
        self.tags.append(name)
        if "id" in a:
            self.ids.add(a["id"])
        if name == "h2":
            self.sections.append(a.get("id", ""))
        if name == "dd" and "data-key" in a:
            self._key = (a["data-key"], a.get("data-value", ""))
        if name == "img":
            self.images.append(a["src"])
        if name in ("a", "link") and "href" in a:
            self.links.append(a["href"])

    def handle_data(self, data):
        if self._key is not None:
            key, value = self._key
            self.figures[key] = (value, data)
            self._key = None

    def value(self, key: str) -> float:
        return float(self.figures[key][0])

    def table(self, table_id: str) -> list[list[str]]:
        """The body rows of table ``table_id`` as cell texts (tags stripped)."""
        body = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', self.text, re.S)
        assert body, f"no table {table_id}"
        rows = re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
        return [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", r, re.S)] for r in rows]


def read_report(path: Path) -> Report:
    """Parse a report and check it stands alone: one HTML document, every image inline, nothing fetched."""
    text = path.read_text(encoding="utf-8")
    assert (
        text.startswith("<!DOCTYPE html>") and text.count("<html") == 1 and text.rstrip().endswith("</html>")
    )
    report = Report(text)
    assert "script" not in report.tags and "link" not in report.tags and "iframe" not in report.tags
    assert all(src.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for src in report.images)
    assert not any(re.match(r"[a-z]+://", href) for href in report.links), report.links
    assert "<style>" in text  # the CSS travels inside
    return report


def pngs(report: Report) -> list[bytes]:
    return [base64.b64decode(s.split(",", 1)[1]) for s in report.images if s.startswith("data:image/png")]


# -- the page builder ---------------------------------------------------------------------------------


def test_text_is_escaped_and_markup_is_not():
    html = tag("p", "<b>a & b</b>", Markup("<i>ok</i>"), title='say "hi"', data_key="k", hidden=True)
    assert (
        html == '<p title="say &quot;hi&quot;" data-key="k" hidden>&lt;b&gt;a &amp; b&lt;/b&gt;<i>ok</i></p>'
    )
    assert escape(Markup("<br>")) == "<br>" and escape(3) == "3"


# -- ingest ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, clip, models):  # noqa: F811
    """A SQLite store with the clip's mxn index and gt-all reference, and the two ingest results."""
    url = f"sqlite:///{tmp_path_factory.mktemp('report-db') / 'index.db'}"
    results = []
    with Store(url) as store:
        for mode, model in (("mxn", models["ingest"]), ("gt-all", models["gt"])):
            config = IngestConfig(**{**SMALL.__dict__, "mode": mode})
            results += ingest_videos([clip], store, model, config, progress=False)
    assert all(r.status == "done" for r in results)
    return url, results


def test_ingest_report_shows_each_run_its_labels_and_capped_clusters(indexed, tmp_path):
    url, results = indexed
    failed = IngestResult("<b>gone</b>.mp4", "failed", error="no such file & no luck")
    with Store(url) as store:
        path = write_ingest_report(tmp_path / "ingest.html", store, [*results, failed], clusters_per_label=2)
        report = read_report(path)
        assert report.sections == ["summary", "videos", "labels", "clusters"]
        for k, result in enumerate(results):
            for key in ("frames", "objects", "indexing", "clusters"):
                assert report.value(f"run{k}.{key}") == result.stats[key], (k, key)
            # per label: the objects and clusters of this run only, as the store holds them
            run = store.get_run(result.run_id)
            rows = {r[0]: r for r in report.table(f"labels-table-{k}")}
            objects = store.objects(mode=run.mode)
            assert set(rows) == {label for o in objects for label in o.labels}
            for label, row in rows.items():
                clusters = store.clusters(label, mode=run.mode)
                assert int(row[1]) == sum(label in o.labels for o in objects)
                assert int(row[2]) == len(clusters)
                assert int(row[3]) == max(c.size for c in clusters)
            assert {f"video-{k}", f"labels-{k}", f"clusters-{k}"} <= report.ids
        # thumbnails: the 2 largest clusters of each label, as JPEG crops
        shown = report.text.count('<div class="thumbs">')
        assert shown == sum(len(report.table(f"labels-table-{k}")) for k in range(2))
        thumbs = report.text.count('<figure><img src="data:image/jpeg')
        expected = sum(min(2, int(r[2])) for k in range(2) for r in report.table(f"labels-table-{k}"))
        assert thumbs == expected
    assert len(pngs(report)) == 2  # a bar chart per run
    # the failed run is in the summary, its text escaped
    assert "&lt;b&gt;gone&lt;/b&gt;.mp4" in report.text and "<b>gone</b>" not in report.text
    assert "FAILED: no such file &amp; no luck" in report.text
    assert path.stat().st_size < 600_000


# -- a label query ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def car(indexed, models):
    url, _ = indexed
    with Store(url) as store:
        return QueryExecutor(store, models["gt"], models["query"], use_cache=False).run("car")


def test_query_report_shows_timeline_sheet_cost_and_accuracy(indexed, car, tmp_path):
    url, _ = indexed
    assert car.hits > 0 and car.accuracy is not None
    with Store(url) as store:
        report = read_report(write_query_report(tmp_path / "car.html", car, store))
    assert report.sections == ["summary", "timeline", "contact-sheet", "cost", "accuracy", "segments"]
    s = car.stats
    figures = {"candidates": s.candidates, "accepted": s.accepted, "rejected": s.rejected,
               "exit_decided": sum(s.decided_per_exit.values()), "gt_decided": s.gt_decided,
               "index_decided": s.decided_by_index,
               "gt_calls": s.gt_calls, "mxn_calls": s.mxn_calls, "cached": s.cached, "hits": car.hits,
               "frames": sum(len(v.frames) for v in car.videos),
               "segments": sum(len(v.segments) for v in car.videos)}  # fmt: skip
    for key, value in figures.items():
        assert report.value(key) == value, key
    assert report.value("seconds") == pytest.approx(s.seconds)
    for key in ("precision", "recall", "answer_frames", "truth_frames", "correct_frames"):
        assert report.value(key) == pytest.approx(car.accuracy[key]), key
    assert report.figures["precision"][1] == f"{100 * car.accuracy['precision']:.1f}%"
    [row] = report.table("segments-table")
    assert row[:4] == [car.videos[0].name, str(car.hits), str(len(car.videos[0].frames)),
                       str(len(car.videos[0].segments))]  # fmt: skip
    deciders = {r[0]: int(r[1]) for r in report.table("deciders-table")}
    assert sum(deciders.values()) == car.hits
    # the timeline (answer and gt-all rows) and the cost chart are PNGs; the sheet is a JPEG of the frames
    assert len(pngs(report)) == 2
    assert sum(src.startswith("data:image/jpeg") for src in report.images) == 1
    assert "gt-all" in report.text


def test_query_report_embeds_a_written_sheet_and_extra_plots_and_survives_a_missing_video(car, tmp_path):
    sheet = contact_sheet(car, tmp_path / "car.png")
    plot = tmp_path / "curve.png"
    plot.write_bytes(sheet.read_bytes())  # any PNG will do as "a plot another tool drew"
    report = read_report(write_query_report(tmp_path / "a.html", car, sheet=sheet, images=[plot]))
    assert report.sections[-1] == "plots"
    assert plot.read_bytes() in pngs(report)  # embedded as it is, not re-plotted
    # the video moved away: the page still comes, and says why the sheet is missing
    moved = replace(car, videos=[replace(v, path=str(tmp_path / "gone.mp4")) for v in car.videos])
    report = read_report(write_query_report(tmp_path / "b.html", moved))
    assert "the contact sheet needs the indexed videos" in report.text
    # an empty answer, no accuracy: a page that says so
    empty = QueryResult("bus", "mxn", "mxn", None, None, [], QueryStats(candidates=3, rejected=3))
    report = read_report(write_query_report(tmp_path / "c.html", empty))
    assert report.value("frames") == 0 and report.value("candidates") == 3
    assert "no frame shows" in report.text and "no gt-all index" in report.text


# -- faces ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, face_model, gallery):  # noqa: F811
    video, _ = write_movie(tmp_path_factory.mktemp("report-movie") / "tiny.mp4", preset="tiny", seed=1)
    url = f"sqlite:///{tmp_path_factory.mktemp('report-faces') / 'faces.db'}"
    with Store(url) as store:
        return label_movie(
            [video], store, face_model, GalleryOracle(gallery), _config(face_model), progress=False
        )


def test_faces_report_shows_timeline_exits_and_screen_time(labelled, tmp_path):
    summary = labelled.summary()
    assert summary["faces"] > 10 and STRANGER not in summary["people"]
    report = read_report(write_faces_report(tmp_path / "faces.html", labelled, truth_accuracy=0.875))
    assert report.sections == ["summary", "timeline", "people", "exits", "videos"]
    assert report.value("faces") == summary["faces"]
    assert report.value("people") == len(summary["people"])
    assert report.value("oracle_calls") == summary["oracle_calls"]
    assert report.value("exit_hits") == sum(summary["hits_per_exit"])
    assert report.value("truth_accuracy") == 0.875 and report.figures["truth_accuracy"][1] == "87.5%"
    for i, rate in enumerate(summary["hit_rate_per_exit"]):
        assert report.value(f"share.exit{i}") == pytest.approx(rate)
    assert report.value("share.oracle") == pytest.approx(summary["oracle_rate"])
    seconds = screen_time(person_timeline(labelled.faces))
    people = report.table("people-table")
    assert [r[0] for r in people] == summary["people"]
    assert [r[4] for r in people] == [f"{seconds[name]:.1f}" for name in summary["people"]]
    assert [int(r[1]) for r in report.table("exits-table")] == [
        *summary["hits_per_exit"],
        summary["oracle_calls"],
    ]
    assert len(pngs(report)) == 2  # the timeline and the exits chart
    # without a truth figure there is none on the page
    assert "truth_accuracy" not in read_report(write_faces_report(tmp_path / "f.html", labelled)).figures
