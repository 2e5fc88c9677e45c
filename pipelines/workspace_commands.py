"""Commands that fill the workspace: ``sample``, ``ingest``, ``build``, ``versions`` and ``demo``
(the whole sample flow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from matcher import artifacts
from matcher.loading import load_catalog
from matcher.mapping import load_mapping
from matcher.retrieval import Filters, records
from matcher.settings import PROJECT_ROOT
from matcher.snapshot import ingest as ingest_snapshot
from pipelines.build_config import build_config
from pipelines.build_index import build as build_version
from pipelines.cli_app import HomeOption, JsonOption, RayAddressOpt, TopOption, app, check_lang, emit_json, out, progress_factory, settings_for
from pipelines.printing import print_gaps, print_results, print_train_report
from pipelines.train_ranker import train as train_version, train_config

SAMPLE_MAPPING = PROJECT_ROOT / "data" / "mappings" / "sample.yaml"
CN_REGISTRY_MAPPING = PROJECT_ROOT / "data" / "mappings" / "cn-registry.yaml"

NORMAL_SAMPLE_MAX = 2_000_000
FAST_SAMPLE_MAX = 50_000_000
SampleLangOpt = Annotated[str, typer.Option("--lang", help="Language of the sample region: en (CSV exports) or zh (Chinese registry XLSX exports, mapped by cn-registry.yaml).")]



@app.command()
def sample(
    n: Annotated[int, typer.Option("--n", min=100, max=FAST_SAMPLE_MAX, help=f"Number of enterprises (at most {NORMAL_SAMPLE_MAX:,}; {FAST_SAMPLE_MAX:,} with --fast).")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same data).")] = 7,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Output directory [default: HOME/data/samples].")] = None,
    lang: SampleLangOpt = "en",
    fast: Annotated[bool, typer.Option("--fast", help="Scale-test mode: vectorised, millions of rows in minutes, "
                                       "written as enterprises.parquet in row groups (English; no previous export, "
                                       "outcomes or labels).")] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Generate the synthetic enterprise universe of the sample region (Yangpu, Shanghai)."""
    from pipelines.make_sample import write_sample, write_sample_fast

    settings = settings_for(home)
    target = out_dir or settings.samples_dir
    if fast:
        if check_lang(lang) != "en":
            raise typer.BadParameter("--fast writes the English sample only; leave out --lang zh / --fast 只生成英文样本，请去掉 --lang zh")
        files = write_sample_fast(target, n=n, seed=seed, chain_map_path=settings.chain_map)
    elif n > NORMAL_SAMPLE_MAX:
        raise typer.BadParameter(f"--n {n:,} is above {NORMAL_SAMPLE_MAX:,} for the normal sample; add --fast for a scale-test "
                          f"sample / 普通样本最多 {NORMAL_SAMPLE_MAX:,} 家企业，大规模测试请加 --fast")
    else:
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
    """Validate a source into a new dated snapshot; bad rows go to its quarantine file.

    The source is read in chunks of MATCHER_INGEST_CHUNK_ROWS rows, so memory does not grow with it."""
    settings = settings_for(home)
    info = ingest_snapshot(source, load_mapping(mapping), settings.snapshots_dir, settings.max_bad_row_share,
                           mapping_path=mapping, sheet=sheet, chunk_rows=settings.ingest_chunk_rows)
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
    ray_address: RayAddressOpt = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Embed a snapshot, build the indexes and chain analysis, and publish a new version."""
    settings = settings_for(home, embedding_model=model, index_factory=index_factory, ray_address=ray_address)
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
        info = ingest_snapshot(source, mapping, settings.snapshots_dir, settings.max_bad_row_share, mapping_path=mapping_path,
                               chunk_rows=settings.ingest_chunk_rows)
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
    print_gaps(catalog.version, catalog.gaps)
    for gap in catalog.gaps[:3]:
        rows = records(catalog.prospects(gap["gap_id"], top, Filters()))
        print_results(f"Prospects for {gap['gap_id']} — {gap['title']}", rows)
    out.print(f"Artifacts: {settings.artifacts_dir}  ·  try: matcher prospects --gap {catalog.gaps[0]['gap_id']} --top 20")
