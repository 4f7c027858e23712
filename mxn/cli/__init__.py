"""The ``mxn`` command line: a thin layer over :mod:`mxn.api`, one module per family of commands.

:mod:`~mxn.cli.main` assembles the ``mxn`` group from the command modules;
:mod:`~mxn.cli.common` holds what they share (errors, tables, JSON files).
"""

from .main import main

__all__ = ["main"]
