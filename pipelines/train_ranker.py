"""Train step: growth model (snapshot history) + landing model (recorded outcomes) -> new version.

The new version is the current one plus the models (files hard-linked, then manifest rewritten),
published atomically like every other version. A landing model that is worse on the held-out
evaluation than the published one is not published unless forced.

Labels come from outcome files, outcomes recorded through the service and review verdicts
(weighted by ``matcher.outcomes.LABEL_WEIGHTS``). A label recorded through the service is trained
on the feature vector it was served with, read from the served-list log, when the log has it
(:func:`logged_features`); every other pair's features are computed from the current version.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import sklearn

from matcher import artifacts, catalog as C, schemas as S
from matcher.catalog import Catalog
from matcher.features import FEATURES, MONOTONIC
from matcher.growth import cross_validated_scores, growth_examples, growth_features, make_growth_model, score_report, usable_numeric
from matcher.outcomes import label_counts, load_outcomes, outcomes_from_records, review_labels, time_group_split
from matcher.ranking import COLD_START, LandingModel, cold_start_score, component_scores, ranking_metrics
from matcher.snapshot import list_snapshots, load_enterprises
from matcher.settings import default
from pipelines.model_card import model_card_markdown


# Splits the held-out evaluation averages over. With ~170 test pairs a split, NDCG@10 moves by
# several points from split to split: 5 splits put the landing model's lift over similarity at
# +14%, 12 at +10% (benchmarks/RESULTS.md).
EVALUATION_SPLITS = 12


@dataclass(frozen=True)
class TrainConfig:
    artifacts_dir: Path
    snapshots_dir: Path
    outcomes: tuple[Path, ...]
    min_outcomes: int = default("min_outcomes")
    keep_versions: int = default("keep_versions")
    force: bool = False
    database_url: str | None = default("database_url")  # the service database: its outcomes and review verdicts are labels too


def train_config(settings, outcomes: list[Path], force: bool = False) -> TrainConfig:
    """The training configuration of ``settings`` (a ``matcher.settings.Settings``), as ``build_config`` is the build's."""
    return TrainConfig(
        artifacts_dir=settings.artifacts_dir, snapshots_dir=settings.snapshots_dir, outcomes=tuple(outcomes),
        min_outcomes=settings.min_outcomes, keep_versions=settings.keep_versions, force=force,
    )


