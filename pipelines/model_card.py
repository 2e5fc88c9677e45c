"""The model card in Markdown, written next to the models by the train step."""

from __future__ import annotations

from matcher.features import FEATURES, MONOTONIC


def model_card_markdown(card: dict) -> str:
    """``model_card.md``: the model card for people (``model_card.json`` holds the same figures)."""
    lines = [f"# Model card — {card['version']}", "", f"Trained {card['created_at']} on snapshot {card['data']['snapshot_id']} "
             f"and {card['data']['outcomes_used']} labels ({card['data']['landed']} recorded landings). Ranker: **{card['ranker']}**.", ""]
    kinds = card["data"].get("label_kinds")
    if kinds:
        lines += ["## Labels", "", "| label kind | rows | landed | weight |", "|---|---|---|---|"]
        lines += [f"| {kind} | {c['rows']} | {c['landed']} | {c['weight']:g} |" for kind, c in kinds.items()]
        not_used = card["data"].get("review_verdicts", {}).get("not_used", {})
        if not_used:
            lines += ["", "Review verdicts not used: " + "; ".join(f"{k} {v['verdicts']} ({v['reason']})" for k, v in not_used.items()) + "."]
        lines.append("")
    vectors = card["data"].get("features")
    if vectors:
        lines += [f"Feature vectors: {vectors['from_log']} from the served-list log, {vectors['recomputed']} recomputed from "
                  "this version.", ""]
    evaluation = card.get("evaluation", {})
    if evaluation.get("metrics"):
        lines += ["## Held-out evaluation", "", evaluation["split"]["rule"], "", "| scorer | NDCG@10 | P@10 | ROC-AUC | Brier | ECE |", "|---|---|---|---|---|---|"]
        for name, m in evaluation["metrics"].items():
            lines.append(f"| {name} | {m['ndcg@10']:.3f} | {m['precision@10']:.3f} | {m['roc_auc']:.3f} | {m.get('brier', float('nan')):.3f} | {m.get('ece', float('nan')):.3f} |")
    growth = card.get("growth", {})
    lines += ["", "## Growth model", "", growth.get("status", "")]
    for name, m in growth.get("metrics", {}).items():
        lines.append(f"- {name}: ROC-AUC {m['roc_auc']:.3f}, average precision {m['average_precision']:.3f}")
    lines += ["", "## Features", "", "| feature | monotonic |", "|---|---|"]
    lines += [f"| {f} | {({1: 'increasing', -1: 'decreasing'}).get(MONOTONIC.get(f, 0), '')} |" for f in FEATURES]
    lines += ["", "## Libraries", ""] + [f"- {k}: {v}" for k, v in card["libraries"].items()]
    lines += ["", f"Training time: {card['training_seconds']} s.", ""]
    return "\n".join(lines)
