"""The ``matcher`` subcommands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from matcher import artifacts
from matcher.errors import SchemaError
from matcher.export import safe_frame
from matcher.loading import load_catalog
from matcher.mapping import load_mapping
from matcher.retrieval import Filters, records
from matcher.settings import PROJECT_ROOT, Settings
from matcher.snapshot import ingest as ingest_snapshot
from pipelines.build_index import build as build_version, build_config
from pipelines.train_ranker import EVALUATION_SPLITS, TrainConfig, train as train_version
from pipelines.cli_app import HomeOption, JsonOption, TopOption, app, emit_json, err, out, progress_factory, settings_for

SAMPLE_MAPPING = PROJECT_ROOT / "data" / "mappings" / "sample.yaml"
CN_REGISTRY_MAPPING = PROJECT_ROOT / "data" / "mappings" / "cn-registry.yaml"

CountryOpt = Annotated[Optional[list[str]], typer.Option("--country", help="Only these countries (ISO code as in the data); repeatable.")]
ProvinceOpt = Annotated[Optional[list[str]], typer.Option("--province", help="Only these provinces/states; repeatable.")]
MinEmpOpt = Annotated[Optional[int], typer.Option("--min-employees", min=0, help="At least this many employees (unknown counts are excluded).")]
MaxEmpOpt = Annotated[Optional[int], typer.Option("--max-employees", min=0, help="At most this many employees (unknown counts are excluded).")]
FoundedOpt = Annotated[Optional[int], typer.Option("--founded-after", help="Founded after this year (exclusive).")]
QualOpt = Annotated[Optional[list[str]], typer.Option("--qualification", help="Must hold this qualification; repeatable (all required).")]
LocalOpt = Annotated[bool, typer.Option("--include-local", help="Also return enterprises inside the region.")]
ClosedOpt = Annotated[bool, typer.Option("--include-closed", help="Also return closed enterprises.")]
ExplainOpt = Annotated[bool, typer.Option("--explain", help="Explain every rank (contributions, evidence, partners, risks).")]
LangOpt = Annotated[str, typer.Option("--lang", help="Language of explanations: en or zh.")]
SampleLangOpt = Annotated[str, typer.Option("--lang", help="Language of the sample region: en (CSV exports) or zh (Chinese registry XLSX exports, mapped by cn-registry.yaml).")]


def check_lang(lang: str) -> str:
    if lang not in ("en", "zh"):
        raise typer.BadParameter(f"--lang must be 'en' or 'zh', not '{lang}'")
    return lang


def make_filters(country, province, min_employees, max_employees, founded_after, qualification, include_local, include_closed) -> Filters:
    return Filters(
        countries=tuple(country or ()),
        provinces=tuple(province or ()),
        min_employees=min_employees,
        max_employees=max_employees,
        founded_after=founded_after,
        qualifications=tuple(qualification or ()),
        include_local=include_local,
        include_closed=include_closed,
    )


@app.command()
def sample(
    n: Annotated[int, typer.Option("--n", min=100, max=2_000_000, help="Number of enterprises.")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same data).")] = 7,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Output directory [default: HOME/data/samples].")] = None,
    lang: SampleLangOpt = "en",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Generate the synthetic enterprise universe of the sample region (Yangpu, Shanghai)."""
    from pipelines.make_sample import write_sample

    settings = settings_for(home)
    target = out_dir or settings.samples_dir
    files = write_sample(target, n=n, seed=seed, chain_map_path=settings.chain_map, lang=check_lang(lang))
    if as_json:
        emit_json({k: str(v) for k, v in files.items()})
    else:
        for what, path in files.items():
            out.print(f"{what}: {path}")


