"""``python -m mxn``: the same command line as the ``mxn`` script."""

import sys

from mxn.cli import main

sys.exit(main())
