"""The IVF tier through the pipelines: a build with the IVF factory forced publishes a version the
catalog serves, and a refresh updates that index in place (remove + add) under the recall guard."""

from __future__ import annotations

from datetime import timedelta

import faiss
import numpy as np

from matcher import schemas as S
from matcher.catalog import Catalog
from matcher.retrieval import Filters
from pipelines.build_index import build
from tests.factories import HashingEncoder, make_enterprises
from tests.pipelines.test_build_index import NOW, config_for, home, ingest_factory  # noqa: F401 (fixture)
from tests.pipelines import test_refresh as R

IVF = "IVF8,SQ8"


def test_build_with_the_ivf_factory_publishes_a_servable_version(home):  # noqa: F811
    ingest_factory(home, n=400)

    version, manifest = build(config_for(home, index_factory=IVF), encoder=HashingEncoder(dim=64), now=NOW)

    assert manifest["index"]["factory"] == "IDMap2,IVF8,SQ8" and manifest["index"]["exact"] is False
    assert manifest["index"]["ntotal"] == 400
    catalog = Catalog.load(home / "models" / "matcher" / version)
    ivf = faiss.downcast_index(catalog.searcher.index.index)
    assert isinstance(ivf, faiss.IndexIVFScalarQuantizer)
    # the codes stay in the file's pages (workers share them), not copied into memory
    assert isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists)
    assert catalog.searcher.vectors.dtype == np.float32 and len(catalog.searcher.vectors) == 400
    results = catalog.prospects("tech.lidar", 5, Filters())
    assert len(results) == 5
    assert not results[S.IS_LOCAL].any()
    assert all("Lidar" in name for name in results[S.NAME])


def test_refresh_updates_an_ivf_index_in_place(tmp_path):
    home = R.make_home(tmp_path / "ivf", index_factory=IVF)

    record = R.refresh(home, R.next_export(home), config=R.config_for(home, index_factory=IVF))

    index = record["index"]
    assert index["mode"] == "in-place" and index["removal"] == "removed"
    assert index["tombstones"] == 0 and index["recall_at_10"] >= 0.95
    catalog = Catalog.load(home / "models" / "matcher" / record["version"])
    assert len(catalog.searcher) == len(catalog.enterprises) == R.N + 1
    live = faiss.vector_to_array(catalog.searcher.index.id_map)
    assert np.array_equal(live, catalog.enterprises[S.FAISS_ID].to_numpy())  # row r is position r
    removed = set(make_enterprises(R.N, seed=0).loc[[10, 11], "firm_id"])
    added = set(make_enterprises(3, seed=5)["firm_id"])
    for gap in catalog.gaps:
        found = catalog.prospects(gap["gap_id"], 50, Filters(include_local=True, include_closed=True))
        assert not removed & set(found["enterprise_id"])
    vectors = catalog.searcher.vectors
    for row in range(len(catalog.enterprises)):  # every firm, kept or new, is found as itself (or its twin)
        rows, scores = catalog.searcher.search(vectors[row], 1)
        assert rows[0] <= row and np.array_equal(vectors[rows[0]], vectors[row])
    assert added <= set(catalog.enterprises[S.ENTERPRISE_ID])
