"""The ``mxn`` command line: a thin layer over the library.

Each job command parses its options, calls its function in :mod:`mxn.api`
(the Python API, which has the same options) and prints what came back, so
the command line and Python scripts run the same code. Errors the user can
fix (a missing file, a corrupt model, a bad option) become one clear line and
a non-zero exit code.
"""

from __future__ import annotations

import click

from .demo import demo
from .faces import faces, movie, train_faces, tune_faces
from .ingest import crops, ingest
from .models import calibrate, evaluate, info, models, train_images
from .query import query, tune_query
from .world import world

EXAMPLES_MAIN = """
Examples:

  mxn world video --preset downtown --seconds 60 -o cams/downtown.mp4

  mxn ingest cams/downtown.mp4 && mxn query bus --sheet buses.png

  mxn faces movies/short.mp4 --gallery cast/ --srt faces.srt

  mxn demo --quick  # the whole story in about a minute: open out/demo/index.html

Every command has --help with its own examples. The same jobs from Python:
mxn.api, one function per command, with the same options.
"""

EXAMPLES_TRAIN_GROUP = """
Examples:

  mxn train crops/ --out models/ingest.mxn      # = mxn train images crops/ ...

  mxn train faces movie.mp4 --out face.mxn      # a face MXN for a movie
"""


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120}, epilog=EXAMPLES_MAIN
)
@click.version_option(package_name="mxn")
def main() -> None:
    """mxn: video queries and face labelling with multi-exit networks.

    Multi-exit networks (MXNs) attach cheap classifiers part-way through a
    CNN, so easy inputs are answered early and only hard ones pay for the
    whole network.
    """
    # TensorFlow loads (quietly) when a job first needs it (mxn.api), not here:
    # --help, `mxn info` and argument errors answer at once.


class TrainGroup(click.Group):
    """``mxn train DATA ...`` is ``mxn train images DATA ...``; ``mxn train faces ...`` trains a face MXN."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["images", *args]
        return super().parse_args(ctx, args)


@main.group(cls=TrainGroup, epilog=EXAMPLES_TRAIN_GROUP)
def train() -> None:
    """Train a multi-exit network: `mxn train DATA` (= `mxn train images DATA`) or `mxn train faces`."""


EXAMPLES_TUNE_GROUP = """
Examples:

  mxn tune query --out query-thresholds.json --plot query-tradeoff.png

  mxn tune faces calib/calib.mp4 --gallery calib/cast --plot alpha.png
"""


@main.group(epilog=EXAMPLES_TUNE_GROUP)
def tune() -> None:
    """Tune thresholds and show what precision and recall each setting reaches."""


for command in (calibrate, crops, demo, evaluate, faces, info, ingest, models, movie, query, world):
    main.add_command(command)
for command in (train_images, train_faces):
    train.add_command(command)
for command in (tune_query, tune_faces):
    tune.add_command(command)
