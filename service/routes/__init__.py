"""The ``/v1`` API. Routes translate between HTTP and the library; errors are raised as
``MatcherError`` subclasses and mapped in ``service/errors.py``.

One module per resource, included in the order the OpenAPI document lists them: ``identity``
(the calling key, reference lists), ``chains`` (chains, maps, segments, gaps), ``prospects``
(ranked lists, search, explanations), ``shortlists`` (shortlists, reviews, exports, exclusions),
``outcomes``, ``overview`` and ``admin``, then ``partners`` (suppliers and customers for a local
firm) and ``gaps`` (gaps managed in the service); ``common`` holds what they share. Every route
first lets its worker pick up gaps changed in the service (``gaps.sync_gaps``).
"""

from fastapi import APIRouter, Depends

from service.routes import admin, chains, identity, outcomes, overview, prospects, shortlists
from service.routes import partners
from service.routes import gaps

# Each module's router carries the prefix and the error responses itself: a route's ``path`` (the
# template metrics and logs name) is then the full ``/v1/...`` one.
router = APIRouter(dependencies=[Depends(gaps.sync_gaps)])
for module in (identity, chains, prospects, shortlists, outcomes, overview, admin):
    router.include_router(module.router)
router.include_router(partners.router)  # suppliers and customers for a local firm
router.include_router(gaps.router)

__all__ = ["router"]
