"""Repository functions: every read and write the service and the CLI make, one module per job.

Each write is one transaction (``Store.write``): a shortlist with all its items, a review with
the item's new status, the shortlist's status and any exclusion change, an outcome — all or
nothing, with its audit entry. Values come back as plain dicts.

Callers use the package (``from matcher.store import repo; repo.create_key(...)``); the modules
are, in the order they build on each other: ``sql`` (dialect helpers), ``audit`` (who acts, the
audit log), ``keys``, ``ranked_lists`` (the served-list log), ``shortlists``, ``exclusions``,
``reviews``, ``outcomes``, ``gaps`` (gaps managed in the service), ``overview``, ``training`` (what training reads) and ``served_log``
(its retention). The vocabulary (roles, reason codes, stages) is ``matcher/domain.py``'s, also
readable here as before (``repo.ROLES``).
"""

from matcher.domain import (
    CHAIN_ROLES, CLOSED_STAGES, EXCLUDING_REASON, FINAL_STATUSES, OPEN_STAGES, REVIEW_REASONS, ROLES, STAGES,
    TERMINAL_STAGES, VERDICT_STATUS,
)
from matcher.store.errors import ConflictError, InvalidInputError, StaleWriteError
from matcher.store.repo.audit import CLI_ACTOR, Actor, audit, list_audit
from matcher.store.repo.exclusions import active_exclusions, exclusion_revision, lift_exclusion, list_exclusions
from matcher.store.repo.gaps import (
    GAP_NOTE_MAX, GAP_PRIORITIES, GAP_STATUSES, GAP_TEXT_MAX, check_gap_fields, declare_gap, edit_gap, gap_revision,
    gap_rows, get_gap_row, set_gap_status,
)
from matcher.store.repo.keys import KEY_PREFIX, PREFIX_LENGTH, authenticate, create_key, hash_key, list_keys, revoke_key
from matcher.store.repo.outcomes import list_outcomes, record_outcome
from matcher.store.repo.overview import (
    STALE_APPROVED_DAYS, STALE_SHORTLIST_DAYS, chain_of_gap, overview_counts, quarter_start,
)
from matcher.store.repo.ranked_lists import get_ranked_list, log_served, save_ranked_lists, served_count
from matcher.store.repo.reviews import check_review, review_item
from matcher.store.repo.served_log import protected_lists, prune_served
from matcher.store.repo.shortlists import (
    create_shortlist, get_shortlist, list_shortlists, shortlist_chain, shortlist_status,
)
from matcher.store.repo.training import logged_vectors, outcome_records, review_records

__all__ = [
    "CHAIN_ROLES", "CLOSED_STAGES", "EXCLUDING_REASON", "FINAL_STATUSES", "OPEN_STAGES", "REVIEW_REASONS", "ROLES", "STAGES",
    "TERMINAL_STAGES", "VERDICT_STATUS",
    "ConflictError", "InvalidInputError", "StaleWriteError",
    "CLI_ACTOR", "Actor", "audit", "list_audit",
    "active_exclusions", "exclusion_revision", "lift_exclusion", "list_exclusions",
    "GAP_NOTE_MAX", "GAP_PRIORITIES", "GAP_STATUSES", "GAP_TEXT_MAX", "check_gap_fields", "declare_gap", "edit_gap",
    "gap_revision", "gap_rows", "get_gap_row", "set_gap_status",
    "KEY_PREFIX", "PREFIX_LENGTH", "authenticate", "create_key", "hash_key", "list_keys", "revoke_key",
    "list_outcomes", "record_outcome",
    "STALE_APPROVED_DAYS", "STALE_SHORTLIST_DAYS", "chain_of_gap", "overview_counts", "quarter_start",
    "get_ranked_list", "log_served", "save_ranked_lists", "served_count",
    "check_review", "review_item",
    "protected_lists", "prune_served",
    "create_shortlist", "get_shortlist", "list_shortlists", "shortlist_chain", "shortlist_status",
    "logged_vectors", "outcome_records", "review_records",
]
