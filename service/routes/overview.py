"""The general chain leader's overview, on the page and as the leaders' meeting workbook."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from matcher.domain import OPEN_STAGES, STAGES
from matcher.export import write_xlsx
from matcher.store import repo
from matcher.store.repo import Actor
from service import schemas as api
from service.auth import need, visible_chains
from service.routes.chains import open_gap
from service.routes.common import ERRORS, NO_STORE, PREFIX, XLSX, svc
from service.state import ServiceState

router = APIRouter(prefix=PREFIX, responses=ERRORS)


def _severity(gaps: list[dict]) -> dict:
    counts = {"high": 0, "medium": 0, "low": 0, "total": len(gaps)}
    for g in gaps:
        severity = float(g.get("severity") or 0.0)
        counts["high" if severity >= 0.8 else "medium" if severity >= 0.5 else "low"] += 1
    return counts


def _overview_row(chain_id: str | None, name: str, name_zh: str, gaps: list[dict], counts: dict | None) -> dict:
    counts = counts or {}

    def zeros(what: str, keys) -> dict:
        return {**{k: 0 for k in keys}, **counts.get(what, {})}

    current = zeros("current", STAGES)
    return {"chain_id": chain_id, "name": name, "name_zh": name_zh, "open_gaps": _severity(gaps),
            "shortlists": zeros("shortlists", api.ShortlistCounts.model_fields), "items": zeros("items", api.ItemCounts.model_fields),
            "funnel": zeros("funnel", OPEN_STAGES), "current": current, "declined": current["declined"] + current["lost"],
            "landed_this_quarter": counts.get("landed_this_quarter", 0), "stale_approved": counts.get("stale_approved", 0),
            "stale_shortlists": counts.get("stale_shortlists", 0)}


def _sum_rows(rows: list[dict]) -> dict:
    """The district row: every count of the chain rows added up."""
    def add(values: list):
        if isinstance(values[0], dict):
            return {k: add([v[k] for v in values]) for k in values[0]}
        return sum(values)
    return {k: add([r[k] for r in rows]) for k in rows[0] if k not in ("chain_id", "name", "name_zh")}


def build_overview(state: ServiceState, actor: Actor) -> dict:
    loaded = state.loaded()
    region = loaded.catalog.chain_map.region
    own = visible_chains(actor)  # a chain leader: their own chains' rows, and no district total
    chains = [c for c in loaded.catalog.chain_map.chains if own is None or c.id in own]
    counts = repo.overview_counts(state.store, None if own is None else [c.id for c in chains])
    rows = [_overview_row(c.id, c.name, c.name_zh, [g for g in loaded.catalog.listed_gaps() if g["chain_id"] == c.id and open_gap(g)],
                          counts["chains"].get(c.id)) for c in chains]
    district = None
    if own is None and rows:
        district = {"chain_id": None, "name": region.name, "name_zh": region.name_zh, **_sum_rows(rows)}
    visible = {c.id for c in chains}
    return {"version": loaded.version, "now": counts["now"], "quarter_start": counts["quarter_start"],
            "stale_approved_days": repo.STALE_APPROVED_DAYS, "stale_shortlist_days": repo.STALE_SHORTLIST_DAYS,
            "chains": rows, "district": district,
            # Work of chains no longer in the map stays in the database but not on the page.
            "stale_approved": [r for r in counts["stale_approved"] if r["chain_id"] in visible],
            "stale_shortlists": [r for r in counts["stale_shortlists"] if r["chain_id"] in visible]}


@router.get("/overview", response_model=api.OverviewResponse, dependencies=NO_STORE,
            summary="Per chain and for the district: open gaps, shortlists and reviews, the outreach funnel, landings, stale work")
def overview(request: Request, actor: Actor = Depends(need("overview:read"))):
    return build_overview(svc(request), actor)
OVERVIEW_HEADER = ["chain_id", "chain", "chain_zh", "gaps_high", "gaps_medium", "gaps_low", "gaps_open", "shortlists_open",
                   "shortlists_in_review", "shortlists_reviewed", "prospects_pending", "prospects_approved",
                   "prospects_rejected", "prospects_deferred", "contacted", "visited", "negotiating", "signed", "landed",
                   "declined_or_lost", "landed_this_quarter", "stale_approved", "stale_shortlists"]


def _overview_cells(r: dict) -> list:
    g, s, i, f = r["open_gaps"], r["shortlists"], r["items"], r["funnel"]
    return [r["chain_id"] or "", r["name"], r["name_zh"], g["high"], g["medium"], g["low"], g["total"], s["open"],
            s["in_review"], s["reviewed"], i["pending"], i["approved"], i["rejected"], i["deferred"], f["contacted"],
            f["visited"], f["negotiating"], f["signed"], f["landed"], r["declined"], r["landed_this_quarter"],
            r["stale_approved"], r["stale_shortlists"]]


@router.get("/overview/export", response_class=Response, dependencies=NO_STORE, summary="The overview as XLSX (leaders' meeting)",
            responses={200: {"content": {XLSX: {"schema": {"type": "string", "format": "binary"}}},
                             "description": "sheets: overview (a row per chain, then the district), stale approvals, "
                                            "stale shortlists, about"}})
def overview_export(request: Request, actor: Actor = Depends(need("overview:read"))):
    o = api.OverviewResponse.model_validate(build_overview(svc(request), actor)).model_dump()
    rows = [_overview_cells(r) for r in o["chains"]] + ([_overview_cells(o["district"])] if o["district"] else [])
    stale = [[r["enterprise_id"], r["name"], r["chain_id"], r["gap_id"], r["shortlist_id"], r["approved_at"].isoformat(),
              r["days"]] for r in o["stale_approved"]]
    idle = [[r["shortlist_id"], r["title"], r["chain_id"], r["gap_id"], r["pending"], r["last_activity"].isoformat(), r["days"]]
            for r in o["stale_shortlists"]]
    about = [["version", o["version"]], ["generated_at", o["now"].isoformat()], ["quarter_start", o["quarter_start"].isoformat()],
             ["stale_approved_days", o["stale_approved_days"]], ["stale_shortlist_days", o["stale_shortlist_days"]]]
    # Text goes out as data, never formulas (matcher/export.py).
    book = write_xlsx({
        "overview": (OVERVIEW_HEADER, rows),
        "stale approvals": (["enterprise_id", "name", "chain_id", "gap_id", "shortlist_id", "approved_at", "days"], stale),
        "stale shortlists": (["shortlist_id", "title", "chain_id", "gap_id", "pending", "last_activity", "days"], idle),
        "about": (None, about)})
    name = f"overview-{o['now'].date().isoformat()}.xlsx"
    return Response(book, media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{name}"',
                                                    "Cache-Control": "no-store"})
