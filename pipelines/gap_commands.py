"""``matcher gaps declare | edit | close | reopen``: gaps managed in the database, from the command
line, as an admin-level operator (the audit log records ``cli:<user>``). ``matcher gaps`` alone
lists the gaps (``query_commands.py``). Running services pick a change up within
``MATCHER_SERVICE_GAP_POLL_S``; ``matcher build`` and ``refresh`` publish the open ones."""

from __future__ import annotations

import getpass
from typing import Annotated, Optional

import typer

from matcher.catalog import Catalog
from matcher.errors import UnknownEntityError
from matcher.loading import load_catalog
from matcher.store import repo
from matcher.store.errors import ConflictError, InvalidInputError
from matcher.store.repo import Actor
from pipelines.cli_app import HomeOption, JsonOption, emit_json, out, settings_for
from pipelines.query_commands import apply_stored_gaps, gaps_app
from pipelines.service_commands import DatabaseOption, open_store

GapIdArg = Annotated[str, typer.Argument(help="Gap id, chain_id.<segment or slug> (see 'matcher gaps').")]
PriorityOpt = Annotated[Optional[str], typer.Option("--priority", help=f"{', '.join(repo.GAP_PRIORITIES)}.")]
NoteOpt = Annotated[Optional[str], typer.Option("--note", help=f"A note for the chain leaders (at most {repo.GAP_NOTE_MAX} characters).")]


def cli_actor() -> Actor:
    """The operator at the terminal, acting as an admin (the audit log's key prefix: cli:<user>)."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment (a container)
        user = "unknown"
    return Actor(key_id=None, prefix=f"cli:{user}"[:16], role="admin", name="command line")


def _catalog(home, database_url) -> tuple[Catalog, object]:
    settings = settings_for(home, database_url=database_url)
    catalog = load_catalog(settings)
    apply_stored_gaps(catalog, settings)
    return catalog, settings


def _show(row: dict, catalog: Catalog, what: str, as_json: bool) -> None:
    if as_json:
        emit_json(row)
        return
    subject = f"segment {row['segment_id']}" if row["segment_id"] else f"need \"{row['text']}\""
    out.print(f"{what} gap {row['gap_id']} ({subject}; priority {row['priority'] or '-'}; {row['status']})",
              markup=False, highlight=False, soft_wrap=True)


def _base(catalog: Catalog, gap_id: str) -> dict | None:
    catalog.chain_map.chain(repo.chain_of_gap(gap_id))  # unknown chain: a clear error
    return catalog.managed_base(gap_id)


@gaps_app.command("declare")
def declare(
    chain: Annotated[str, typer.Argument(help="Chain id (see 'matcher chains').")],
    segment: Annotated[Optional[str], typer.Option("--segment", help="The segment that is a gap (its id).")] = None,
    text: Annotated[Optional[str], typer.Option("--text", help=f"A free-text need (at most {repo.GAP_TEXT_MAX} characters).")] = None,
    priority: PriorityOpt = "medium",
    note: NoteOpt = "",
    home: HomeOption = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Declare a gap of a chain: a segment (--segment) or a free-text need (--text)."""
    if (segment is None) == (text is None):
        raise InvalidInputError("--segment/--text", "give exactly one of --segment or --text")
    catalog, settings = _catalog(home, database_url)
    c = catalog.chain_map.chain(chain)
    if segment is not None:
        if segment not in {s.id for s in c.segments}:
            raise InvalidInputError("--segment", f"'{segment}' is not a segment of chain '{c.id}'; 'matcher chains' lists them")
        current = next((g for g in catalog.listed_gaps() if g["gap_id"] == f"{c.id}.{segment}"), None)
        if current is not None and current.get("revision") is None:  # a map gap no row changed yet
            raise ConflictError(f"segment '{segment}' is already an open gap ({current['gap_id']}, {current['kind']}); "
                                f"edit it with 'matcher gaps edit {current['gap_id']}'")
    store = open_store(settings.home, settings.database_url)
    try:
        row = repo.declare_gap(store, cli_actor(), c.id, segment_id=segment, text=text, priority=priority or "medium",
                               note=note or "", taken=catalog.known_gap_ids(), where="--")
    finally:
        store.dispose()
    _show(row, catalog, "declared", as_json)


@gaps_app.command("edit")
def edit(
    gap_id: GapIdArg,
    priority: PriorityOpt = None,
    note: NoteOpt = None,
    text: Annotated[Optional[str], typer.Option("--text", help="A free-text gap's new text.")] = None,
    home: HomeOption = None,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a gap's priority, note or (a free-text gap's) text; the chain map's gaps too."""
    catalog, settings = _catalog(home, database_url)
    base = _base(catalog, gap_id)
    store = open_store(settings.home, settings.database_url)
    try:
        row = repo.edit_gap(store, cli_actor(), gap_id, base=base, priority=priority, note=note, text=text, where="--")
    finally:
        store.dispose()
    _show(row, catalog, "edited", as_json)


def _set_status(gap_id: str, status: str, home, database_url, as_json: bool) -> None:
    catalog, settings = _catalog(home, database_url)
    base = _base(catalog, gap_id)
    store = open_store(settings.home, settings.database_url)
    try:
        row = repo.set_gap_status(store, cli_actor(), gap_id, status, base=base)
    except UnknownEntityError:
        raise UnknownEntityError(f"gap '{gap_id}' not found; 'matcher gaps' lists the open gaps") from None
    finally:
        store.dispose()
    _show(row, catalog, "closed" if status == "closed" else "reopened", as_json)


@gaps_app.command("close")
def close(gap_id: GapIdArg, home: HomeOption = None, database_url: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Close a gap: it leaves the gap lists (a chain map's gap too); 'reopen' undoes it."""
    _set_status(gap_id, "closed", home, database_url, as_json)


@gaps_app.command("reopen")
def reopen(gap_id: GapIdArg, home: HomeOption = None, database_url: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Reopen a closed gap."""
    _set_status(gap_id, "open", home, database_url, as_json)
