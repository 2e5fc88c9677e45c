"""Chain maps (validation, error messages) and chain analysis (assignment, strength, gap list)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import yaml

from matcher import schemas as S
from matcher.chain_map import PRIORITY_SEVERITY, ChainMap, load_chain_map
from matcher.chains import analyse_chains, assign_segments, segment_stats
from matcher.errors import ConfigError, UnknownEntityError
from tests.conftest import CHAIN_MAP
from tests.factories import unit_vectors

DESCRIPTION = "A segment description that is long enough to pass validation."


def segment(sid, supplies=(), stage="midstream"):
    return {"id": sid, "name": sid.upper(), "stage": stage, "description": DESCRIPTION,
            "keywords": [f"{sid} keyword"], "supplies": list(supplies)}


MAP = {
    "region": {"id": "testville", "name": "Testville", "city": "Shanghai", "province": "Shanghai",
               "country": "CN", "lat": 31.0, "lon": 121.0},
    "chains": [
        {
            "id": "alpha", "name": "Alpha", "kind": "pillar", "leader": "Mayor",
            "segments": [segment("a1", supplies=["a2"], stage="upstream"), segment("a2"), segment("a3"),
                         segment("a4", stage="downstream")],
            "gaps": [
                {"id": "alpha-declared-a4", "segment": "a4", "priority": "high", "note": "wanted"},
                {"id": "alpha-free", "text": "Cross-border logistics partners. Overseas warehousing.",
                 "priority": "low"},
            ],
        },
        {
            "id": "beta", "name": "Beta", "kind": "emerging", "leader": "Deputy",
            "segments": [segment("b1"), segment("b2")],
        },
    ],
}


def chain_map(data=None) -> ChainMap:
    return ChainMap.model_validate(copy.deepcopy(data or MAP))


def write_map(tmp_path, data) -> "Path":  # noqa: F821
    path = tmp_path / "chains.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


# --- loading and validation --------------------------------------------------------------------


def test_the_shipped_chain_map_loads():
    loaded = load_chain_map(CHAIN_MAP)

    assert loaded.region.id == "yangpu"
    assert len(loaded.chains) >= 5
    ids = [s.id for _, s in loaded.segments()]
    assert len(ids) == len(set(ids))
    assert any(g.text for c in loaded.chains for g in c.gaps)  # free-text declared gaps exist


def test_chain_map_round_trips_from_yaml(tmp_path):
    assert load_chain_map(write_map(tmp_path, MAP)) == chain_map()


def test_unknown_supplies_error_names_file_key_and_segment(tmp_path):
    data = copy.deepcopy(MAP)
    data["chains"][1]["segments"][0]["supplies"] = ["no-such-segment"]
    path = write_map(tmp_path, data)

    with pytest.raises(ConfigError) as info:
        load_chain_map(path)

    message = str(info.value)
    assert str(path) in message
    assert "chains.1" in message
    assert "b1" in message and "no-such-segment" in message


def test_duplicate_segment_ids_across_chains_are_named(tmp_path):
    data = copy.deepcopy(MAP)
    data["chains"][1]["segments"][1]["id"] = "a3"
    path = write_map(tmp_path, data)

    with pytest.raises(ConfigError) as info:
        load_chain_map(path)

    assert str(path) in str(info.value)
    assert "duplicate segment ids" in str(info.value) and "a3" in str(info.value)


def test_duplicate_segment_ids_within_a_chain_are_named(tmp_path):
    data = copy.deepcopy(MAP)
    data["chains"][0]["segments"][1]["id"] = "a1"
    path = write_map(tmp_path, data)

    with pytest.raises(ConfigError, match=r"chains\.0.*duplicate segment ids \['a1'\]"):
        load_chain_map(path)


def test_duplicate_chain_ids_are_named(tmp_path):
    data = copy.deepcopy(MAP)
    data["chains"][1]["id"] = "alpha"
    data["chains"][1]["segments"] = [segment("c1")]

    with pytest.raises(ConfigError, match=r"duplicate chain ids \['alpha'\]"):
        load_chain_map(write_map(tmp_path, data))


def test_declared_gap_naming_an_unknown_segment_is_named(tmp_path):
    data = copy.deepcopy(MAP)
    data["chains"][0]["gaps"][0]["segment"] = "zz"

    with pytest.raises(ConfigError, match="alpha-declared-a4.*zz"):
        load_chain_map(write_map(tmp_path, data))


def test_declared_gap_needs_segment_or_text(tmp_path):
    data = copy.deepcopy(MAP)
    data["chains"][0]["gaps"][0]["text"] = "Both given."

    with pytest.raises(ConfigError, match=r"chains\.0\.gaps\.0"):
        load_chain_map(write_map(tmp_path, data))


@pytest.mark.parametrize(
    ("path_in_map", "value", "key"),
    [
        (("chains", 0, "segments", 0, "id"), "Bad Id", "chains.0.segments.0.id"),
        (("chains", 0, "segments", 0, "stage"), "sideways", "chains.0.segments.0.stage"),
        (("chains", 0, "segments", 0, "description"), "short", "chains.0.segments.0.description"),
        (("chains", 0, "kind"), "other", "chains.0.kind"),
        (("region", "lat"), 123.0, "region.lat"),
    ],
)
def test_invalid_field_errors_name_the_key(tmp_path, path_in_map, value, key):
    data = copy.deepcopy(MAP)
    target = data
    for part in path_in_map[:-1]:
        target = target[part]
    target[path_in_map[-1]] = value
    path = write_map(tmp_path, data)

    with pytest.raises(ConfigError) as info:
        load_chain_map(path)

    assert str(path) in str(info.value) and key in str(info.value)


def test_unknown_key_is_rejected(tmp_path):
    data = copy.deepcopy(MAP)
    data["chains"][0]["segments"][0]["keyword"] = ["typo"]

    with pytest.raises(ConfigError, match="keyword"):
        load_chain_map(write_map(tmp_path, data))


def test_missing_or_invalid_yaml_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="absent.yaml"):
        load_chain_map(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("chains: [\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_chain_map(broken)


# --- leaders ------------------------------------------------------------------------------------


def test_the_shipped_map_has_a_general_leader_and_a_chain_with_two_leaders():
    loaded = load_chain_map(CHAIN_MAP)

    assert (loaded.region.general_leader, loaded.region.general_leader_zh) == ("District Mayor", "区长")
    assert any(len(c.leaders) >= 2 for c in loaded.chains)
    for chain in loaded.chains:
        assert chain.leader == chain.leaders[0] and len(chain.leaders_zh) == len(chain.leaders), chain.id


def test_one_leader_or_several_with_their_chinese_names(tmp_path):
    data = copy.deepcopy(MAP)
    data["chains"][0].pop("leader")
    data["chains"][0].update(leaders=["Mayor", "Deputy Mayor"], leaders_zh=["区长", "副区长"])
    data["chains"][1]["leader_zh"] = "副区长"
    data["region"].update(general_leader="Mayor", general_leader_zh="区长")

    loaded = load_chain_map(write_map(tmp_path, data))

    alpha, beta = loaded.chains
    assert (alpha.leader, alpha.leaders, alpha.leader_zh, alpha.leaders_zh) == ("Mayor", ["Mayor", "Deputy Mayor"], "区长", ["区长", "副区长"])
    assert (beta.leader, beta.leaders, beta.leader_zh, beta.leaders_zh) == ("Deputy", ["Deputy"], "副区长", ["副区长"])
    assert loaded.region.general_leader_zh == "区长"
    assert ChainMap.model_validate(loaded.model_dump()) == loaded  # a dumped map reads back the same
    assert chain_map().region.general_leader == ""  # a map may leave the general leader out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"leader": None}, "chain 'alpha' has no leader"),
        ({"leaders": ["Deputy", "Mayor"]}, "'leader' (Mayor) is not the first of 'leaders'"),
        ({"leader": None, "leaders": ["Mayor", "Mayor"]}, "'leaders' names ['Mayor'] twice"),
        ({"leaders": ["Mayor", "Deputy"], "leaders_zh": ["区长"]}, "'leaders_zh' has 1 names for 2 leaders"),
        ({"leader": None, "leaders": ["Mayor", " "]}, "chains.0.leaders.1"),
    ],
)
def test_bad_leaders_name_the_file_the_chain_and_the_field(tmp_path, change, message):
    data = copy.deepcopy(MAP)
    for key, value in change.items():
        if value is None:
            data["chains"][0].pop(key)
        else:
            data["chains"][0][key] = value
    path = write_map(tmp_path, data)

    with pytest.raises(ConfigError) as info:
        load_chain_map(path)

    assert str(path) in str(info.value) and "chains.0" in str(info.value) and message in str(info.value)


def test_unknown_chain_id_names_it():
    with pytest.raises(UnknownEntityError, match="gamma"):
        chain_map().chain("gamma")
    assert chain_map().chain("beta").name == "Beta"


def test_segment_text_combines_name_description_and_keywords():
    a1 = chain_map().chains[0].segments[0]

    assert a1.text == f"A1. {DESCRIPTION} Keywords: a1 keyword."


# --- assign_segments ---------------------------------------------------------------------------


def test_assign_segments_threshold_margin_and_at_most_three():
    sims = np.array(
        [
            [0.90, 0.88, 0.87, 0.86, 0.10],  # four close: only the best three
            [0.30, 0.20, 0.10, 0.00, 0.00],  # below the threshold: generic firm, no segment
            [0.90, 0.70, 0.10, 0.00, 0.00],  # second beyond the margin
            [0.60, 0.55, 0.00, 0.00, 0.00],  # two within the margin
        ],
        dtype=np.float32,
    )

    member = assign_segments(sims, threshold=0.4, margin=0.1)

    assert member.tolist() == [
        [True, True, True, False, False],
        [False] * 5,
        [True, False, False, False, False],
        [True, True, False, False, False],
    ]


def test_assign_segments_max_per_row_is_configurable():
    sims = np.array([[0.9, 0.9, 0.9, 0.9]], dtype=np.float32)

    assert assign_segments(sims, 0.5, 0.1, max_per_row=1).sum() == 1
    assert assign_segments(sims, 0.5, 0.1, max_per_row=4).sum() == 4


def test_assign_segments_of_no_enterprises():
    assert assign_segments(np.zeros((0, 6), np.float32), 0.4, 0.1).shape == (0, 6)


def test_segment_stats_are_the_mean_and_sd_of_similarities_over_the_universe():
    vectors, segments = unit_vectors(101, 16, seed=1), unit_vectors(5, 16, seed=2)
    sims = vectors @ segments.T

    mean, sd = segment_stats(vectors, segments, chunk=7)  # chunking must not change the result

    np.testing.assert_allclose(mean, sims.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sd, sims.std(axis=0), rtol=1e-4, atol=1e-6)


# --- analyse_chains ----------------------------------------------------------------------------

DIM = 8
SEGMENT_VECTORS = np.eye(DIM, dtype=np.float32)[:6]  # a1 a2 a3 a4 b1 b2 on their own axes
IDENTITY_STATS = (np.zeros(6, np.float32), np.ones(6, np.float32))  # z = raw similarity


def local_firms(axes: list) -> tuple[pd.DataFrame, np.ndarray]:
    """One local firm per entry: an axis, or a tuple of axes it spans equally."""
    vectors = np.zeros((len(axes), DIM), np.float32)
    for i, axis in enumerate(axes):
        for a in axis if isinstance(axis, tuple) else (axis,):
            vectors[i, a] = 1.0
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    frame = pd.DataFrame({S.ENTERPRISE_ID: [f"L{i}" for i in range(len(axes))],
                          S.NAME: [f"Local {i}" for i in range(len(axes))]})
    return frame, vectors


def analyse(axes, data=None, stats=IDENTITY_STATS, threshold=0.5, margin=0.1, weak_min_count=3, ratio=0.25):
    local, vectors = local_firms(axes)
    return analyse_chains(chain_map(data), local, vectors, SEGMENT_VECTORS, stats, threshold, margin,
                          weak_min_count, ratio)


# a1: 5 firms, a2: 1 + one firm spanning a1/a2, a3: none, a4: 4, b1: 4, b2: 4, one generic firm (axis 7).
AXES = [0, 0, 0, 0, 0, 1, (0, 1), 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 7]


def test_strength_counts_assigned_local_firms_and_multi_segment_firms_count_in_each():
    analysis = analyse(AXES)

    strength = dict(zip(analysis.segments["segment_id"], analysis.segments["strength"]))
    assert strength == {"a1": 6, "a2": 2, "a3": 0, "a4": 4, "b1": 4, "b2": 4}
    assigned = analysis.assignments
    assert sorted(assigned.loc[assigned[S.ENTERPRISE_ID] == "L6", "segment_id"]) == ["a1", "a2"]
    assert "L19" not in set(assigned[S.ENTERPRISE_ID])  # the generic firm joins no segment
    assert set(assigned["chain_id"]) == {"alpha", "beta"}


def test_missing_weak_and_strong_classification():
    analysis = analyse(AXES)

    status = dict(zip(analysis.segments["segment_id"], analysis.segments["status"]))
    assert status == {"a1": "strong", "a2": "weak", "a3": "missing", "a4": "strong", "b1": "strong", "b2": "strong"}
    assert analysis.segments["weak_below"].tolist() == [3, 3, 3, 3, 3, 3]


def test_weak_threshold_follows_the_chain_median():
    # alpha: 20, 20, 4, 20 -> median 20, 0.25 * 20 = 5 > weak_min_count: 4 firms are weak.
    axes = [0] * 20 + [1] * 20 + [2] * 4 + [3] * 20 + [4] * 3 + [5] * 3
    analysis = analyse(axes)

    segments = analysis.segments.set_index("segment_id")
    assert segments.loc["a3", "weak_below"] == 5
    assert segments.loc["a3", "status"] == "weak"
    assert segments.loc["b1", "status"] == "strong"  # 3 firms, weak_below max(3, ceil(0.75)) = 3


def test_gap_list_has_missing_declared_weak_and_free_text_gaps_most_severe_first():
    gaps = analyse(AXES).gaps

    assert [(g["gap_id"], g["kind"]) for g in gaps] == [
        ("alpha.a3", "missing"),
        ("alpha.a4", "declared"),  # strong, but declared with high priority
        ("alpha.a2", "weak"),
        ("alpha.alpha-free", "declared"),
    ]
    by_id = {g["gap_id"]: g for g in gaps}
    assert by_id["alpha.a3"]["severity"] == 1.0
    assert by_id["alpha.a4"]["severity"] == PRIORITY_SEVERITY["high"]
    assert by_id["alpha.a2"]["severity"] == pytest.approx(0.5 + 0.4 * (1 - 2 / 3), abs=1e-3)
    assert by_id["alpha.alpha-free"]["severity"] == PRIORITY_SEVERITY["low"]
    assert [g["severity"] for g in gaps] == sorted((g["severity"] for g in gaps), reverse=True)


def test_gap_records_carry_chain_segment_and_text():
    by_id = {g["gap_id"]: g for g in analyse(AXES).gaps}
    cm = chain_map()

    a3 = by_id["alpha.a3"]
    assert a3["chain_id"] == "alpha" and a3["segment_id"] == "a3"
    assert a3["text"] == cm.chains[0].segments[2].text
    assert a3["strength"] == 0 and a3["declared"] is False
    free = by_id["alpha.alpha-free"]
    assert free["segment_id"] is None and free["strength"] is None
    assert free["text"].startswith("Cross-border logistics partners")
    assert free["declared"] is True and free["priority"] == "low"
    assert by_id["alpha.a4"]["note"] == "wanted"


def test_declared_priority_raises_but_never_lowers_severity():
    data = copy.deepcopy(MAP)
    data["chains"][0]["gaps"][0]["segment"] = "a3"  # declared on the missing segment, priority high
    data["chains"][0]["gaps"][0]["priority"] = "low"

    by_id = {g["gap_id"]: g for g in analyse(AXES, data=data).gaps}

    assert by_id["alpha.a3"]["kind"] == "missing"
    assert by_id["alpha.a3"]["severity"] == 1.0
    assert by_id["alpha.a3"]["declared"] is True
    assert "alpha.a4" not in by_id  # strong and no longer declared


def test_no_local_firms_means_every_segment_is_missing():
    analysis = analyse([])

    assert set(analysis.segments["status"]) == {"missing"}
    assert len(analysis.assignments) == 0
    kinds = [g["kind"] for g in analysis.gaps]
    assert kinds.count("missing") == 6 and kinds.count("declared") == 1


def test_assignment_uses_standardised_similarity():
    # Segment a1's similarities run high across the universe (mean 0.8): a raw 0.9 is unremarkable.
    stats = (np.array([0.8, 0, 0, 0, 0, 0], np.float32), np.array([0.5, 1, 1, 1, 1, 1], np.float32))

    analysis = analyse([0, 0, 1], stats=stats)

    strength = dict(zip(analysis.segments["segment_id"], analysis.segments["strength"]))
    assert strength["a1"] == 0 and strength["a2"] == 1
    assert analysis.segments.set_index("segment_id").loc["a1", "similarity_mean"] == pytest.approx(0.8)
