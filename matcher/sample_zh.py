"""The sample's Chinese language layer: the same firms, places, sizes, growth, labels and outcomes
as the English sample, written as a Chinese enterprise-data export (headers of
``data/mappings/cn-registry.yaml``: 企业名称 such as 上海恒锐机器人有限公司, 经营范围 in the registry's
wording with its 一般项目/许可项目 clauses, 注册资本 such as 500万元人民币, 国标行业 codes drawn from
the firm's true segment with some noise, Chinese statuses and places, qualification flags), from
``data/generator/vocabulary_zh.yaml``. :func:`matcher.sample.generate_sample` calls it with
``lang="zh"``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from matcher.chain_map import ChainMap
from matcher.sample_world import pick

# The column headers of a Chinese enterprise-data export (data/mappings/cn-registry.yaml).
CN_REGISTRY_COLUMNS = (
    "企业名称", "统一社会信用代码", "登记状态", "成立日期", "注册资本", "实缴资本", "法定代表人", "企业类型",
    "所属省份", "所属城市", "所属区县", "注册地址", "国标行业门类", "国标行业大类", "国标行业中类", "国标行业小类",
    "参保人数", "企业规模", "融资轮次", "最近融资时间", "经营范围", "资质荣誉",
    "高新技术企业", "专精特新", '专精特新"小巨人"', "科技型中小企业", "瞪羚", "独角兽",
)
FLAG_COLUMNS = ("高新技术企业", "专精特新", '专精特新"小巨人"', "科技型中小企业", "瞪羚", "独角兽")
MUNICIPALITIES = ("上海市", "北京市", "天津市", "重庆市")


def check_vocabulary_zh(chain_map: ChainMap, voc: dict) -> None:
    """The Chinese vocabulary covers every segment, and each segment's industry classes lie
    within the chain map's ``industry_codes`` of that segment and have names."""
    segments = {s.id: s for _, s in chain_map.segments()}
    missing = sorted(set(segments) - set(voc["segments"]))
    if missing:
        raise ValueError(f"Chinese vocabulary has no entry for segments {missing}")
    names = voc["industry_names"]
    for segment_id, entry in voc["segments"].items():
        codes = segments[segment_id].industry_codes if segment_id in segments else []
        for code in entry["industry_classes"]:
            if codes and not any(code.startswith(c) for c in codes):
                raise ValueError(f"Chinese vocabulary: {segment_id} class {code} is not within its industry_codes {codes}")
    classes = [c for e in voc["segments"].values() for c in e["industry_classes"]]
    classes += [d["industry_class"] for d in voc["distractors"].values()]
    classes += voc["generic_industry_classes"] + voc["noise_industry_classes"]
    unnamed = sorted({p for c in classes for p in (c, c[:4], c[:3], c[0])} - set(names))
    if unnamed:
        raise ValueError(f"Chinese vocabulary: industry_names lacks {unnamed}")


def _industry_columns(code: str | None, names: dict) -> dict[str, str]:
    """The four 国标行业 cells (门类/大类/中类/小类), each "code name", for a four-digit class."""
    if not code:
        return dict.fromkeys(("国标行业门类", "国标行业大类", "国标行业中类", "国标行业小类"), "-")
    return {
        "国标行业门类": f"{code[0]} {names[code[0]]}",
        "国标行业大类": f"{code[:3]} {names[code[:3]]}",
        "国标行业中类": f"{code[:4]} {names[code[:4]]}",
        "国标行业小类": f"{code} {names[code]}",
    }


def _capital(amount_cny: float, currency: tuple[str, float] | None, rng: np.random.Generator) -> str:
    """A registered-capital string as exports write it: ``1000万元人民币``, ``1.2亿元人民币``,
    ``500万美元``; amounts are rounded to one or two significant figures, as firms register them."""
    if currency is not None:
        word, rate = currency
        amount, unit_word = amount_cny / rate, word
    else:
        amount, unit_word = amount_cny, None
    wan = max(amount / 1e4, 1.0)
    digits = 1 if rng.random() < 0.5 else 2
    wan = float(f"{wan:.{digits}g}")
    if unit_word is not None:
        return f"{wan:g}万{unit_word}"
    if wan >= 10_000 and rng.random() < 0.5:
        return f"{wan / 1e4:g}亿元人民币"
    return f"{wan:g}" + ("万元人民币" if rng.random() < 0.8 else "万人民币" if rng.random() < 0.5 else "万元")


