"""The real YC directory snapshot through data/mappings/yc.yaml (skipped when ../shared is absent).

YC tags are the labels of the real-data retrieval benchmark: they must be carried as the extra
column ``yc_tags`` and never reach the canonical ``tags`` or the embedded/indexed profile text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from matcher.snapshot import find_snapshot, load_enterprises, profile_text, profile_texts
from tests.conftest import YC_MAPPING
from tests.e2e.conftest import cli

pytestmark = pytest.mark.yc

YC_FILE = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "yc" / "yc-companies-2024-05-11.csv"


@pytest.fixture(scope="module")
def yc(tmp_path_factory):
    if not YC_FILE.is_file():
        pytest.skip(f"{YC_FILE} not available")
    home = tmp_path_factory.mktemp("yc")
    summary = json.loads(cli("ingest", YC_FILE, "--mapping", YC_MAPPING, "--home", home, "--json").stdout)
    info = find_snapshot(home / "models" / "snapshots", summary["snapshot_id"])
    raw = pd.read_csv(YC_FILE, dtype=str, keep_default_na=False)
    return summary, info, load_enterprises(info), raw


def test_yc_snapshot_ingests_nearly_every_company(yc):
    summary, info, enterprises, raw = yc

    assert summary["counts"]["rows_in"] == len(raw)
    assert summary["counts"]["enterprises"] == len(enterprises) >= 0.95 * len(raw)
    assert summary["counts"]["local"] == 0  # no YC company is in Yangpu
    assert set(info.manifest["extra_columns"]) >= {"yc_tags", "yc_batch", "website"}


def test_yc_tags_are_carried_as_an_extra_column(yc):
    _, _, enterprises, raw = yc
    source_tags = raw.set_index("company_id")["tags"]

    with_tags = enterprises[enterprises["yc_tags"].map(len) > 0]
    assert len(with_tags) >= 0.5 * len(enterprises)
    for _, row in with_tags.head(200).iterrows():
        for tag in row["yc_tags"]:
            assert f"'{tag}'" in source_tags[row["enterprise_id"]]


def test_yc_tags_never_reach_tags_or_the_profile_text(yc):
    _, _, enterprises, _ = yc

    assert enterprises["tags"].map(len).sum() == 0
    texts = profile_texts(enterprises)
    leaked = []
    for text, name, description, yc_tags in zip(texts, enterprises["name"], enterprises["description"],
                                                 enterprises["yc_tags"]):
        assert text == profile_text(name, description, None)
        assert "Tags:" not in text
        own_words = f"{name} {description}".casefold()
        leaked += [tag for tag in yc_tags if tag.casefold() in text.casefold() and tag.casefold() not in own_words]
    assert leaked == []


def test_yc_numbers_are_converted_and_absent_facts_stay_missing(yc):
    _, _, enterprises, _ = yc

    assert enterprises["employees"].dtype == "Int64" and enterprises["employees"].notna().mean() > 0.9
    assert enterprises["founded_year"].dropna().between(1900, 2030).all()
    for column in ("revenue", "registered_capital", "patents", "lat"):
        assert enterprises[column].isna().all(), column  # missing is not zero
    assert set(enterprises["status_class"]) <= {"operating", "closed", "acquired", "listed"}
    assert {"operating", "closed", "acquired"} <= set(enterprises["status_class"])
    assert set(enterprises["updated_at"].dt.strftime("%Y-%m-%d")) == {"2024-05-11"}
