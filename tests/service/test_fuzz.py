"""Schema-based fuzzing of the HTTP API (schemathesis, in-process over ASGI).

Every operation of ``/openapi.json`` gets generated requests, valid and invalid (positive and
negative modes), sent with a real admin key. Whatever comes in, the service must not answer 5xx,
every status must be one the operation documents, and every body must match the documented
schema for that status and content type.

The service is its own instance on the session's built sample workspace, with a throwaway
database per backend, so generated writes (reviews, outcomes, reloads) never reach the database
the other service tests use. The example budget is small here (``FUZZ_MAX_EXAMPLES``, default 25 per
operation); ``benchmarks/fuzz_service.py`` runs the same test with a larger one.
"""

from __future__ import annotations

import os
import re

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from matcher.store import repo
from service.app import create_app
from tests.service.conftest import service_settings, wait_ready
from tests.service.databases import BACKENDS, throwaway_database

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
SEED = int(os.environ.get("FUZZ_SEED", "0"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module", params=BACKENDS)
def fuzz_target(request, service_workspace, tmp_path_factory):
    """(app, admin key, real ids: a gap, its chain, a shortlist of it, an item, an enterprise) on a
    fresh database of the backend."""
    with throwaway_database(request.param, tmp_path_factory.mktemp(f"fuzz-{request.param}")) as url:
        app = create_app(service_settings(service_workspace.home, url, service_warm_gaps=False))
        with TestClient(app) as client:
            wait_ready(client)
            admin = repo.create_key(app.state.svc.store, "admin", name="fuzz")[0]
            headers = {"Authorization": f"Bearer {admin}"}
            gap = client.get("/v1/gaps", headers=headers).json()["gaps"][0]
            created = client.post("/v1/shortlists", json={"gap_id": gap["gap_id"], "top": 3}, headers=headers)
            assert created.status_code == 201, created.text
            shortlist = created.json()
            known_ids = {"gap_id": gap["gap_id"], "chain_id": gap["chain_id"], "shortlist_id": shortlist["shortlist_id"],
                         "item_id": shortlist["items"][0]["item_id"], "enterprise_id": shortlist["items"][0]["enterprise_id"]}
            yield app, admin, known_ids


def fuzz_operation(operation, headers: dict, known_ids: dict) -> None:
    """Positive and negative cases of one operation, each sent and checked: with generated path
    ids (mostly unknown: 404s) and, so the handlers behind the lookups run too, with real ids."""
    names = re.findall(r"{(\w+)}", operation.path)
    real = {name: known_ids[name] for name in names if name in known_ids}
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    strategies = [operation.as_strategy(mode, headers=headers) for mode in modes]
    if real:
        strategies += [operation.as_strategy(mode, headers=headers, path_parameters=real) for mode in modes]
    cases = st.one_of(strategies)

    @given(case=cases)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=SEED == 0, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def test_no_server_error_and_every_response_matches_the_schema(fuzz_target):
    app, admin, known_ids = fuzz_target
    headers = {"Authorization": f"Bearer {admin}"}
    api_schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures, tested = [], 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        tested += 1
        try:
            fuzz_operation(operation, headers, known_ids)
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:1500]}")
    assert tested >= 20, f"only {tested} operations in /openapi.json"
    assert not failures, f"{len(failures)} of {tested} operations failed:\n\n" + "\n\n".join(failures)