@app.command()
def ingest(
    source: Annotated[Path, typer.Argument(help="CSV (UTF-8 or GB18030), XLSX, Parquet or JSONL file of enterprises.")],
    mapping: Annotated[Path, typer.Option("--mapping", help="YAML column mapping (see data/mappings/).")],
    sheet: Annotated[Optional[str], typer.Option("--sheet", help="Workbook sheet to read (default: the mapping's 'sheet:', else the first sheet).")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a source into a new dated snapshot; bad rows go to its quarantine file."""
    settings = settings_for(home)
    info = ingest_snapshot(source, load_mapping(mapping), settings.snapshots_dir, settings.max_bad_row_share,
                           mapping_path=mapping, sheet=sheet)
    counts = info.manifest["counts"]
    if as_json:
        emit_json({"snapshot_id": info.snapshot_id, "path": str(info.path), "counts": counts})
        return
    out.print(
        f"snapshot {info.snapshot_id}: {counts['enterprises']} enterprises "
        f"({counts['local']} local), {counts['quarantined_rows']} of {counts['rows_in']} rows quarantined"
    )
    if counts["quarantined_rows"]:
        out.print(f"quarantine: {info.path / 'quarantine.csv'}")


@app.command()
def build(
    snapshot: Annotated[Optional[str], typer.Option("--snapshot", help="Snapshot id [default: newest].")] = None,
    chain_map: Annotated[Optional[Path], typer.Option("--chain-map", help="Chain map YAML [env: MATCHER_CHAIN_MAP].")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Embedding model name or local path [env: MATCHER_EMBEDDING_MODEL].")] = None,
    index_factory: Annotated[Optional[str], typer.Option("--index-factory", help="FAISS factory string [default: by size].")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Embed a snapshot, build the indexes and chain analysis, and publish a new version."""
    settings = settings_for(home, embedding_model=model, index_factory=index_factory)
    version, manifest = build_version(build_config(settings, chain_map), snapshot, progress=progress_factory())
    if as_json:
        emit_json(manifest)
        return
    c, t = manifest["counts"], manifest["timings"]
    out.print(
        f"published {version}: {c['enterprises']} enterprises, {c['embedded']} embedded "
        f"({c['reused_vectors']} reused), index {manifest['index']['factory']}, "
        f"{c['gaps']} gaps, {t['total_s']:.1f} s"
    )


@app.command()
def versions(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """List published artifact versions (the current one marked)."""
    settings = settings_for(home)
    found = artifacts.list_versions(settings.artifacts_dir)
    current = artifacts.current_version(settings.artifacts_dir) if found else None
    if as_json:
        emit_json({"current": current, "versions": found})
        return
    for version in found:
        out.print(("* " if version == current else "  ") + version)


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
                    "leader": chain.leader,
                    "segments": rows.drop(columns=["chain_id"]).to_dict(orient="records"),
                }
            )
        emit_json({"region": catalog.chain_map.region.model_dump(), "version": catalog.version, "chains": payload})
        return
    for chain in catalog.chain_map.chains:
        table = Table(title=f"{chain.name} ({chain.kind}) — chain leader: {chain.leader}", title_justify="left")
        for column in ("segment", "stage", "local strength", "status"):
            table.add_column(column)
        for row in segments[segments["chain_id"] == chain.id].itertuples():
            style = {"missing": "red", "weak": "yellow"}.get(row.status, "")
            table.add_row(row.name, row.stage, str(row.strength), f"[{style}]{row.status}[/]" if style else row.status)
        out.print(table)


@app.command()
def gaps(
    chain: Annotated[Optional[str], typer.Option("--chain", help="Only this chain id.")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """The gap list: missing and weak segments plus staff-declared gaps, most severe first."""
    catalog = load_catalog(settings_for(home))
    if chain is not None:
        catalog.chain_map.chain(chain)  # unknown chain: clear error
    found = [g for g in catalog.gaps if chain is None or g["chain_id"] == chain]
    if as_json:
        emit_json(found)
        return
    table = Table(title=f"Gaps ({catalog.version})", title_justify="left")
    table.add_column("gap_id", no_wrap=True)
    for column in ("kind", "severity", "local strength", "title"):
        table.add_column(column)
    for gap in found:
        strength = "" if gap["strength"] is None else str(gap["strength"])
        table.add_row(gap["gap_id"], gap["kind"], f"{gap['severity']:.2f}", strength, gap["title"])
    out.print(table)


def print_results(title: str, rows: list[dict]) -> None:
    ranker = rows[0]["ranker"] if rows else ""
    table = Table(title=title, title_justify="left", caption=f"ranked by {ranker}" if ranker else None)
    for column in ("#", "enterprise", "location", "staff", "score", "fit", "growth", "regional", "sim"):
        table.add_column(column, overflow="fold")
    for row in rows:
        place = ", ".join(x for x in (row["city"], row["country"]) if x)
        employees = "" if row["employees"] is None else str(row["employees"])
        table.add_row(
            str(row["rank"]), row["name"], place, employees, f"{row['score']:.3f}", f"{row['fit_score']:.2f}",
            f"{row['growth_score']:.2f}", f"{row['regional_score']:.2f}", f"{row['similarity']:.3f}",
        )
    out.print(table)
    for row in rows:
        if "explanation" in row:
            print_explanation(row["explanation"])


def print_explanation(e: dict) -> None:
    out.print(f"[bold]#{e['rank']} {e['name']}[/] — score {e['score']:.3f} ({e['ranker']})", highlight=False)
    for text in e["reasons"]["positive"]:
        out.print(f"  [green]+[/] {text}", highlight=False)
    for text in e["reasons"]["negative"]:
        out.print(f"  [red]-[/] {text}", highlight=False)
    for text in e.get("facts", [])[:0]:
        out.print(f"    {text}", highlight=False)
    c = e.get("gap_closure")
    if c:
        out.print(f"  segment {c['segment_id']}: local strength {c['strength_before']} ({c['status_before']}) -> {c['strength_after']} ({c['status_after']})", highlight=False)
    for sentence in e["evidence"]:
        out.print(f"  evidence: “{sentence}”", highlight=False)
    if e["local_partners"]:
        out.print("  local partners: " + "; ".join(f"{p['name']} ({p['segment_id']})" for p in e["local_partners"][:3]), highlight=False)
    if e["similar_landed"]:
        out.print("  similar firms that landed: " + "; ".join(p["name"] for p in e["similar_landed"]), highlight=False)
    if e["risk_flags"]:
        out.print("  [red]risks:[/] " + ", ".join(e["risk_flags"]), highlight=False)
    out.print(f"  data as of {e['freshness']['source_updated_at']} (snapshot {e['freshness']['snapshot_id']})", highlight=False)


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
    catalog = load_catalog(settings_for(home))
    filters = make_filters(country, province, min_employees, max_employees, founded_after, qualification, include_local, include_closed)
    gap_info, _ = catalog.gap(gap)
    rows = records(catalog.prospects(gap, top, filters, explain=explain, lang=lang))
    if as_json:
        emit_json({"query": {"gap_id": gap, "text": gap_info["text"], "top": top, "version": catalog.version}, "results": rows})
    else:
        print_results(f"Prospects for {gap} — {gap_info['title']}", rows)


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
        raise typer.Exit(1)


FILTER_KEYS = {
    "country": "countries", "countries": "countries", "province": "provinces", "provinces": "provinces",
    "min_employees": "min_employees", "max_employees": "max_employees", "founded_after": "founded_after",
    "qualification": "qualifications", "qualifications": "qualifications",
    "include_local": "include_local", "include_closed": "include_closed",
}


def _filter_value(key: str, target: str, value):
    """Type-check one batch filter field; a wrong type is that line's error."""
    if target in ("countries", "provinces", "qualifications"):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise ValueError(f"field '{key}' must be a string or a list of strings")
        return tuple(items)
    if target in ("include_local", "include_closed"):
        if not isinstance(value, bool):
            raise ValueError(f"field '{key}' must be true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"field '{key}' must be a whole number >= 0")
    return value


def read_needs(path: Path, defaults: Filters) -> tuple[list[dict], int]:
    """Parse a JSONL file of needs; invalid lines become error entries, never silently skipped."""
    if not path.is_file():
        raise SchemaError(f"{path}: batch file not found")
    needs, failures = [], 0
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        need_id = f"line-{line_no}"
        try:
            item = json.loads(line)
            if not isinstance(item, dict):
                raise ValueError("not a JSON object")
            need_id = str(item.get("id", need_id))
            text = item.get("text")
            if not isinstance(text, str) or not text.strip():
                raise ValueError("field 'text' missing or empty")
            overrides = {}
            for key, value in item.items():
                if key in ("id", "text"):
                    continue
                if key not in FILTER_KEYS:
                    raise ValueError(f"unknown field '{key}'")
                target = FILTER_KEYS[key]
                overrides[target] = _filter_value(key, target, value)
            filters = Filters(**{**defaults.__dict__, **overrides})
            needs.append({"id": need_id, "text": text, "filters": filters})
        except (ValueError, TypeError) as exc:
            failures += 1
            needs.append({"id": need_id, "error": f"{path.name} line {line_no}: {exc}"})
    return needs, failures


@app.command()
def demo(
    n: Annotated[int, typer.Option("--n", min=100, max=2_000_000, help="Enterprises to generate.")] = 20_000,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    top: TopOption = 5,
    lang: SampleLangOpt = "en",
    home: HomeOption = None,
) -> None:
    """The whole sample flow: generate -> ingest -> build -> train, then print gaps and prospects."""
    from pipelines.make_sample import write_sample

    settings = settings_for(home)
    out.rule("1/5 generate the sample region")
    files = write_sample(settings.samples_dir, n=n, seed=seed, chain_map_path=settings.chain_map, lang=check_lang(lang))
    out.print(f"{n} enterprises -> {files['enterprises']}")
    out.rule("2/5 ingest last year's and this year's registry exports")
    mapping_path = CN_REGISTRY_MAPPING if lang == "zh" else SAMPLE_MAPPING
    mapping = load_mapping(mapping_path)
    if lang == "zh":
        # The Chinese exports carry their date in the file name (enterprises-2026-11-01.xlsx).
        mapping = mapping.model_copy(update={"updated_at_from_filename": r"(\d{4}-\d{2}-\d{2})"})
    for source in (files["previous"], files["enterprises"]):
        info = ingest_snapshot(source, mapping, settings.snapshots_dir, settings.max_bad_row_share, mapping_path=mapping_path)
        c = info.manifest["counts"]
        out.print(f"snapshot {info.snapshot_id} ({source.name}): {c['enterprises']} enterprises ({c['local']} local), {c['quarantined_rows']} rows quarantined")
    out.rule("3/5 build")
    version, manifest = build_version(build_config(settings), info.snapshot_id, progress=progress_factory())
    out.print(f"published {version} in {manifest['timings']['total_s']:.1f} s ({manifest['counts']['embedded']} profiles embedded)")
    out.rule("4/5 train the ranking models")
    report = train_version(train_config(settings, [files["outcomes"]]))
    print_train_report(report)
    out.rule("5/5 gaps and prospects")
    catalog = load_catalog(settings)
    gaps(chain=None, home=settings.home, as_json=False)
    for gap in catalog.gaps[:3]:
        rows = records(catalog.prospects(gap["gap_id"], top, Filters()))
        print_results(f"Prospects for {gap['gap_id']} — {gap['title']}", rows)
    out.print(f"Artifacts: {settings.artifacts_dir}  ·  try: matcher prospects --gap {catalog.gaps[0]['gap_id']} --top 20")


evaluate_app = typer.Typer(help="Evaluate models on held-out data.", no_args_is_help=True)
app.add_typer(evaluate_app, name="evaluate")


@evaluate_app.command("growth")
def evaluate_growth_command(
    before: Annotated[Path, typer.Option("--before", help="Earlier snapshot source file.")],
    after: Annotated[Path, typer.Option("--after", help="Later snapshot source file.")],
    mapping: Annotated[Path, typer.Option("--mapping", help="YAML column mapping of both files.")],
    oof_out: Annotated[Optional[Path], typer.Option("--oof-out", help="Write out-of-fold scores (enterprise_id,score) here.")] = None,
    folds: Annotated[int, typer.Option("--folds", min=2, max=20)] = 5,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train the growth model on a before/after pair with cross-validation and report ROC-AUC / AP."""
    from pipelines.evaluate_growth import evaluate_growth

    settings = settings_for(home)
    report = evaluate_growth(before, after, load_mapping(mapping), settings.max_bad_row_share, folds)
    scores = report.pop("scores")
    if oof_out is not None:
        oof_out.parent.mkdir(parents=True, exist_ok=True)
        safe_frame(scores).to_csv(oof_out, index=False)
        report["oof_out"] = str(oof_out)
    if as_json:
        emit_json(report)
        return
    c = report["counts"]
    out.print(f"{c['examples']} examples ({c['grew']} grew) from {c['operating_before']} operating enterprises; "
              f"{c['missing_after']} missing later, {c['unknown_growth']} with unknown growth left out")
    table = Table(title="Growth: out-of-fold quality", title_justify="left")
    for column in ("score", "ROC-AUC", "average precision"):
        table.add_column(column)
    for name, m in report["metrics"].items():
        table.add_row(name, f"{m['roc_auc']:.3f}", f"{m['average_precision']:.3f}")
    out.print(table)


def train_config(settings: Settings, outcomes: list[Path], force: bool = False) -> TrainConfig:
    return TrainConfig(
        artifacts_dir=settings.artifacts_dir, snapshots_dir=settings.snapshots_dir, outcomes=tuple(outcomes),
        min_outcomes=settings.min_outcomes, keep_versions=settings.keep_versions, force=force,
    )


def print_metrics(evaluation: dict) -> None:
    if not evaluation.get("metrics"):
        out.print(f"evaluation: {evaluation.get('status')}")
        return
    split = evaluation["split"]
    table = Table(title=f"Held-out evaluation: mean of {split['repeats']} splits (~{split['train_pairs']} train / {split['test_pairs']} test pairs, {split['test_gaps']} test gaps each)", title_justify="left")
    for column in ("scorer", "NDCG@10", "P@10", "ROC-AUC", "Brier", "ECE"):
        table.add_column(column)
    for name, m in evaluation["metrics"].items():
        table.add_row(name, f"{m['ndcg@10']:.3f}", f"{m['precision@10']:.3f}", f"{m['roc_auc']:.3f}",
                      f"{m['brier']:.3f}" if "brier" in m else "", f"{m['ece']:.3f}" if "ece" in m else "")
    out.print(table)


def print_train_report(report: dict) -> None:
    growth = report["growth"]
    line = f"growth model: {growth['status']}"
    for name, m in growth.get("metrics", {}).items():
        line += f" — {name}: ROC-AUC {m['roc_auc']:.3f}"
    out.print(line)
    o = report["outcomes"]
    out.print(f"outcomes: {o['usable']} usable, {o['rejected']} rejected {o['rejected_reasons'] or ''}")
    print_metrics(report.get("evaluation", {}))
    if report.get("forced"):
        out.print(f"[yellow]published although[/] {report['forced'].split('; use --force')[0]} (--force)")
    if report["status"] == "published":
        out.print(f"published {report['version']} — ranked by {report['ranker']}" + (f" ({report['cold_start_reason']})" if "cold_start_reason" in report else ""))
    else:
        out.print(f"[yellow]not published:[/] {report['reason']}")


OutcomesOpt = Annotated[list[Path], typer.Option("--outcomes", help="CSV of outcomes (enterprise_id, gap_id, contacted_at, outcome); repeatable.")]


@app.command()
def train(
    outcomes: Annotated[Optional[list[Path]], typer.Option("--outcomes", help="CSV of outcomes (enterprise_id, gap_id, contacted_at, outcome); repeatable. Outcomes and review verdicts recorded through the service are read from its database as well.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Publish even if worse than the published model.")] = False,
    database_url: Annotated[Optional[str], typer.Option("--database-url", help="Service database [env: DATABASE_URL; default: HOME/matcher.db when it exists].")] = None,
    no_database: Annotated[bool, typer.Option("--no-database", help="Learn from the --outcomes files only.")] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train the growth and landing models and publish them with the current version."""
    from dataclasses import replace

    settings = settings_for(home, database_url=database_url)
    use_db = not no_database and (settings.database_url is not None or (settings.home / "matcher.db").is_file())
    if not outcomes and not use_db:
        raise typer.BadParameter("give --outcomes FILE (or record outcomes through the service: its database is read too)")
    config = replace(train_config(settings, outcomes or [], force), database_url=settings.db_url if use_db else None)
    report = train_version(config)
    if as_json:
        emit_json(report)
    else:
        src, rev, vec = report["outcomes"]["sources"], report["outcomes"]["reviews"], report["outcomes"]["features"]
        out.print(f"usable labels by source: files {src['files']}, database {src['database']}, review verdicts {src['reviews']} "
                  f"({rev['verdicts']} verdicts: {rev['used_as_positive']} approvals as positives, {rev['used_as_negative']} "
                  f"firm-level rejections as negatives, {sum(v['verdicts'] for v in rev['not_used'].values())} not used)", highlight=False)
        for kind, why in rev["not_used"].items():
            out.print(f"  not used: {kind} ({why['verdicts']}): {why['reason']}", highlight=False)
        out.print("labels by kind: " + ", ".join(f"{k} {c['rows']} ({c['landed']} landed, weight {c['weight']:g})"
                                                 for k, c in report["outcomes"]["label_kinds"].items())
                  + f"; feature vectors: {vec['from_log']} from the served-list log, {vec['recomputed']} recomputed", highlight=False)
        print_train_report(report)
    if report["status"] != "published":
        raise typer.Exit(3)


@evaluate_app.command("ranking")
def evaluate_ranking_command(
    outcomes: OutcomesOpt,
    repeats: Annotated[int, typer.Option("--repeats", min=1, max=100, help="Time- and group-respecting splits to average over (each holds out other gaps).")] = EVALUATION_SPLITS,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Held-out ranking quality (NDCG@10, P@10, ROC-AUC, calibration) against the baselines."""
    from matcher.outcomes import load_outcomes
    from pipelines.train_ranker import evaluate_ranking, pair_features

    catalog = load_catalog(settings_for(home))
    usable, rejected = load_outcomes(outcomes, set(catalog.enterprises["enterprise_id"]), catalog.known_gap_ids())
    if len(usable) < 20 or usable["landed"].nunique() < 2:
        raise SchemaError(f"{', '.join(map(str, outcomes))}: {len(usable)} usable outcomes; too few to evaluate")
    evaluation = evaluate_ranking(catalog, usable, pair_features(catalog, usable), repeats=repeats)
    if as_json:
        emit_json({**evaluation, "rejected": len(rejected)})
    else:
        print_metrics(evaluation)



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
    from matcher.explain import why_not

    check_lang(lang)
    catalog = load_catalog(settings_for(home))
    report = why_not(catalog, gap, enterprise_id, shortlist, Filters(include_local=include_local, include_closed=include_closed), lang)
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
    from matcher.explain import compare

    check_lang(lang)
    catalog = load_catalog(settings_for(home))
    report = compare(catalog, gap, a, b, Filters(include_local=True, include_closed=True), lang)
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
