"""The real A-share listed-company set through data/mappings/cn-listed.yaml, from its CSV and from its
XLSX (skipped when ../shared is absent): every row ingests, ids keep their leading zeros, and both
files give the same snapshot."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from matcher import schemas as S
from matcher.snapshot import find_snapshot, load_enterprises
from tests.conftest import REPO_ROOT, SHARED_DIR
from tests.e2e.conftest import cli

CN_LISTED_MAPPING = REPO_ROOT / "data" / "mappings" / "cn-listed.yaml"
CN_LISTED_DIR = SHARED_DIR / "datasets" / "cn-listed"
STEM = "cn-listed-companies-2025-10-25"


@pytest.fixture(scope="module")
def cn_listed(tmp_path_factory):
    csv_path, xlsx_path = CN_LISTED_DIR / f"{STEM}.csv", CN_LISTED_DIR / f"{STEM}.xlsx"
    if not (csv_path.is_file() and xlsx_path.is_file()):
        pytest.skip(f"{CN_LISTED_DIR} not available")
    home = tmp_path_factory.mktemp("cn-listed")
    out = {}
    for path in (csv_path, xlsx_path):
        summary = json.loads(cli("ingest", path, "--mapping", CN_LISTED_MAPPING, "--home", home, "--json").stdout)
        info = find_snapshot(home / "models" / "snapshots", summary["snapshot_id"])
        out[path.suffix] = (summary, info, load_enterprises(info))
    raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False, na_values=[""])
    return out, raw


def test_every_listed_company_ingests_from_csv_and_xlsx(cn_listed):
    out, raw = cn_listed

    for suffix, (summary, info, enterprises) in out.items():
        assert summary["counts"]["rows_in"] == len(raw) == 5440, suffix
        assert summary["counts"]["quarantined_rows"] == 0, suffix
        assert len(enterprises) == 5440
    assert out[".xlsx"][1].manifest["source"]["sheet"] == "上市公司"
    assert out[".csv"][1].manifest["source"]["encoding"] == "utf-8"


def test_csv_and_xlsx_give_identical_snapshots(cn_listed):
    out, _ = cn_listed
    from_csv, from_xlsx = out[".csv"][2], out[".xlsx"][2]

    pd.testing.assert_frame_equal(from_csv, from_xlsx)
    assert out[".csv"][1].manifest["data_sha256"] == out[".xlsx"][1].manifest["data_sha256"]


def test_stock_codes_keep_their_leading_zeros(cn_listed):
    out, raw = cn_listed
    enterprises = out[".xlsx"][2]

    assert enterprises[S.ENTERPRISE_ID].str.fullmatch(r"\d{6}").all()
    assert enterprises[S.ENTERPRISE_ID].tolist() == raw["股票代码"].tolist()
    assert "000001" in set(enterprises[S.ENTERPRISE_ID])


def test_fields_are_parsed_and_unknowns_stay_missing(cn_listed):
    out, raw = cn_listed
    enterprises = out[".csv"][2].set_index(S.ENTERPRISE_ID)
    raw = raw.set_index("股票代码")

    assert enterprises[S.FOUNDED_YEAR].notna().all()
    assert (enterprises[S.FOUNDED_YEAR].astype(int) == raw["成立日期"].str[:4].astype(int)).all()
    assert enterprises[S.EMPLOYEES].isna().sum() == raw["员工人数"].isna().sum() > 0  # missing is not zero
    assert enterprises[S.PROVINCE].isna().sum() == raw["所属省份"].isna().sum()
    codes = enterprises[S.INDUSTRY_CODE].dropna()
    assert codes.str.fullmatch(r"[A-T]\d{2}").all() and (codes == raw.loc[codes.index, "行业代码"]).all()
    assert set(enterprises[S.STATUS_CLASS]) == {"listed"} and set(enterprises[S.COUNTRY]) == {"CN"}
    assert enterprises.loc["000001", "listing_board"] == "深交所主板"
    assert enterprises.loc["000001", "industry_name"] == raw.loc["000001", "所属行业"]


def test_the_description_leads_with_the_main_business(cn_listed):
    out, raw = cn_listed
    enterprises = out[".csv"][2].set_index(S.ENTERPRISE_ID)
    raw = raw.set_index("股票代码")

    for code in ("000001", "000004"):
        description = enterprises.loc[code, S.DESCRIPTION]
        main, scope = raw.loc[code, "主营业务"], raw.loc[code, "经营范围"]
        assert description.startswith(main.rstrip("。")) and description.endswith(scope)
        assert "。。" not in description