def _scope_zh(rng, items: list[str], licensed: list[str], field: str | None, voc: dict) -> str:
    """A 经营范围 in one of the registry's layouts, from segment items (and licensed items), among
    as many generic items as real scopes carry (2 to 6)."""
    boiler = pick(rng, voc["boilerplate"], int(rng.integers(2, 7)))
    general = list(items)
    for line in boiler:
        general.insert(int(rng.integers(0, len(general) + 1)), line)
    layout = rng.random()
    if field and layout < 0.2:
        field = field if field.endswith(("技术", "科技")) else f"{field}科技"
        head = f"从事{field}领域内的技术开发、技术咨询、技术服务、技术转让"
        return "；".join([head] + general + licensed) + "。" + voc["old_clause"]
    if layout < 0.35:
        return "；".join(general + licensed) + "。（依法须经批准的项目，经相关部门批准后方可开展经营活动）"
    general_part = "一般项目：" + "；".join(general) + voc["general_clause"]
    if not licensed:
        return general_part
    licensed_part = "许可项目：" + "；".join(licensed) + voc["licensed_clause"]
    return licensed_part + general_part if layout < 0.7 else general_part + licensed_part


def _firm_zh(rng, row: dict, label: dict, distractor: str, voc: dict) -> dict:
    """The attributes of one firm that do not change between two yearly exports."""
    segments = [s for s in str(label["segments"]).split(";") if s]
    kind = label["kind"]
    if segments:
        entry = voc["segments"][segments[0]]
        # As hard as the English sample: a quarter of the firms describe their segment in one or
        # two items only (the rest of the scope is generic), the others in two to four.
        vague = rng.random() < 0.25
        items = pick(rng, entry["scope"], int(rng.integers(1, 3)) if vague else int(rng.integers(2, 5)))
        for other in segments[1:]:
            items += pick(rng, voc["segments"][other]["scope"], int(rng.integers(1, 3)))
        licensed = pick(rng, entry["licensed"], int(rng.integers(1, 3))) if entry["licensed"] and rng.random() < 0.5 else []
        description = _scope_zh(rng, items, licensed, entry["field"], voc)
        word = pick(rng, entry["name_words"])[0]
        # Many firms register under a catch-all class (科技推广和应用服务 and the like) or none.
        roll = rng.random()
        if roll < 0.55:
            code = pick(rng, entry["industry_classes"])[0]
        else:
            code = pick(rng, voc["noise_industry_classes"])[0] if roll < 0.85 else None
    elif kind == "distractor":
        entry = voc["distractors"][distractor]
        items = pick(rng, entry["scope"], len(entry["scope"]))
        items += pick(rng, voc["boilerplate"], int(rng.integers(0, 3)))
        description = "一般项目：" + "；".join(items) + voc["general_clause"]
        word = pick(rng, entry["name_words"])[0]
        code = entry["industry_class"] if rng.random() < 0.85 else pick(rng, voc["noise_industry_classes"])[0]
    else:
        items = pick(rng, voc["generic_scope"], int(rng.integers(3, 6)))
        description = "一般项目：" + "；".join(items + pick(rng, voc["boilerplate"], 2)) + voc["general_clause"]
        word = pick(rng, voc["generic_name_words"])[0]
        code = pick(rng, voc["generic_industry_classes"])[0]

    country = row["country_code"]
    brand = pick(rng, voc["brands"])[0]
    city = voc["cities"][row["city"]]
    if country == "CN":
        kind_row = voc["company_types"][rng.choice(len(voc["company_types"]), p=[t[2] for t in voc["company_types"]])]
        company_type, suffix = kind_row[0], kind_row[1]
        short_city = city.removesuffix("市")
        name = f"{short_city}{brand}{word}{suffix}" if rng.random() < 0.8 else f"{brand}（{short_city}）{word}{suffix}"
        province, district = voc["provinces"][row["province"]], voc["districts"][row["district"]]
        roads = voc["local_roads"] if row["district"] == "Yangpu" else voc["roads"]
        region = province if province in MUNICIPALITIES else province + city
        road, number = pick(rng, roads)[0], int(rng.integers(1, 1500))
        building, room = int(rng.integers(1, 12)), int(rng.integers(101, 2400))
        address = f"{region}{district}{road}{number}号{building}幢{room}室"
        currency = pick(rng, [("美元", 7.1), ("港元", 0.91)])[0] if "外商投资" in company_type else None
    else:
        company_type = voc["foreign_company_type"]
        province, district = voc["countries"][country], "-"
        name = f"{brand}{word}（{province}）有限公司"
        address = f"{province}{city}"
        code = None  # Chinese platforms carry no 国标行业 for firms registered abroad
        currency = tuple(voc["foreign_currencies"][country])
    capital = float(row["registered_capital_cny"])
    paid = _capital(capital * rng.uniform(0.2, 1.0), currency, rng) if rng.random() < 0.5 else "-"
    surname, given = pick(rng, voc["surnames"])[0], pick(rng, voc["given_names"])[0]
    year = int(row["founded"])
    honors = [voc["other_honors"][i] for i in range(len(voc["other_honors"])) if rng.random() < 0.04]
    growth = float(row["staff_growth"]) if row["staff_growth"] != "" else 0.0
    employees = int(row["staff_count"]) if row["staff_count"] != "" else 0
    return {
        "name": name, "description": description, "code": code, "company_type": company_type,
        "province": province, "city": city, "district": district, "address": address,
        "capital": _capital(capital, currency, rng), "paid": paid, "legal_rep": surname + given,
        "founded": f"{year}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}",
        "status_roll": float(rng.random()), "round_roll": float(rng.random()),
        "missing_word": "-" if rng.random() < 0.7 else "未公开",
        "honors": honors,
        "gazelle": 2026 - year <= 10 and growth > 0.25 and rng.random() < 0.5,
        "unicorn": 2026 - year <= 12 and employees > 300 and row["last_financing"] != "" and rng.random() < 0.1,
    }


