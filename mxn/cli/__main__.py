"""``python -m mxn.cli``: the same command line as the ``mxn`` script."""

from .main import main

main()
