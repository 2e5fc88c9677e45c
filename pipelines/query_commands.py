"""Commands that query the published version: ``chains``, ``gaps``, ``prospects``, ``search``,
``why-not`` and ``compare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from matcher.filters import FIRST_YEAR, LAST_YEAR, MAX_EMPLOYEES, Filters, validate_filters
from matcher.loading import load_catalog
from matcher.retrieval import records
from pipelines.batch_needs import read_needs
from pipelines.cli_app import ExitCode, HomeOption, JsonOption, TopOption, app, check_lang, emit_json, err, out, settings_for
from pipelines.printing import print_gaps, print_results

CountryOpt = Annotated[Optional[list[str]], typer.Option("--country", help="Only these countries (ISO code as in the data); repeatable.")]
ProvinceOpt = Annotated[Optional[list[str]], typer.Option("--province", help="Only these provinces/states; repeatable.")]
MinEmpOpt = Annotated[Optional[int], typer.Option("--min-employees", min=0, max=MAX_EMPLOYEES, help="At least this many employees (unknown counts are excluded).")]
MaxEmpOpt = Annotated[Optional[int], typer.Option("--max-employees", min=0, max=MAX_EMPLOYEES, help="At most this many employees (unknown counts are excluded).")]
FoundedOpt = Annotated[Optional[int], typer.Option("--founded-after", min=FIRST_YEAR, max=LAST_YEAR, help="Founded after this year (exclusive).")]
QualOpt = Annotated[Optional[list[str]], typer.Option("--qualification", help="Must hold this qualification; repeatable (all required).")]
LocalOpt = Annotated[bool, typer.Option("--include-local", help="Also return enterprises inside the region.")]
ClosedOpt = Annotated[bool, typer.Option("--include-closed", help="Also return closed enterprises.")]
ExplainOpt = Annotated[bool, typer.Option("--explain", help="Explain every rank (contributions, evidence, partners, risks).")]
LangOpt = Annotated[str, typer.Option("--lang", help="Language of explanations: en or zh.")]


def make_filters(country, province, min_employees, max_employees, founded_after, qualification, include_local, include_closed) -> Filters:
    """The filters of the common filter options, checked by the rules every other way in uses."""
    return validate_filters({
        "countries": tuple(country or ()),
        "provinces": tuple(province or ()),
        "min_employees": min_employees,
        "max_employees": max_employees,
        "founded_after": founded_after,
        "qualifications": tuple(qualification or ()),
        "include_local": include_local,
        "include_closed": include_closed,
    })

@app.command()
def chains(
    home: HomeOption = None,
    version: Annotated[Optional[str], typer.Option("--version", help="Artifact version [default: current].")] = None,
    as_json: JsonOption = False,
) -> None:
    """The region's chains and segments with local strength and status."""
    catalog = load_catalog(settings_for(home), version)
    segments = catalog.segments
    if as_json:
        payload = []
        for chain in catalog.chain_map.chains:
            rows = segments[segments["chain_id"] == chain.id]
            payload.append(
                {
                    "chain_id": chain.id, "name": chain.name, "name_zh": chain.name_zh, "kind": chain.kind,
                    "leader": chain.leader, "leaders": chain.leaders, "leaders_zh": chain.leaders_zh,
                    "segments": rows.drop(columns=["chain_id"]).to_dict(orient="records"),
                }
            )
        emit_json({"region": catalog.chain_map.region.model_dump(), "version": catalog.version, "chains": payload})
        return
    region = catalog.chain_map.region
    if region.general_leader:
        out.print(f"general chain leader: {region.general_leader}")
    for chain in catalog.chain_map.chains:
        leaders = ", ".join(chain.leaders)
        table = Table(title=f"{chain.name} ({chain.kind}) — chain leader{'s' if len(chain.leaders) > 1 else ''}: {leaders}",
                      title_justify="left")
        for column in ("segment", "stage", "local strength", "status"):
            table.add_column(column)
        for row in segments[segments["chain_id"] == chain.id].itertuples():
            style = {"missing": "red", "weak": "yellow"}.get(row.status, "")
            table.add_row(row.name, row.stage, str(row.strength), f"[{style}]{row.status}[/]" if style else row.status)
        out.print(table)


gaps_app = typer.Typer(help="The gap list (the default); declare, edit, close and reopen gaps (see 'matcher gaps COMMAND --help').",
                       invoke_without_command=True)
app.add_typer(gaps_app, name="gaps")