def _size_word(employees: int) -> str:
    return "微型" if employees < 10 else "小型" if employees < 100 else "中型" if employees < 1000 else "大型"


def _export_row_zh(row: dict, firm: dict, voc: dict) -> dict:
    """One row of a yearly Chinese export: the firm's fixed attributes plus that year's values."""
    status_words = voc["statuses"][row["reg_status"]]
    cumulative, status = 0.0, status_words[-1][0]
    for word, weight in status_words:
        cumulative += weight
        if firm["status_roll"] < cumulative:
            status = word
            break
    staff = row["staff_count"]
    age = 2026 - int(row["founded"])
    funded = row["last_financing"] != ""
    stage = "young" if age < 4 else "growing" if age < 9 else "mature"
    rounds = voc["funding_rounds"][stage]
    quals = [voc["qualifications"][q] for q in str(row["honors"]).split(";") if q]
    flags = {column: "否" for column in FLAG_COLUMNS}
    for _, flag in quals:
        if flag:
            flags[flag] = "是"
    if firm["gazelle"]:
        flags["瞪羚"] = "是"
    if firm["unicorn"]:
        flags["独角兽"] = "是"
    honors = [zh for zh, _ in quals] + firm["honors"]
    honors += ["瞪羚企业"] * (flags["瞪羚"] == "是") + ["独角兽企业"] * (flags["独角兽"] == "是")
    out = {
        "企业名称": firm["name"],
        "统一社会信用代码": row["uscc"],
        "登记状态": status,
        "成立日期": firm["founded"],
        "注册资本": firm["capital"],
        "实缴资本": firm["paid"],
        "法定代表人": firm["legal_rep"],
        "企业类型": voc["listed_company_type"] if row["reg_status"] == "listed" else firm["company_type"],
        "所属省份": firm["province"],
        "所属城市": firm["city"],
        "所属区县": firm["district"],
        "注册地址": firm["address"],
        **_industry_columns(firm["code"], voc["industry_names"]),
        "参保人数": str(staff) if staff != "" else firm["missing_word"],
        "企业规模": _size_word(int(staff)) if staff != "" else "-",
        "融资轮次": rounds[int(firm["round_roll"] * len(rounds))] if funded else "-",
        "最近融资时间": row["last_financing"] if funded else "-",
        "经营范围": firm["description"],
        "资质荣誉": "；".join(honors) if honors else "-",
        **flags,
    }
    return out


def chinese_export(
    enterprises: pd.DataFrame,
    previous: pd.DataFrame,
    labels: pd.DataFrame,
    distractor_of: list[str],
    vocabulary_zh: dict,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """This year's and last year's export of the sample's firms as a Chinese enterprise-data
    platform writes them (the columns of :data:`CN_REGISTRY_COLUMNS`, every cell a string).

    Only the language layer changes: the same firms (same ``统一社会信用代码``), places, founding
    years, headcounts, funding dates, qualifications and statuses as the English frames; names,
    business scopes (经营范围) and 国标行业 codes come from the firm's true segments through
    ``vocabulary_zh``. A firm's fixed attributes (name, scope, founding date, capital) are the
    same in both years.
    """
    records = enterprises.to_dict("records")
    label_records = labels.to_dict("records")
    firms = {
        row["uscc"]: _firm_zh(rng, row, label, distractor, vocabulary_zh)
        for row, label, distractor in zip(records, label_records, distractor_of)
    }
    columns = list(CN_REGISTRY_COLUMNS)
    current = pd.DataFrame([_export_row_zh(r, firms[r["uscc"]], vocabulary_zh) for r in records], columns=columns)
    earlier = pd.DataFrame(
        [_export_row_zh(r, firms[r["uscc"]], vocabulary_zh) for r in previous.to_dict("records")], columns=columns
    )
    return current.astype(object), earlier.astype(object)


def break_some_rows_zh(rng: np.random.Generator, export: pd.DataFrame) -> None:
    """The Chinese export's bad rows (about 0.2 %): a negative headcount, an empty name, an
    unreadable funding date, an impossible founding date, capital in a currency without a
    conversion rate, and a status word no status table knows."""
    n = len(export)
    picks = rng.choice(n, size=min(n, max(6, n // 500)), replace=False)
    problems = (
        ("参保人数", "-5"),
        ("企业名称", ""),
        ("最近融资时间", "去年春天"),
        ("成立日期", "2015年13月32日"),
        ("注册资本", "500万卢布"),
        ("登记状态", "正常经营中"),
    )
    for j, i in enumerate(picks):
        column, value = problems[j % len(problems)]
        export.at[i, column] = value
