"""Embedding a snapshot on a two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``,
issue 14): an actor on each node, the same vectors as in-process. Beside ``test_ray_embedding.py``
(its fixtures and helpers) in a file of its own, so the test workers run the two side by side."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

from matcher import schemas as S
from matcher.ray_embedding import cached_hashes, embed_on_ray

ray = pytest.importorskip("ray")

from tests.matcher.test_ray_embedding import (  # noqa: E402  (fixtures and helpers, once ray is known)
    assert_same_as_in_process, encoder, map_workers, raylet_pids, sample_home, snapshot,
)

__all__ = ["encoder", "sample_home", "snapshot"]  # fixtures this file's test uses


def test_a_two_node_cluster_embeds_on_both_nodes(snapshot, encoder, tmp_path):
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "object_store_memory": 150 * 1024**2,
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=2, object_store_memory=150 * 1024**2)
    cluster.wait_for_nodes()
    try:
        ray.init(address=cluster.address, log_to_driver=False, runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}})
        cache = tmp_path / "cache" / encoder.key
        # both actors up before the first batch: on a loaded machine the first actor could otherwise
        # embed all four blocks before the second one has loaded its model
        from ray.data import DataContext

        data_context = DataContext.get_current()
        waited, data_context.wait_for_min_actors_s = data_context.wait_for_min_actors_s, 300

        raylets = []
        job = threading.Thread(target=lambda: raylets.append(embed_on_ray(
            cluster.address, snapshot, cache, encoder, actors=2, rows_per_batch=32)))
        job.start()
        nodes: set[int] = set()
        while job.is_alive():
            nodes |= {parent for _, parent in map_workers()}
            time.sleep(0.05)
        job.join()
        report = raylets[0]

        # an actor's parent is its node's raylet (an actor that died and was restarted may show
        # for a moment with another parent): only this cluster's raylets count, as another test's
        # local Ray may run beside it
        from ray._private import ray_constants

        ours = {node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid for node in cluster.list_all_nodes()}
        assert len(ours) == 2 and ours <= raylet_pids()
        assert len(nodes & ours) == 2, "an actor on each node (their parents are the two nodes' raylets)"
        assert report.failed == [] and report.embedded == pd.read_parquet(snapshot)[S.PROFILE_HASH].nunique()
        assert cached_hashes(cache) == set(pd.read_parquet(snapshot)[S.PROFILE_HASH])
        assert_same_as_in_process(cache, snapshot, encoder)
    finally:
        data_context.wait_for_min_actors_s = waited
        ray.shutdown()
        cluster.shutdown()
