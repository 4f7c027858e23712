#!/usr/bin/env python
"""Tune the query thresholds of an index: the same job as ``mxn tune query``, as a script.

    python scripts/tune_query.py --db sqlite:///mxn.db --out query-thresholds.json --plot tradeoff.png

It prints, for the chosen target and for a range of target precisions, the
precision, recall and GT-CNN call rate the thresholds reach on held-out
candidates (see query/tuning.py). Every option of ``mxn tune query --help``
works here.
"""

from __future__ import annotations

import sys

from mxn.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", "query", *sys.argv[1:]], prog_name="tune_query.py"))
