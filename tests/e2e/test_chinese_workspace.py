"""Chinese shown well: CLI tables, the review page and the shortlist exports of a Chinese workspace.

The workspace is the Chinese sample region as staff would load it: ``matcher sample --lang zh``
writes a registry-style XLSX export, ``matcher ingest`` reads it through
``data/mappings/cn-registry.yaml``, ``matcher build`` publishes it (the session's packaged model).
The review page runs in headless Chromium with the fixtures of ``test_review_page.py``.
"""

from __future__ import annotations

import csv
import io
import re
import shutil

import httpx
import pytest
from rich.cells import cell_len

from tests.conftest import REPO_ROOT
from tests.e2e.conftest import Workspace, cli, cli_json
from tests.e2e.test_review_page import (  # noqa: F401  (fixtures)
    browser, create_key, find, find_all, open_item, service, sign_in, wait_for,
)

pytestmark = pytest.mark.e2e

CN_REGISTRY = REPO_ROOT / "data" / "mappings" / "cn-registry.yaml"
HAN = re.compile(r"[\u4e00-\u9fff]")
TABLE_LINE = re.compile(r"^[┏┃┡│└╇╈┣┠┗]")


@pytest.fixture(scope="module")
def zh_workspace(tmp_path_factory, shared_model) -> Workspace:
    home = tmp_path_factory.mktemp("zh-workspace")
    files = cli_json("sample", "--lang", "zh", "--n", 400, "--seed", 3, "--home", home)
    summary = cli_json("ingest", files["enterprises"], "--mapping", CN_REGISTRY, "--home", home)
    return Workspace(home, summary, cli_json("build", "--home", home))


@pytest.fixture
def workspace_copy(zh_workspace, tmp_path) -> Workspace:
    """The Chinese workspace for ``service`` (from test_review_page), which serves a private copy."""
    home = tmp_path / "home"
    shutil.copytree(zh_workspace.home, home)
    return Workspace(home, zh_workspace.ingest, zh_workspace.manifest)


def chinese_gap(home) -> dict:
    """A gap whose top prospects have Chinese names and at least one Chinese evidence clause."""
    for gap in cli_json("gaps", "--home", home):
        rows = cli_json("prospects", "--gap", gap["gap_id"], "--top", 6, "--explain", "--home", home)["results"]
        if len(rows) == 6 and all(HAN.search(r["name"]) for r in rows) and any(
                HAN.search(s) for r in rows for s in r["explanation"]["evidence"]):
            return gap
    raise AssertionError("no gap of the Chinese sample has Chinese prospects with Chinese evidence")


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if TABLE_LINE.match(line)]


def test_cli_tables_align_chinese_text(zh_workspace):
    home = zh_workspace.home
    gap = chinese_gap(home)["gap_id"]
    names = [r["name"] for r in cli_json("prospects", "--gap", gap, "--top", 10, "--home", home)["results"]]
    assert all(HAN.search(n) for n in names)

    for args in (("prospects", "--gap", gap, "--top", 10), ("gaps",), ("chains",)):
        text = cli(*args, "--home", home).stdout
        lines = table_lines(text)
        assert lines, f"matcher {' '.join(args)} printed no table:\n{text}"
        # One table per block of lines: every line of a table is as wide on screen as its top border.
        tops = [i for i, line in enumerate(lines) if line.startswith("┏")] + [len(lines)]
        for start, end in zip(tops, tops[1:]):
            widths = {cell_len(line) for line in lines[start:end]}
            assert len(widths) == 1, f"matcher {' '.join(args)}: lines of display widths {sorted(widths)}:\n{text}"
        if args[0] == "prospects":
            assert any(cell_len(line) != len(line) for line in lines), "no wide characters in the table"
            for name in names:  # whole, on one line, not folded across two
                assert any(name in line for line in lines), f"{name} is not whole in:\n{text}"


