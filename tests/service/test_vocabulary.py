"""The business vocabulary is defined once (``matcher/domain.py``) and every layer speaks it."""

from __future__ import annotations

import typing

from matcher import domain
from service import schemas as api
from service.auth import PERMISSIONS


def test_every_role_has_permissions_and_no_other_role_does():
    assert set(PERMISSIONS) == set(domain.ROLES)


def test_api_types_accept_exactly_the_domain_words():
    assert typing.get_args(api.Role) == domain.ROLES
    assert typing.get_args(api.ReasonCode) == tuple(domain.REVIEW_REASONS)
    assert typing.get_args(api.Stage) == domain.STAGES
    assert typing.get_args(api.Verdict) == tuple(domain.VERDICT_STATUS)


def test_every_label_kind_is_a_verdict_with_a_reason_it_may_carry():
    for kind in set(domain.LABEL_WEIGHTS) | set(domain.VERDICTS_NOT_USED):
        if kind in (domain.OUTCOME_KIND, "approve"):
            continue
        verdict, reason = kind.split(":")
        assert verdict in domain.VERDICTS
        assert reason == "*" or verdict in domain.REVIEW_REASONS[reason][2]
