"""The synthetic sample region: deterministic, realistic enough to exercise every pipeline path."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from matcher import schemas as S
from matcher.chains import load_chain_map
from matcher.mapping import apply_mapping, load_mapping
from matcher.sample import generate_sample
from matcher.validation import validate_enterprises
from tests.conftest import CHAIN_MAP, REPO_ROOT, SAMPLE_MAPPING

VOCABULARY = REPO_ROOT / "data" / "generator" / "vocabulary.yaml"


@pytest.fixture(scope="module")
def chain_map():
    return load_chain_map(CHAIN_MAP)


@pytest.fixture(scope="module")
def vocabulary():
    return yaml.safe_load(VOCABULARY.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sample(chain_map, vocabulary):
    return generate_sample(chain_map, vocabulary, n=400, seed=3)


def test_same_seed_gives_identical_frames(chain_map, vocabulary, sample):
    again = generate_sample(chain_map, vocabulary, n=400, seed=3)

    for name in ("enterprises", "outcomes", "labels"):
        pd.testing.assert_frame_equal(sample[name], again[name])


def test_other_seed_gives_other_data(chain_map, vocabulary, sample):
    other = generate_sample(chain_map, vocabulary, n=400, seed=4)

    assert set(other["enterprises"]["uscc"]).isdisjoint(sample["enterprises"]["uscc"])
    assert other["enterprises"]["business_scope"].tolist() != sample["enterprises"]["business_scope"].tolist()


def test_sizes_and_unique_ids(sample):
    enterprises, labels = sample["enterprises"], sample["labels"]

    assert len(enterprises) == len(labels) == 400
    assert enterprises["uscc"].is_unique
    assert labels["enterprise_id"].tolist() == enterprises["uscc"].tolist()


def test_contains_local_and_outside_firms_of_several_countries(sample):
    enterprises = sample["enterprises"]

    local = enterprises["district"] == "Yangpu"
    assert 10 <= local.sum() <= 80
    assert (~local).sum() > 300
    assert sample["labels"]["is_local"].tolist() == local.tolist()
    assert {"CN", "DE", "US"} <= set(enterprises["country_code"])


def test_has_a_few_broken_rows_that_ingest_quarantines_but_accepts(sample):
    mapped = apply_mapping(sample["enterprises"], load_mapping(SAMPLE_MAPPING), "enterprises.csv")

    result = validate_enterprises(mapped, "enterprises.csv")

    assert 4 <= result.rows_quarantined <= 10
    assert result.bad_share <= 0.05  # under the default limit, so the sample always ingests
    assert {S.EMPLOYEES, S.NAME, S.LAST_FUNDING_DATE, S.FOUNDED_YEAR} <= set(result.quarantine["column"])


def test_firm_kinds_include_generic_and_distractor_firms(sample):
    kinds = set(sample["labels"]["kind"])

    assert {"normal", "multi", "distractor", "generic"} <= kinds
    no_segment = sample["labels"]["segments"].fillna("") == ""
    assert set(sample["labels"].loc[no_segment, "kind"]) <= {"distractor", "generic"}


def test_local_firms_leave_at_least_one_segment_of_every_chain_empty(chain_map, vocabulary):
    labels = generate_sample(chain_map, vocabulary, n=3000, seed=5)["labels"]
    local_segments = {s for segs in labels.loc[labels["is_local"], "segments"].fillna("") for s in segs.split(";") if s}

    for chain in chain_map.chains:
        assert {s.id for s in chain.segments} - local_segments, chain.id


def test_outcomes_have_both_labels_and_point_at_outside_firms_and_known_gaps(sample, chain_map):
    outcomes = sample["outcomes"]
    outside = set(sample["labels"].loc[~sample["labels"]["is_local"], "enterprise_id"])
    segment_gaps = {f"{c.id}.{s.id}" for c, s in chain_map.segments()}

    assert set(outcomes["outcome"]) == {"landed", "declined"}
    assert set(outcomes["enterprise_id"]) <= outside
    assert set(outcomes["gap_id"]) <= segment_gaps
    assert outcomes["outcome_id"].is_unique
    assert outcomes["contacted_at"].tolist() == sorted(outcomes["contacted_at"])


def test_vocabulary_must_cover_every_segment(chain_map, vocabulary):
    partial = {**vocabulary, "segments": dict(list(vocabulary["segments"].items())[:-1])}

    with pytest.raises(ValueError, match="vocabulary has no entry"):
        generate_sample(chain_map, partial, n=100, seed=0)