def test_review_page_shows_chinese_names_and_evidence(workspace_copy, service, browser):
    home = workspace_copy.home
    gap = chinese_gap(home)
    staff, leader = create_key(home, "staff"), create_key(home, "chain_leader", gap["chain_id"])
    created = httpx.post(f"{service}/v1/shortlists", json={"gap_id": gap["gap_id"], "top": 6},
                         headers={"Authorization": f"Bearer {staff}"}, timeout=60)
    assert created.status_code == 201, created.text
    shortlist = created.json()
    sid, items = shortlist["shortlist_id"], shortlist["items"]
    item = next(i for i in items if any(HAN.search(s) for s in i["explanation"]["evidence"]))
    clause = next(s for s in item["explanation"]["evidence"] if HAN.search(s))

    sign_in(browser, service, leader, f"?lang=zh#/shortlists/{sid}")
    wait_for(browser, lambda d: len(find_all(d, "item")) == len(items), "the shortlist's items")
    listed = find(browser, "items").text
    for i in items:
        assert i["name"] in listed, f"{i['name']} is not in the list: {listed}"
    detail = open_item(browser, item["item_id"])
    assert find(browser, "item-name", detail).text == item["name"]
    evidence = find(browser, "evidence", detail).text
    assert clause in evidence, f"evidence clause {clause!r} not shown whole in {evidence!r}"


def test_exports_keep_chinese_text(workspace_copy, service):
    from openpyxl import load_workbook

    home = workspace_copy.home
    gap = chinese_gap(home)
    staff, leader = create_key(home, "staff"), create_key(home, "chain_leader", gap["chain_id"])
    shortlist = httpx.post(f"{service}/v1/shortlists", json={"gap_id": gap["gap_id"], "top": 6},
                           headers={"Authorization": f"Bearer {staff}"}, timeout=60).json()
    headers = {"Authorization": f"Bearer {leader}"}  # the chain's leader exports
    items = shortlist["items"]
    evidence = [s for i in items for s in i["explanation"]["evidence"] if HAN.search(s)]
    assert evidence
    url = f"{service}/v1/shortlists/{shortlist['shortlist_id']}/export"

    for lang in ("en", "zh"):
        raw = httpx.get(url, params={"format": "csv", "lang": lang}, headers=headers, timeout=30)
        assert raw.status_code == 200, raw.text
        content = raw.content
        assert content.startswith(b"\xef\xbb\xbf"), "CSV without the UTF-8 BOM Excel needs for Chinese"
        for name in [i["name"] for i in items] + evidence:
            assert name.encode("utf-8") in content, f"{name} is not in the CSV byte for byte"
        rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
        for i in items:
            assert any(i["name"] in row for row in rows[1:]), f"{i['name']} is not a cell of the CSV"

    raw = httpx.get(url, params={"format": "xlsx", "lang": "zh"}, headers=headers, timeout=30)
    assert raw.status_code == 200 and raw.content[:2] == b"PK"
    sheet = load_workbook(io.BytesIO(raw.content), read_only=True).worksheets[0]
    cells = [c for row in sheet.iter_rows(values_only=True) for c in row]
    for i in items:
        assert i["name"] in cells, f"{i['name']} is not a string cell of the XLSX"
    assert any(isinstance(c, str) and evidence[0] in c for c in cells)


def test_a_gaps_prospects_in_a_chinese_universe_are_firms_of_its_segment(zh_workspace):
    """Gaps are matched in their firms' language: in a Chinese universe the segment's Chinese text
    (and industry codes) find the segment's firms, where its English text found none."""
    import pandas as pd

    home = zh_workspace.home
    labels = pd.read_csv(home / "data" / "samples" / "labels.csv", dtype=str).set_index("enterprise_id")
    enterprises = zh_workspace.enterprises().set_index("enterprise_id")
    gaps = [g for g in cli_json("gaps", "--home", home) if g["segment_id"]][:4]
    assert gaps
    for gap in gaps:
        results = cli_json("prospects", "--gap", gap["gap_id"], "--top", 10, "--explain", "--home", home)["results"]
        in_segment = [r for r in results if gap["segment_id"] in labels.loc[r["enterprise_id"], "segments"].split(";")]
        # The generator's segment labels are the truth; a 400-firm universe has only a few outside
        # firms per segment, and most of them must come first.
        available = sum(gap["segment_id"] in str(s).split(";") for s in labels.loc[labels["is_local"] == "False", "segments"])
        assert available and len(in_segment) >= 0.6 * min(available, 10), (gap["gap_id"], available, [r["name"] for r in results])
        assert any(HAN.search(s) for r in in_segment for s in r["explanation"]["evidence"]), gap["gap_id"]
        # The industry-code reason quotes the firm's own code and the registry's name for it.
        for r in results:
            code, name = enterprises.loc[r["enterprise_id"], ["industry_code", "industry"]]
            texts = [c["text"] for c in r["explanation"]["contributions"]] + r["explanation"]["facts"]
            if isinstance(code, str):
                quoted = f"industry code {code} {name.removeprefix(code).strip()}".rstrip()
                assert any(t.startswith(quoted) for t in texts), (quoted, texts)
