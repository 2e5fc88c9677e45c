"""The served version's objects are exempt from the cyclic collector, and cyclic garbage frozen
with them is reclaimed at the next swap (service.holder.settle_heap)."""

from __future__ import annotations

import gc
import weakref

from service.holder import settle_heap


class Node:
    def __init__(self):
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_settle_heap_freezes_live_objects_and_reclaims_frozen_garbage_at_the_next_swap():
    try:
        node = Node()
        alive = weakref.ref(node)
        settle_heap()
        assert gc.get_freeze_count() > 0
        del node  # garbage now, but frozen: the collector does not see it
        gc.collect()
        assert alive() is not None
        settle_heap()  # the next swap unfreezes, collects, freezes again
        assert alive() is None
    finally:
        gc.unfreeze()
