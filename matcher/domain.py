"""The business vocabulary: roles, review verdicts and reason codes, outreach stages and the
landing labels the ranker learns from.

Each word is defined here once; the store, the API schemas, the permission table, the CLI and
training import it, so a new reason code or stage is added in one place and cannot drift.
"""

from __future__ import annotations

# --- roles ------------------------------------------------------------------------------------

ROLES = ("staff", "chain_leader", "general_leader", "admin")
# Roles whose chains are their own: a chain leader works on (and sees shortlists of) those only; the
# general chain leader sees every chain and works on the chains given, if any.
CHAIN_ROLES = ("chain_leader", "general_leader")

# --- chains -----------------------------------------------------------------------------------

SEGMENT_STAGES = ("upstream", "midstream", "downstream")  # where a segment sits in its chain, in order

# --- shortlists and reviews -------------------------------------------------------------------

SHORTLIST_STATUSES = ("open", "in_review", "reviewed")
VERDICT_STATUS = {"approve": "approved", "reject": "rejected", "defer": "deferred"}  # an item's status after each
VERDICTS = tuple(VERDICT_STATUS)
ITEM_STATUSES = ("pending", *VERDICT_STATUS.values())
FINAL_STATUSES = ("approved", "rejected")  # an item with one of these needs no further review
# code -> (English label, Chinese label, verdicts it may accompany)
REVIEW_REASONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "not_chain_fit": ("Not a chain fit", "不符合产业链需求", ("reject",)),
    "already_in_contact": ("Already in contact", "已在接洽中", ("reject", "defer")),
    "space_or_land_unmet": ("Space or land need cannot be met", "空间或用地需求无法满足", ("reject", "defer")),
    "risk": ("Risk (legal, financial or operational)", "存在风险（法律、财务或经营）", ("reject", "defer")),
    "duplicate": ("Duplicate of another prospect", "与其他企业重复", ("reject",)),
    "strong_fit": ("Strong fit for the chain", "与产业链高度契合", ("approve",)),
    "priority_target": ("Priority target", "重点招引对象", ("approve",)),
    "needs_more_info": ("Needs more information", "需要更多信息", ("defer",)),
    "other": ("Other (see comment)", "其他（见备注）", ("approve", "reject", "defer")),
}
REASON_CODES = tuple(REVIEW_REASONS)
# A rejection with this reason excludes the enterprise from the gap's lists.
EXCLUDING_REASON = "not_chain_fit"

# --- outreach stages --------------------------------------------------------------------------

OPEN_STAGES = ("contacted", "visited", "negotiating", "signed", "landed")  # in order
CLOSED_STAGES = ("declined", "lost")
STAGES = OPEN_STAGES + CLOSED_STAGES
TERMINAL_STAGES = ("landed", "declined", "lost")
# As a training label (outcome files, the database): a signing counts as a landing, and an
# approach that has not reached one nor been closed is still undecided.
LANDED_STAGES = ("landed", "signed")
NOT_LANDED_STAGES = CLOSED_STAGES
UNDECIDED_STAGES = tuple(s for s in OPEN_STAGES if s not in LANDED_STAGES)

# --- landing labels ---------------------------------------------------------------------------
# Which verdicts are labels, with what weight, and why: the table in ``matcher/outcomes.py``.

OUTCOME_KIND = "outcome"
# label kind -> (landed, sample weight); landed None: the outcome itself says (landed/signed: 1).
LABEL_WEIGHTS: dict[str, tuple[int | None, float]] = {
    OUTCOME_KIND: (None, 1.0),
    "approve": (1, 0.3),
    "reject:not_chain_fit": (0, 1.0),
    "reject:risk": (0, 1.0),
    "reject:space_or_land_unmet": (0, 1.0),
}
# Verdicts that are no landing label, and why ("*": any reason code of that verdict).
VERDICTS_NOT_USED: dict[str, str] = {
    "reject:already_in_contact": "a process reason: the firm is already being approached (its outcome will be the label)",
    "reject:duplicate": "a process reason: the prospect duplicates another one",
    "reject:other": "no reason code: cannot tell whether the rejection judges the firm",
    "defer:*": "a deferral postpones the decision; it judges neither way",
}