def apply_stored_gaps(catalog, settings) -> None:
    """The database's gaps over the published list, when a database is configured or the
    workspace has one (``matcher gaps declare`` and the service write them)."""
    if settings.database_url is None and not (settings.home / "matcher.db").is_file():
        return
    from matcher.store import repo
    from pipelines.service_commands import open_store

    store = open_store(settings.home, settings.database_url)
    try:
        revision, rows = repo.gap_rows(store)
    finally:
        store.dispose()
    catalog.use_gap_rows(rows, revision)


@gaps_app.callback()
def gaps(
    ctx: typer.Context,
    chain: Annotated[Optional[str], typer.Option("--chain", help="Only this chain id.")] = None,
    home: HomeOption = None,
    database_url: Annotated[Optional[str], typer.Option(
        "--database-url", help="Database whose gaps are listed too [env: DATABASE_URL; default: HOME/matcher.db if it exists]")] = None,
    as_json: JsonOption = False,
) -> None:
    """The gap list: missing and weak segments plus declared gaps (the chain map's and the
    database's open ones), most severe first."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_for(home, database_url=database_url)
    catalog = load_catalog(settings)
    if chain is not None:
        catalog.chain_map.chain(chain)  # unknown chain: clear error
    apply_stored_gaps(catalog, settings)
    found = [g for g in catalog.listed_gaps() if chain is None or g["chain_id"] == chain]
    if as_json:
        emit_json(found)
        return
    print_gaps(catalog.version, found)


@app.command()
def prospects(
    gap: Annotated[str, typer.Option("--gap", help="Gap id (see 'matcher gaps').")],
    top: TopOption = 20,
    country: CountryOpt = None, province: ProvinceOpt = None, min_employees: MinEmpOpt = None,
    max_employees: MaxEmpOpt = None, founded_after: FoundedOpt = None, qualification: QualOpt = None,
    include_local: LocalOpt = False, include_closed: ClosedOpt = False,
    explain: ExplainOpt = False, lang: LangOpt = "en",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Outside enterprises that would fill a gap, ranked best first."""
    check_lang(lang)
    settings = settings_for(home)
    catalog = load_catalog(settings)
    apply_stored_gaps(catalog, settings)  # gaps declared in the service rank before they are published
    filters = make_filters(country, province, min_employees, max_employees, founded_after, qualification, include_local, include_closed)
    gap_info, _ = catalog.gap(gap)
    rows = records(catalog.prospects(gap, top, filters, explain=explain, lang=lang))
    if as_json:
        emit_json({"query": {"gap_id": gap, "text": gap_info["text"], "top": top, "version": catalog.version}, "results": rows})
    else:
        print_results(f"Prospects for {gap} — {gap_info['title']}", rows)


