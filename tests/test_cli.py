import json
import re
import subprocess
import sys

import click
import cv2
import pytest
from click.testing import CliRunner

from mxn.cli import main
from mxn.modelfile import load_model, model_sha, read_card


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory, digit_data):
    """Three digit classes written as PNG files in class folders, plus one broken file."""
    root = tmp_path_factory.mktemp("digits")
    for label in (0, 1, 7):
        folder = root / f"digit{label}"
        folder.mkdir()
        for k, img in enumerate(digit_data.images[digit_data.labels == label][:60]):
            cv2.imwrite(str(folder / f"{k}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    (root / "digit0" / "broken.png").write_bytes(b"not a png")
    return root


def test_help_lists_the_subcommands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "calibrate", "evaluate", "info", "demo", "ingest"):
        assert command in result.output


@pytest.mark.parametrize("module", ["mxn.cli"])
def test_python_dash_m_knows_every_subcommand(module):
    """``python -m mxn.cli`` offers the subcommands that live in other modules too."""
    done = subprocess.run([sys.executable, "-m", module, "ingest", "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "--mode" in done.stdout


def test_train_info_evaluate_calibrate(image_folder, tmp_path):
    runner = CliRunner()
    model = tmp_path / "m.mxn"
    report = tmp_path / "report.json"
    result = runner.invoke(
        main,
        ["train", str(image_folder), "--out", str(model), "--input-size", "32", "--epochs", "3",
         "--exits", "2,4,8", "--loss", "focal", "--json", str(report), "--target-precision", "0.9"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and model.exists()
    card = json.loads(report.read_text())["card"]
    assert card["classes"] == ["digit0", "digit1", "digit7"]
    assert card["training"]["config"]["loss"] == "focal"

    info = runner.invoke(main, ["info", str(model)])
    assert info.exit_code == 0 and "exit 2: after unit 8" in info.output

    evaluation = runner.invoke(
        main, ["evaluate", str(model), str(image_folder), "--json", str(tmp_path / "e.json")]
    )
    assert evaluation.exit_code == 0, evaluation.output
    figures = json.loads((tmp_path / "e.json").read_text())
    assert len(figures["exit_accuracy"]) == 3 and figures["items"] == 180

    calibrated, figures = tmp_path / "c.mxn", tmp_path / "cal.json"
    cal = runner.invoke(
        main,
        ["calibrate", str(model), str(image_folder), "--target-precision", "0.8", "-o", str(calibrated),
         "--json", str(figures)],
    )  # fmt: skip
    assert cal.exit_code == 0, cal.output
    assert "overall: precision" in cal.output and calibrated.exists()
    written = json.loads(figures.read_text())
    assert written["model"] == str(calibrated) and len(written["exits"]) == 3
    assert written["target_precision"] == 0.8

    # a student at another input size, started from the model and labelled by it
    student = tmp_path / "s.mxn"
    taught = runner.invoke(
        main,
        ["train", str(image_folder), "--out", str(student), "--input-size", "48", "--epochs", "1",
         "--exits", "2,4,8", "--init", str(model), "--teacher", str(calibrated), "--target-precision", "0.9"],
    )  # fmt: skip
    assert taught.exit_code == 0, taught.output
    assert "the teacher agrees with the folder labels on: all " in taught.output
    training = read_card(student)["training"]
    assert training["init"] == {"sha256": model_sha(load_model(model)), "input_size": 32}
    assert training["teacher"]["sha256"] == model_sha(load_model(calibrated))
    assert 0 <= training["teacher"]["agreement_with_folders"]["all"] <= 1
    assert training["teacher"]["targets"] == "top-1"
    distilled = runner.invoke(
        main,
        ["train", str(image_folder), "--out", str(student), "--input-size", "48", "--epochs", "1",
         "--exits", "2,4,8", "--init", str(model), "--teacher", str(calibrated), "--soft-teacher"],
    )  # fmt: skip
    assert distilled.exit_code == 0, distilled.output
    assert read_card(student)["training"]["teacher"]["targets"] == "probabilities"
    alone = runner.invoke(main, ["train", str(image_folder), "--out", str(student), "--soft-teacher"])
    assert alone.exit_code != 0 and "soft_teacher needs a teacher model" in alone.output
    wrong = runner.invoke(main, ["train", str(image_folder), "--out", str(student), "--width", "0.5",
                                 "--exits", "2,4,8", "--input-size", "32", "--init", str(model)])  # fmt: skip
    assert wrong.exit_code != 0 and "another architecture: width 0.25 vs 0.5" in wrong.output


@pytest.mark.parametrize(
    "args",
    [
        ["info", "missing.mxn"],
        ["evaluate", "missing.mxn", "."],
        ["train", ".", "--out", "x.mxn", "--exits", "9"],
    ],
)
def test_errors_are_one_clear_line_and_a_failing_exit_code(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert result.output.startswith("Error:") or "Error:" in result.output
    assert "Traceback" not in result.output


def test_world_commands(tmp_path):
    runner = CliRunner()
    presets = runner.invoke(main, ["world", "presets"])
    assert presets.exit_code == 0 and "downtown" in presets.output and "motorcyclist" in presets.output
    video = tmp_path / "cam.mp4"
    made = runner.invoke(
        main, ["world", "video", "-p", "night", "--seconds", "1", "--size", "320x180", "-o", str(video)]
    )
    assert made.exit_code == 0, made.output
    assert video.exists() and (tmp_path / "cam.truth.jsonl").exists()
    assert "30 frames" in made.output
    bad = runner.invoke(main, ["world", "video", "-p", "mars", "-o", str(tmp_path / "x.mp4")])
    assert bad.exit_code != 0 and "unknown camera preset" in bad.output
    size = runner.invoke(main, ["world", "video", "--size", "big", "-o", str(tmp_path / "y.mp4")])
    assert size.exit_code == 2 and "Invalid value for --size: expected WIDTHxHEIGHT" in size.output


def test_models_list_shows_the_shipped_models():
    result = CliRunner().invoke(main, ["models", "list"])
    assert result.exit_code == 0, result.output
    for name in ("ingest", "query", "gt"):
        assert f"{name}.mxn" in result.output
    assert "MISSING" not in result.output


def _commands(command: click.Command, path: tuple[str, ...] = (), parent: click.Context | None = None):
    """Every command and group under ``command``, with its path and a context to render its help in."""
    ctx = click.Context(command, info_name=path[-1] if path else "mxn", parent=parent)
    yield path, command, ctx
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name), ctx)


#: The commands that do a job and produce figures: each can write them with --json.
JOB_COMMANDS = {
    ("train", "images"),
    ("train", "faces"),
    ("info",),
    ("calibrate",),
    ("evaluate",),
    ("ingest",),
    ("crops",),
    ("query",),
    ("tune", "query"),
    ("tune", "faces"),
    ("faces",),
    ("movie",),
    ("world", "video"),
    ("world", "crops"),
    ("models", "check"),
    ("demo",),
}


def test_every_command_has_examples_and_every_job_has_json():
    """The newcomer's path: each --help ends with real examples; each job's figures can be had as JSON."""
    seen = set()
    for path, command, ctx in _commands(main):
        seen.add(path)
        text = command.get_help(ctx)
        assert "Examples" in text, f"mxn {' '.join(path)} --help has no examples"
        examples = text.split("Examples:", 1)[-1]
        assert re.search(r"^\s+mxn \w", examples, re.M), f"mxn {' '.join(path)} --help shows no command line"
        if path in JOB_COMMANDS:
            options = {opt for param in command.params for opt in param.opts}
            assert "--json" in options, f"mxn {' '.join(path)} has no --json"
    assert seen >= JOB_COMMANDS
