"""The ``matcher`` command line. Thin: it builds Settings, calls pipeline steps, prints results.

This entry point imports the command modules, which register their commands on the shared app
(``pipelines/cli_app.py``).
"""

from __future__ import annotations

import sys

from matcher.errors import MatcherError
# Imported for their commands, in the order 'matcher --help' lists them.
from pipelines import workspace_commands  # noqa: F401  (sample, ingest, build, versions, demo)
from pipelines import query_commands  # noqa: F401  (chains, gaps, prospects, search, why-not, compare)
from pipelines import model_commands  # noqa: F401  (train, evaluate)
from pipelines import service_commands  # noqa: F401  (serve, keys, db)
from pipelines import refresh_commands  # noqa: F401  (refresh, runs, report, schedule)
from pipelines import gap_commands  # noqa: F401  (gaps declare, edit, close, reopen)
from pipelines.cli_app import ExitCode, app, err


def main() -> None:
    """Console-script entry: one readable line and a non-zero exit for every MatcherError."""
    try:
        app()
    except MatcherError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(ExitCode.INVALID)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        sys.exit(ExitCode.INTERRUPTED)