@app.command()
def partners(
    enterprise_id: Annotated[str, typer.Argument(help="A local enterprise's id (its segments come from the chain analysis).")],
    top: TopOption = 20,
    country: CountryOpt = None, province: ProvinceOpt = None, min_employees: MinEmpOpt = None,
    max_employees: MaxEmpOpt = None, founded_after: FoundedOpt = None, qualification: QualOpt = None,
    include_closed: ClosedOpt = False,
    explain: ExplainOpt = False, lang: LangOpt = "en",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Suppliers and customers for a local firm: outside enterprises of the segments directly
    upstream and downstream of its own, ranked and explained as prospects."""
    from matcher.partners import partners as find_partners

    check_lang(lang)
    catalog = load_catalog(settings_for(home))
    filters = make_filters(country, province, min_employees, max_employees, founded_after, qualification, False, include_closed)
    rows = records(find_partners(catalog, enterprise_id, top, filters, explain=explain, lang=lang))
    if as_json:
        emit_json({"query": {"enterprise_id": enterprise_id, "top": top, "version": catalog.version}, "results": rows})
    else:
        print_results(f"Partners for {enterprise_id} (suppliers and customers in the neighbouring segments)", rows)


@app.command()
def search(
    text: Annotated[Optional[str], typer.Argument(help="Free-text description of the need.")] = None,
    batch: Annotated[Optional[Path], typer.Option("--batch", help='JSONL of needs: {"id", "text", <filters>} per line.')] = None,
    top: TopOption = 20,
    country: CountryOpt = None, province: ProvinceOpt = None, min_employees: MinEmpOpt = None,
    max_employees: MaxEmpOpt = None, founded_after: FoundedOpt = None, qualification: QualOpt = None,
    include_local: LocalOpt = False, include_closed: ClosedOpt = False,
    explain: ExplainOpt = False, lang: LangOpt = "en",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Enterprises matching a free-text need (or many needs with --batch), ranked best first."""
    if (text is None) == (batch is None):
        raise typer.BadParameter("give either TEXT or --batch FILE")
    check_lang(lang)
    catalog = load_catalog(settings_for(home))
    filters = make_filters(country, province, min_employees, max_employees, founded_after, qualification, include_local, include_closed)
    if text is not None:
        rows = records(catalog.search(text, top, filters, explain=explain, lang=lang))
        if as_json:
            emit_json({"query": {"text": text, "top": top, "version": catalog.version}, "results": rows})
        else:
            print_results(f"Search: {text[:80]}", rows)
        return
    needs, failures = read_needs(batch, filters)
    valid = [n for n in needs if "error" not in n]
    answers = iter(catalog.search_many([n["text"] for n in valid], top, [n["filters"] for n in valid], explain, lang))
    for need in needs:
        if "error" in need:
            emit_json({"id": need["id"], "error": need["error"]})
        else:
            emit_json({"id": need["id"], "results": records(next(answers))})
    if failures:
        err.print(f"error: {failures} of {len(needs)} needs in {batch} were invalid (see their 'error' lines)", markup=False)
        raise typer.Exit(ExitCode.FAILED)


@app.command("why-not")
def why_not_command(
    enterprise_id: Annotated[str, typer.Argument(help="The enterprise the chain leader asks about.")],
    gap: Annotated[str, typer.Option("--gap", help="Gap id.")],
    shortlist: Annotated[int, typer.Option("--shortlist", min=1, max=300, help="Shortlist size to compare with.")] = 20,
    include_local: LocalOpt = False, include_closed: ClosedOpt = False,
    lang: LangOpt = "en",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Where an enterprise ranks for a gap, and which factors keep it below the shortlist."""
    check_lang(lang)
    settings = settings_for(home)
    catalog = load_catalog(settings)
    apply_stored_gaps(catalog, settings)  # gaps declared in the service rank before they are published
    report = catalog.why_not(gap, enterprise_id, shortlist, Filters(include_local=include_local, include_closed=include_closed), lang)
    if as_json:
        emit_json(report)
        return
    where = f"rank {report['rank']} of {report['candidates_ranked']}" if report["rank"] else report.get("retrieval", "not retrieved")
    out.print(f"{report['name']} for {gap}: {where} (ranked by {report['ranker']})", highlight=False)
    for reason in report["excluded_by"]:
        out.print(f"  excluded: {reason}", highlight=False)
    if "last_shortlisted" in report:
        last = report["last_shortlisted"]
        out.print(f"  score {report['score']:.3f} vs {last['score']:.3f} for #{last['rank']} {last['name']}", highlight=False)
        for f in report["holding_it_back"]:
            detail = f" ({f['a_text']} vs {f['b_text']})" if "a_text" in f else ""
            out.print(f"  [red]-[/] {f['factor']}: {f['difference']:+.3f}{detail}", highlight=False)
        for f in report["in_its_favour"]:
            detail = f" ({f['a_text']} vs {f['b_text']})" if "a_text" in f else ""
            out.print(f"  [green]+[/] {f['factor']}: {f['difference']:+.3f}{detail}", highlight=False)


@app.command("compare")
def compare_command(
    a: Annotated[str, typer.Argument(help="Enterprise A.")],
    b: Annotated[str, typer.Argument(help="Enterprise B.")],
    gap: Annotated[str, typer.Option("--gap", help="Gap id.")],
    lang: LangOpt = "en",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Why A ranks above (or below) B for a gap, factor by factor."""
    check_lang(lang)
    settings = settings_for(home)
    catalog = load_catalog(settings)
    apply_stored_gaps(catalog, settings)  # gaps declared in the service rank before they are published
    report = catalog.compare(gap, a, b, Filters(include_local=True, include_closed=True), lang)
    if as_json:
        emit_json(report)
        return
    out.print(f"A {a}: score {report['a']['score']:.3f} · B {b}: score {report['b']['score']:.3f} · higher: {report['higher']} ({report['ranker']})", highlight=False)
    table = Table(title=f"Factors (A - B) for {gap}", title_justify="left")
    for column in ("factor", "A - B", "A", "B"):
        table.add_column(column, overflow="fold")
    interactions = sum(f["difference"] for f in report["factors"] if f.get("same_value"))
    for f in report["factors"]:
        if abs(f["difference"]) < 1e-6 or f.get("same_value"):
            continue
        table.add_row(f["factor"], f"{f['difference']:+.3f}", f.get("a_text", f"{f['a_contribution']:+.3f}"), f.get("b_text", f"{f['b_contribution']:+.3f}"))
    if abs(interactions) > 1e-6:
        table.add_row("(equal values, interactions)", f"{interactions:+.3f}", "", "")
    out.print(table)
