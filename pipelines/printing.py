"""Human-readable output several commands share: ranked lists with their explanations, the gap
list, and training and evaluation reports (``--json`` output needs none of it)."""

from __future__ import annotations

from rich.table import Table

from pipelines.cli_app import out


def print_gaps(version: str, gaps: list[dict]) -> None:
    """The gap list as a table, most severe first (as the catalog orders it)."""
    table = Table(title=f"Gaps ({version})", title_justify="left")
    table.add_column("gap_id", no_wrap=True)
    for column in ("kind", "severity", "local strength", "title"):
        table.add_column(column)
    for gap in gaps:
        strength = "" if gap["strength"] is None else str(gap["strength"])
        table.add_row(gap["gap_id"], gap["kind"], f"{gap['severity']:.2f}", strength, gap["title"])
    out.print(table)


def print_results(title: str, rows: list[dict]) -> None:
    """A ranked list as a table, then each row's explanation when it has one."""
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
    """One explanation: reasons, gap closure, evidence, partners, risks and freshness."""
    out.print(f"[bold]#{e['rank']} {e['name']}[/] — score {e['score']:.3f} ({e['ranker']})", highlight=False)
    for text in e["reasons"]["positive"]:
        out.print(f"  [green]+[/] {text}", highlight=False)
    for text in e["reasons"]["negative"]:
        out.print(f"  [red]-[/] {text}", highlight=False)
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


def print_metrics(evaluation: dict) -> None:
    """Held-out evaluation of the scorers as a table."""
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
    """What training did: growth model, outcomes used, evaluation, published or why not."""
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
