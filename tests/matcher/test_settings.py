"""Each setting's default is declared once: the library's defaults are the settings' defaults."""

import inspect
import os

import pytest

from matcher.catalog import Catalog
from matcher.index import build_index, load_index
from matcher.retrieval import retrieve, retrieve_arrays
from matcher.settings import Settings


@pytest.mark.parametrize("function, argument, setting", [
    (Catalog.load, "ef_search", "hnsw_ef_search"),
    (Catalog.load, "depth", "retrieval_depth"),
    (Catalog.load, "dense_weight", "dense_weight"),
    (Catalog.load, "dense_weight_zh", "dense_weight_zh"),
    (build_index, "ef_search", "hnsw_ef_search"),
    (load_index, "ef_search", "hnsw_ef_search"),
    (retrieve, "depth", "retrieval_depth"),
    (retrieve, "dense_weight", "dense_weight"),
    (retrieve_arrays, "depth", "retrieval_depth"),
    (retrieve_arrays, "dense_weight", "dense_weight"),
])
def test_a_left_out_argument_gets_the_settings_default(function, argument, setting, monkeypatch):
    for name in list(os.environ):
        if name.startswith("MATCHER_"):
            monkeypatch.delenv(name)
    assert inspect.signature(function).parameters[argument].default == getattr(Settings(), setting)
