"""The ``matcher`` command line. Thin: it builds Settings, calls pipeline steps, prints results.

This entry point imports the command modules, which register their commands on the shared app
(``pipelines/cli_app.py``).
"""

from __future__ import annotations

import sys

from matcher.errors import MatcherError
from pipelines import commands  # noqa: F401  (registers the commands)
from pipelines import serve  # noqa: F401  (registers serve, keys, db)
from pipelines import refresh  # noqa: F401  (registers refresh, runs, report, schedule)
from pipelines.cli_app import app, err


def main() -> None:
    """Console-script entry: one readable line and a non-zero exit for every MatcherError."""
    try:
        app()
    except MatcherError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        sys.exit(130)