def gather_outcomes(config: TrainConfig, known_enterprises: set[str], known_gaps: set[str]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Outcomes from the files, the service database and review verdicts (see matcher/outcomes.py).

    Returns (usable, rejected, where the usable ones came from). ``usable`` has ``landed``,
    ``source`` (files / database / reviews), ``label_kind`` and ``weight``, and for labels
    recorded through the service ``recorded_at`` (when, UTC) and, for verdicts, the
    ``list_version`` the shortlist item froze. A pair labelled by a file or a recorded outcome is
    never also labelled by a verdict; a database outcome that repeats a file row (same enterprise,
    gap and date) counts once.
    """
    usable, rejected = load_outcomes(list(config.outcomes), known_enterprises, known_gaps)
    sources = {"files": len(usable), "database": 0, "reviews": 0}
    reviews = {"verdicts": 0, "used": 0, "used_as_positive": 0, "used_as_negative": 0, "not_used": {}}
    if config.database_url:
        from matcher.store import Store, repo, upgrade

        upgrade(config.database_url)
        store = Store(config.database_url, pool_size=1)
        try:
            recorded, verdicts = repo.outcome_records(store, with_recorded_at=True), repo.review_records(store)
        finally:
            store.dispose()
        db_usable, db_rejected = outcomes_from_records(recorded, "database", known_enterprises, known_gaps, extra=("recorded_at",))
        seen = set(zip(usable["enterprise_id"], usable["gap_id"], usable["contacted_at"].astype(str)))
        fresh = [k not in seen for k in zip(db_usable["enterprise_id"], db_usable["gap_id"], db_usable["contacted_at"].astype(str))]
        db_usable = db_usable[np.array(fresh, dtype=bool)]
        labelled = set(zip(usable["enterprise_id"], usable["gap_id"])) | set(zip(db_usable["enterprise_id"], db_usable["gap_id"]))
        labels, reviews = review_labels(verdicts, labelled)
        review_usable, review_rejected = outcomes_from_records(labels, "reviews", known_enterprises, known_gaps,
                                                               extra=("label_kind", "recorded_at", "list_version"))
        sources.update(database=len(db_usable), reviews=len(review_usable))
        usable = pd.concat([usable, db_usable, review_usable], ignore_index=True)
        rejected = pd.concat([r for r in (rejected, db_rejected, review_rejected) if len(r)], ignore_index=True) \
            if any(len(r) for r in (rejected, db_rejected, review_rejected)) else rejected
    for column in ("recorded_at", "list_version"):
        if column not in usable:
            usable[column] = None
    return usable, rejected, {"sources": sources, "reviews": reviews, "label_kinds": label_counts(usable)}


def logged_features(database_url: str | None, outcomes: pd.DataFrame) -> pd.DataFrame:
    """The served feature vectors of the labels recorded through the service.

    A row of ``outcomes`` with a ``recorded_at`` gets the vector of its enterprise in the latest
    ranked list of its gap stored before that time (for a verdict, the list its shortlist item
    froze, when that list holds it), if that list's feature names are ``FEATURES``
    (``matcher.store.repo.logged_vectors``).

    Returns
    -------
    DataFrame
        Indexed like the rows found (a subset of ``outcomes.index``): the ``FEATURES`` columns
        (float64, NaN where the value was missing) and ``list_version``.
    """
    columns = [*FEATURES, "list_version"]
    if not database_url or not len(outcomes) or "recorded_at" not in outcomes:
        return pd.DataFrame(columns=columns)
    wanted = outcomes[outcomes["recorded_at"].notna()]
    if not len(wanted):
        return pd.DataFrame(columns=columns)
    from matcher.store import Store, repo

    requests = [{"key": index, "enterprise_id": e, "gap_id": g, "before": pd.Timestamp(t).to_pydatetime(),
                 "list_version": v if isinstance(v, str) else None}
                for index, e, g, t, v in zip(wanted.index, wanted["enterprise_id"], wanted["gap_id"], wanted["recorded_at"],
                                             wanted["list_version"])]
    store = Store(database_url, pool_size=1)
    try:
        found = repo.logged_vectors(store, requests, list(FEATURES))
    finally:
        store.dispose()
    if not found:
        return pd.DataFrame(columns=columns)
    index = [k for k in wanted.index if k in found]
    vectors = np.array([[np.nan if v is None else v for v in found[k][1]] for k in index], dtype=float)
    frame = pd.DataFrame(vectors, index=index, columns=list(FEATURES))
    frame["list_version"] = [found[k][0] for k in index]
    return frame


def train_growth(catalog: Catalog, snapshots_dir: Path) -> tuple[np.ndarray | None, object | None, dict]:
    """Growth model from the catalog's snapshot and the newest snapshot whose data is older."""
    current = catalog.manifest["snapshot"]["snapshot_id"]
    snapshots = {s.snapshot_id: s for s in list_snapshots(snapshots_dir)}
    as_of = snapshots[current].manifest.get("as_of") if current in snapshots else None
    earlier = sorted(
        (s for s in snapshots.values() if as_of and s.manifest.get("as_of") and s.manifest["as_of"] < as_of),
        key=lambda s: (s.manifest["as_of"], s.snapshot_id),
    )
    if not earlier:
        return None, None, {"status": "no earlier snapshot: growth model not trained (growth_score shows the growth indicators instead)"}
    started = time.perf_counter()
    before = load_enterprises(earlier[-1])
    after = catalog.enterprises
    examples = growth_examples(before, after)
    y = examples.labels.to_numpy()
    if len(y) < 50 or y.min() == y.max():
        return None, None, {"status": f"snapshot pair has {len(y)} usable examples ({int(y.sum())} grew): too few to learn from"}
    oof = cross_validated_scores(examples)
    metrics = score_report(y, {"growth model (out of fold)": oof})
    model = make_growth_model(usable_numeric(examples.features)).fit(examples.features, y)
    as_of = pd.to_datetime(after[S.UPDATED_AT]).max()
    scores = model.predict_proba(growth_features(after, as_of))[:, 1].astype(np.float32)
    return scores, model, {
        "status": "trained",
        "before": earlier[-1].snapshot_id,
        "after": current,
        "counts": examples.counts,
        "metrics": metrics,
        "seconds": round(time.perf_counter() - started, 1),
    }


def pair_features(catalog: Catalog, outcomes: pd.DataFrame, logged: pd.DataFrame | None = None) -> pd.DataFrame:
    """Feature rows (``FEATURES`` columns) for each outcome, same order: the logged vector where
    ``logged`` (from :func:`logged_features`) has the row, otherwise computed from ``catalog``."""
    logged = logged if logged is not None else pd.DataFrame(columns=list(FEATURES))
    parts = [logged[list(FEATURES)].astype(float)] if len(logged) else []
    todo = outcomes[~outcomes.index.isin(logged.index)]
    for gap_id, group in todo.groupby("gap_id", sort=False):
        gap, vector = catalog.gap(gap_id)
        rows = pd.Index(catalog.enterprises[S.ENTERPRISE_ID]).get_indexer(group["enterprise_id"])
        parts.append(catalog.features(gap, vector, rows).set_index(group.index)[list(FEATURES)])
    return pd.concat(parts).loc[outcomes.index]


def sample_weights(outcomes: pd.DataFrame) -> np.ndarray | None:
    """The ``weight`` column, or None when every label weighs 1 (then the fit is the unweighted
    one, bit for bit)."""
    if "weight" not in outcomes or (outcomes["weight"] == 1.0).all():
        return None
    return outcomes["weight"].to_numpy(dtype=float)


def outcomes_table(usable: pd.DataFrame) -> pd.DataFrame:
    """The labels a version's ranker learned from, as stored in ``outcomes.parquet``: one row per
    label with ``enterprise_id``, ``gap_id``, ``contacted_at`` (date), ``outcome`` (the stage,
    or the verdict's label kind), ``landed`` (the label), ``source`` (files / database /
    reviews), ``label_kind`` (``outcome`` for recorded outcomes: only those are landings),
    ``weight``, ``file``, ``row``, ``recorded_at`` and ``feature_source`` (the list version the
    vector came from, or ``recomputed``)."""
    table = usable.assign(contacted_at=usable["contacted_at"].astype(str),  # as _published_training_pairs compares them
                          recorded_at=[None if pd.isna(t) else pd.Timestamp(t).isoformat() for t in usable["recorded_at"]])
    columns = ["enterprise_id", "gap_id", "contacted_at", "outcome", "landed", "source", "label_kind", "weight", "file", "row",
               "recorded_at", "feature_source"]
    return table[[c for c in columns if c in table]].astype({"file": str, "row": "int64"})


def _published_training_pairs(catalog: Catalog) -> set[tuple]:
    path = catalog.path / C.OUTCOMES_FILE
    if not path.is_file():
        return set()
    seen = pd.read_parquet(path)
    return set(zip(seen["enterprise_id"], seen["gap_id"], seen["contacted_at"].astype(str)))


def evaluate_ranking(catalog: Catalog, outcomes: pd.DataFrame, features: pd.DataFrame, repeats: int = EVALUATION_SPLITS) -> dict:
    """Held-out evaluation of a landing model against the similarity-only and cold-start
    baselines (and the published landing model, on pairs it never trained on).

    Each of ``repeats`` splits holds out different gaps (:func:`time_group_split` with seeds
    0..repeats-1); metrics are the mean over the splits, so one lucky split cannot decide. Models
    are fitted with the ``weight`` column (when there is one). Rows whose ``source`` is
    ``reviews`` (verdict labels, not landings) may train a split's model but are never tested on.
    """
    y = outcomes["landed"].to_numpy()
    weights = sample_weights(outcomes)
    evaluable = (outcomes["source"] != "reviews").to_numpy() if "source" in outcomes else None
    pos = {i: p for p, i in enumerate(outcomes.index)}
    seen = _published_training_pairs(catalog) if catalog.ranker is not None else set()
    per_split: dict[str, list[dict]] = {}
    sizes = []
    for seed in range(repeats):
        train_idx, test_idx = time_group_split(outcomes, seed=seed, evaluable=evaluable)
        tr, te = [pos[i] for i in train_idx], [pos[i] for i in test_idx]
        if len(set(y[tr])) < 2 or len(set(y[te])) < 2:
            continue
        sizes.append((len(tr), len(te), outcomes.iloc[te]["gap_id"].nunique()))
        model = LandingModel().fit(features.iloc[tr], y[tr], groups=outcomes["enterprise_id"].to_numpy()[tr],
                                   sample_weight=None if weights is None else weights[tr])
        test = outcomes.iloc[te][["gap_id", "enterprise_id", "landed"]].copy()
        test_features = features.iloc[te]
        test["landing model"] = model.predict_proba(test_features)[:, 1]
        # The relevance that matched the pair: the cosine similarity, or the lexical score where the
        # embedding model does not read the gap's language (Chinese with the English model: NaN).
        similarity = test_features["gap_similarity"].to_numpy()
        test["similarity only"] = np.where(np.isnan(similarity), test_features["lexical_z"].to_numpy(), similarity)
        cold = np.zeros(len(te))
        for _, g in test.groupby("gap_id"):
            where = [test.index.get_loc(i) for i in g.index]
            cold[where] = cold_start_score(component_scores(test_features.iloc[where].reset_index(drop=True)))
        test["cold-start score"] = cold
        for name in ("landing model", "similarity only", "cold-start score"):
            per_split.setdefault(name, []).append(ranking_metrics(test, name))
        if catalog.ranker is not None:
            unseen = [k for k, (e, g, t) in enumerate(zip(test["enterprise_id"], test["gap_id"], outcomes.iloc[te]["contacted_at"].astype(str)))
                      if (e, g, t) not in seen]
            if len(unseen) >= 30 and test.iloc[unseen]["landed"].nunique() == 2:
                fresh = test.iloc[unseen].copy()
                fresh["published model"] = catalog.ranker.predict_proba(test_features.iloc[unseen])[:, 1]
                per_split.setdefault("published model", []).append(ranking_metrics(fresh, "published model"))
                per_split.setdefault("landing model (same pairs)", []).append(ranking_metrics(fresh, "landing model"))
    if not sizes:
        return {"status": "no split with both outcomes on each side; no evaluation"}
    metrics = {}
    for name, runs in per_split.items():
        keys = [k for k in runs[0] if all(k in m for m in runs)]  # Brier/ECE only for probabilities
        metrics[name] = {k: float(np.nanmean([m[k] for m in runs])) for k in keys}
    return {
        "status": "evaluated",
        "split": {"repeats": len(sizes), "train_pairs": int(np.mean([s[0] for s in sizes])),
                  "test_pairs": int(np.mean([s[1] for s in sizes])), "test_gaps": int(np.mean([s[2] for s in sizes])),
                  "rule": "per split: test = later recorded outcomes of held-out gaps; train = earlier pairs of the other "
                          "gaps (outcomes and review verdicts), minus test enterprises; metrics are means over the splits"},
        "metrics": metrics,
        "ndcg@10_per_split": {name: [round(m["ndcg@10"], 4) for m in runs] for name, runs in per_split.items()},
    }


def publish_guard(evaluation: dict, catalog: Catalog) -> str | None:
    """Why a new landing model must not replace the published one, or None.

    Compared on outcome pairs the published model never trained on; when there are none, with
    the held-out NDCG@10 in the published model card (same protocol).
    """
    if catalog.ranker is None:
        return None
    metrics = evaluation.get("metrics", {})
    if "published model" in metrics:
        new, old = metrics["landing model (same pairs)"]["ndcg@10"], metrics["published model"]["ndcg@10"]
        basis = "on outcome pairs the published model never trained on"
    else:
        card_path = catalog.path / "model_card.json"
        card = json.loads(card_path.read_text()) if card_path.is_file() else {}
        old = card.get("evaluation", {}).get("metrics", {}).get("landing model", {}).get("ndcg@10")
        new = metrics.get("landing model", {}).get("ndcg@10")
        basis = "in held-out evaluation (the published model card's figure)"
        if old is None or new is None:
            return None
    if new < old:
        return (f"the new landing model's NDCG@10 {new:.3f} is below the published model's {old:.3f} {basis}; "
                "use --force to publish anyway")
    return None


def train(config: TrainConfig, now: datetime | None = None) -> dict:
    """Train and (unless the guard stops it) publish a version with the ranking models."""
    started = time.perf_counter()
    now = now or datetime.now(timezone.utc)
    parent = artifacts.version_dir(config.artifacts_dir)
    catalog = Catalog.load(parent)
    growth_scores, growth_model, growth_info = train_growth(catalog, config.snapshots_dir)
    catalog.set_growth_scores(growth_scores)

    usable, rejected, origin = gather_outcomes(config, set(catalog.enterprises[S.ENTERPRISE_ID]), catalog.known_gap_ids())
    report: dict = {"parent_version": catalog.version, "growth": growth_info,
                    "outcomes": {"usable": len(usable), "rejected": len(rejected),
                                 "rejected_reasons": rejected["reason"].value_counts().to_dict() if len(rejected) else {},
                                 **origin}}
    # Trees need room to split: below a few leaves' worth of outcomes a model would be constant.
    needed = max(config.min_outcomes, 4 * LandingModel().min_samples_leaf)
    enough = len(usable) >= needed and usable["landed"].nunique() == 2
    model, evaluation, features = None, {"status": "not evaluated"}, None
    usable = usable.assign(feature_source="recomputed")
    report["outcomes"]["features"] = vectors = {"from_log": 0, "recomputed": 0}  # counted when features are made
    if enough:
        logged = logged_features(config.database_url, usable)
        features = pair_features(catalog, usable, logged)
        usable.loc[logged.index, "feature_source"] = logged["list_version"]
        vectors.update(from_log=len(logged), recomputed=len(usable) - len(logged))
        evaluation = evaluate_ranking(catalog, usable, features)
        refusal = publish_guard(evaluation, catalog)
        if refusal and not config.force:
            report.update(status="not-published", evaluation=evaluation, reason=refusal)
            return report
        if refusal:
            report["forced"] = refusal
        model = LandingModel().fit(features, usable["landed"].to_numpy(), groups=usable["enterprise_id"].to_numpy(),
                                   sample_weight=sample_weights(usable))
    ranker = "landing-model" if model is not None else COLD_START
    if model is None:
        report["cold_start_reason"] = f"{len(usable)} usable outcomes (need {needed} with both landed and declined)"

    fingerprint = f"{catalog.version}-{ranker}-{len(usable)}".encode().hex()
    version = artifacts.new_version(now, fingerprint[-14:])
    while (config.artifacts_dir / version).exists():
        now = datetime.fromtimestamp(now.timestamp() + 1, timezone.utc)
        version = artifacts.new_version(now, fingerprint[-14:])
    staged = config.artifacts_dir / f".tmp-{version}"
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(parent, staged, copy_function=os.link)
    try:
        for name in (C.RANKER_FILE, C.GROWTH_SCORES_FILE, C.OUTCOMES_FILE, "growth_model.joblib", "model_card.json", "model_card.md"):
            (staged / name).unlink(missing_ok=True)
        if model is not None:
            joblib.dump(model, staged / C.RANKER_FILE)
            outcomes_table(usable).to_parquet(staged / C.OUTCOMES_FILE, index=False)
        if growth_scores is not None:
            np.save(staged / C.GROWTH_SCORES_FILE, growth_scores)
            joblib.dump(growth_model, staged / "growth_model.joblib")
        libraries = {**catalog.manifest.get("libraries", {}), "scikit_learn": sklearn.__version__, "python": platform.python_version()}
        card = {
            "version": version, "created_at": now.isoformat(timespec="seconds"), "ranker": ranker,
            "data": {"snapshot_id": catalog.manifest["snapshot"]["snapshot_id"], "outcome_files": [str(p) for p in config.outcomes],
                     "outcome_sources": origin["sources"], "review_verdicts": origin["reviews"],
                     "label_kinds": origin["label_kinds"], "features": vectors,
                     "outcomes_used": len(usable), "outcomes_rejected": len(rejected),
                     "landed": int(((usable["landed"] == 1) & (usable["label_kind"] == "outcome")).sum()) if len(usable) else 0},
            "features": list(FEATURES), "monotonic": MONOTONIC, "evaluation": evaluation, "growth": growth_info,
            "training_seconds": round(time.perf_counter() - started, 1), "libraries": libraries,
        }
        (staged / "model_card.json").write_text(json.dumps(card, indent=2, default=str))
        (staged / "model_card.md").write_text(model_card_markdown(card))
        manifest = {k: v for k, v in catalog.manifest.items() if k not in ("version", "files")}
        manifest.update(created_at=now.isoformat(timespec="seconds"), parent_version=catalog.version,
                        ranker={"kind": ranker, "trained_in": version, "scikit_learn": sklearn.__version__,
                                "outcomes": len(usable)},
                        growth={"status": growth_info["status"]}, libraries=libraries)
        artifacts.write_manifest(staged, version, manifest)
        Catalog.load(staged)  # everything reloads and matches the manifest before it is visible
        artifacts.publish(config.artifacts_dir, staged, version, config.keep_versions)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    report.update(status="published", version=version, ranker=ranker, evaluation=evaluation,
                  training_seconds=card["training_seconds"])
    return report
