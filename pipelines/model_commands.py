"""Commands that train and evaluate the ranking models: ``train``, ``evaluate growth`` and
``evaluate ranking``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from matcher.errors import SchemaError
from matcher.export import safe_frame
from matcher.loading import load_catalog
from matcher.mapping import load_mapping
from pipelines.cli_app import ExitCode, HomeOption, JsonOption, app, emit_json, out, settings_for
from pipelines.printing import print_metrics, print_train_report
from pipelines.train_ranker import EVALUATION_SPLITS, train as train_version, train_config

OutcomesOpt = Annotated[list[Path], typer.Option("--outcomes", help="CSV of outcomes (enterprise_id, gap_id, contacted_at, outcome); repeatable.")]


evaluate_app = typer.Typer(help="Evaluate models on held-out data.", no_args_is_help=True)
app.add_typer(evaluate_app, name="evaluate")


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
        raise typer.Exit(ExitCode.NOT_PUBLISHED)


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
