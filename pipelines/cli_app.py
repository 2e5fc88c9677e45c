"""What every ``matcher`` command shares: the typer app, the consoles, common options, settings,
output helpers and the exit codes. Command modules (``*_commands.py``) import this module, the
pipeline steps and the library, never each other; ``pipelines/cli.py`` imports them all."""

from __future__ import annotations

import json
import sys
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.console import Console

from matcher.errors import ConfigError
from matcher.settings import Settings

app = typer.Typer(
    help="Chain Matcher: find enterprises outside the district that would fill its industrial-chain gaps.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Piped output (files, CI logs) gets a wide table instead of the 80-column fallback.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)



class ExitCode(IntEnum):
    """The exit status of every ``matcher`` command, one meaning per code (README, "Exit codes")."""

    OK = 0  # done; for 'refresh': a new version is published
    FAILED = 1  # the work failed: a refresh (the published version keeps serving), invalid needs in 'search --batch'
    INVALID = 2  # invalid invocation, settings or input (typer's usage errors and every MatcherError)
    NOTHING_TO_DO = 3  # 'refresh': the source matches the published version
    LOCKED = 4  # 'refresh': another refresh holds the lock
    SHRINK_GUARD = 5  # 'refresh': more enterprises gone than allowed; rerun with --allow-shrink if real
    NOT_PUBLISHED = 6  # 'train': the new models were not published (worse than the published ones; --force)
    INTERRUPTED = 130  # Ctrl-C


HomeOption = Annotated[
    Optional[Path],
    typer.Option("--home", help="Workspace for snapshots and artifacts [env: MATCHER_HOME; default: .]"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
RayAddressOpt = Annotated[Optional[str], typer.Option(
    "--ray-address", help="Embed the profiles the cache lacks on this Ray cluster: auto, ray://host:10001 or local "
                          "(env MATCHER_RAY_ADDRESS; default: in-process).")]
TopOption = Annotated[int, typer.Option("--top", min=1, max=1000, help="How many results.")]


def check_lang(lang: str) -> str:
    """``--lang`` as given, when it is a language explanations and samples come in."""
    if lang not in ("en", "zh"):
        raise typer.BadParameter(f"--lang must be 'en' or 'zh', not '{lang}'")
    return lang


def settings_for(home: Path | None, **overrides) -> Settings:
    """Settings from MATCHER_* variables, with CLI options on top."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if home is not None:
        values["home"] = home
    try:
        return Settings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        raise ConfigError(f"setting {name} (MATCHER_{name.upper()}): {first['msg']}") from None


def progress_factory(label_prefix: str = ""):
    """Progress bars on a terminal, periodic log lines otherwise."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    def make(label: str, total: int):
        if total <= 0:
            return lambda _n: None
        if err.is_terminal:
            bar = Progress(TextColumn(label_prefix + label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err, transient=True)
            task = bar.add_task(label, total=total)
            bar.start()
            state = {"done": 0}

            def advance(n: int) -> None:
                state["done"] += n
                bar.update(task, advance=n)
                if state["done"] >= total:
                    bar.stop()

            return advance
        state = {"done": 0, "next": 0.0}

        def log(n: int) -> None:
            state["done"] += n
            share = state["done"] / total
            if share >= state["next"] or state["done"] >= total:
                # One JSON object per line, never wrapped: log collectors parse these.
                sys.stderr.write(json.dumps({"event": "progress", "step": label, "done": state["done"], "total": total}) + "\n")
                state["next"] = share + 0.1

        return log

    return make


def emit_json(payload) -> None:
    """One JSON document per line on stdout (``--json`` output; non-ASCII kept readable)."""
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")
