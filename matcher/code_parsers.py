"""Parsers for the coded cells of registry exports: the province-or-country cell (所属省份: a
mainland province -> ``CN``, a place abroad -> its ISO code) and GB/T 4754-2017 industry codes
(``I6513 应用软件开发`` -> ``I6513``). Like :mod:`matcher.parsers`, each returns a clean value, ``None``
for a missing cell, or a :class:`matcher.parsers.ParseFailure` with the reason.

Examples
--------
>>> parse_country("江苏省", {})
'CN'
>>> parse_industry_code("6513")
'I6513'
"""

from __future__ import annotations

import re
from typing import Any

from matcher.parsers import ParseFailure, is_missing, number_or_none

# GB/T 4754-2017: the two-digit division number decides the section letter.
SECTION_OF_DIVISION = [
    ("A", 1, 5), ("B", 6, 12), ("C", 13, 43), ("D", 44, 46), ("E", 47, 50), ("F", 51, 52),
    ("G", 53, 60), ("H", 61, 62), ("I", 63, 65), ("J", 66, 69), ("K", 70, 70), ("L", 71, 72),
    ("M", 73, 75), ("N", 76, 79), ("O", 80, 82), ("P", 83, 83), ("Q", 84, 85), ("R", 86, 90),
    ("S", 91, 96), ("T", 97, 97),
]
_INDUSTRY_CODE = re.compile(r"^\s*[\[【(（]?\s*([A-Ta-t])?\s*(\d{2,4})?\s*[\]】)）]?(?=\s|[\u3000-\u9fff]|$)")


# ------------------------------------------------------------------------------------ country

# China's provincial-level divisions as registry exports write them (with or without 省/市/自治区).
CHINESE_PROVINCES = frozenset({
    "北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江", "安徽", "福建",
    "江西", "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州", "云南", "陕西", "甘肃", "青海",
    "内蒙古", "广西", "西藏", "宁夏", "新疆",
})
# Places abroad (and the special administrative regions, their own ISO codes) as Chinese exports
# name them in 所属省份 for firms registered outside the mainland; a mapping's ``values`` adds more.
COUNTRY_NAMES = {
    "香港": "HK", "中国香港": "HK", "香港特别行政区": "HK", "澳门": "MO", "中国澳门": "MO", "澳门特别行政区": "MO",
    "台湾": "TW", "中国台湾": "TW", "台湾省": "TW", "美国": "US", "德国": "DE", "英国": "GB", "法国": "FR",
    "日本": "JP", "韩国": "KR", "新加坡": "SG", "以色列": "IL", "瑞士": "CH", "荷兰": "NL", "瑞典": "SE",
    "意大利": "IT", "加拿大": "CA", "澳大利亚": "AU", "比利时": "BE", "丹麦": "DK", "芬兰": "FI", "挪威": "NO",
    "奥地利": "AT", "西班牙": "ES", "爱尔兰": "IE", "印度": "IN", "马来西亚": "MY", "泰国": "TH", "越南": "VN",
    "印度尼西亚": "ID", "阿联酋": "AE", "沙特阿拉伯": "SA", "新西兰": "NZ", "卢森堡": "LU", "开曼群岛": "KY",
    "英属维尔京群岛": "VG",
}
_PROVINCE_SUFFIX = re.compile(r"(省|市|自治区|壮族自治区|回族自治区|维吾尔自治区)$")
_ISO_COUNTRY = re.compile(r"^[A-Z]{2}$")


def parse_country(value: Any, table: dict[str, str]) -> str | ParseFailure | None:
    """The ISO 3166 country code of a province-or-country cell (所属省份 of a Chinese export):
    ``CN`` for a mainland province, the code of a place abroad (``德国`` -> ``DE``, ``香港`` -> ``HK``),
    or an ISO code as given. ``table`` (the mapping's ``values``) is consulted first."""
    if is_missing(value):
        return None
    text = str(value).strip()
    if text in table:
        return table[text]
    if text in COUNTRY_NAMES:
        return COUNTRY_NAMES[text]
    if _PROVINCE_SUFFIX.sub("", text) in CHINESE_PROVINCES or text.removesuffix("省") in CHINESE_PROVINCES:
        return "CN"
    if _ISO_COUNTRY.match(text.upper()) and text.isascii():
        return text.upper()
    return ParseFailure(value, f"'{text}' is neither a Chinese province nor a known country; "
                               "add it to the column's values in the mapping (name: ISO code)")


# ----------------------------------------------------------------------------- industry codes


def section_of_division(division: int) -> str | None:
    """The GB/T 4754-2017 section letter of a two-digit division (65 -> ``I``)."""
    for letter, low, high in SECTION_OF_DIVISION:
        if low <= division <= high:
            return letter
    return None


def parse_industry_code(value: Any) -> str | ParseFailure | None:
    """A GB/T 4754-2017 (or CSRC) industry code from a code-and-name cell.

    ``I6513 应用软件开发`` -> ``I6513``; ``I65`` -> ``I65``; ``I 信息传输、软件和信息技术服务业``
    -> ``I``; ``6513`` (digits only) -> ``I6513`` (the section follows from the division).
    """
    if is_missing(value):
        return None
    number = number_or_none(value)
    text = str(int(number)) if number is not None and float(number).is_integer() else str(value).strip()
    found = _INDUSTRY_CODE.match(text)
    if not found or not (found.group(1) or found.group(2)):
        return ParseFailure(value, "not a GB/T 4754 industry code (like I6513 or I65)")
    letter, digits = (found.group(1) or "").upper(), found.group(2) or ""
    if digits and not letter:
        # The CSRC classification (S90 综合) and older GB/T editions put a few divisions in
        # other sections, so a letter the source gives is kept; a missing one is inferred.
        letter = section_of_division(int(digits[:2])) or ""
        if not letter:
            return ParseFailure(value, f"industry division {digits[:2]} does not exist in GB/T 4754-2017")
    return letter + digits
