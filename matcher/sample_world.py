"""The sample region's fixed world: places (local, the rest of Shanghai, the Yangtze River Delta,
other Chinese cities, abroad) and their shares, legal-form suffixes, qualifications, risk flags and
registry statuses, plus the one draw helper the English generator (:mod:`matcher.sample`) and its
Chinese layer (:mod:`matcher.sample_zh`) share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUALIFICATIONS = (
    ("high-tech enterprise", 0.22),
    ("specialised and sophisticated SME", 0.08),
    ("little giant enterprise", 0.015),
    ("technology-based SME", 0.15),
    ("green factory certification", 0.03),
    ("university spin-off", 0.03),
)
RISK_FLAGS = ("abnormal operation", "administrative penalty", "equity freeze", "court enforcement", "tax arrears")
STATUS = (("存续", 0.86), ("注销", 0.06), ("吊销", 0.02), ("acquired", 0.02), ("listed", 0.04))


@dataclass(frozen=True)
class Place:
    district: str
    city: str
    province: str
    country: str
    lat: float
    lon: float
    region_code: str  # first digits of a unified social credit code


PLACES = {
    "local": [Place("Yangpu", "Shanghai", "Shanghai", "CN", 31.2595, 121.5260, "310110")],
    "shanghai": [
        Place("Pudong", "Shanghai", "Shanghai", "CN", 31.2215, 121.5447, "310115"),
        Place("Minhang", "Shanghai", "Shanghai", "CN", 31.1129, 121.3816, "310112"),
        Place("Xuhui", "Shanghai", "Shanghai", "CN", 31.1885, 121.4365, "310104"),
        Place("Jiading", "Shanghai", "Shanghai", "CN", 31.3747, 121.2655, "310114"),
        Place("Songjiang", "Shanghai", "Shanghai", "CN", 31.0323, 121.2277, "310117"),
    ],
    "yrd": [
        Place("Gusu", "Suzhou", "Jiangsu", "CN", 31.2990, 120.5853, "320508"),
        Place("Xuanwu", "Nanjing", "Jiangsu", "CN", 32.0603, 118.7969, "320102"),
        Place("Binhu", "Wuxi", "Jiangsu", "CN", 31.5500, 120.2700, "320211"),
        Place("Xihu", "Hangzhou", "Zhejiang", "CN", 30.2741, 120.1551, "330106"),
        Place("Yinzhou", "Ningbo", "Zhejiang", "CN", 29.8170, 121.5470, "330212"),
        Place("Shushan", "Hefei", "Anhui", "CN", 31.8206, 117.2272, "340104"),
    ],
    "china": [
        Place("Haidian", "Beijing", "Beijing", "CN", 39.9593, 116.2981, "110108"),
        Place("Nanshan", "Shenzhen", "Guangdong", "CN", 22.5333, 113.9304, "440305"),
        Place("Tianhe", "Guangzhou", "Guangdong", "CN", 23.1246, 113.3612, "440106"),
        Place("Wuhou", "Chengdu", "Sichuan", "CN", 30.6420, 104.0430, "510107"),
        Place("Hongshan", "Wuhan", "Hubei", "CN", 30.5050, 114.4000, "420111"),
        Place("Yanta", "Xi'an", "Shaanxi", "CN", 34.2130, 108.9470, "610113"),
        Place("Siming", "Xiamen", "Fujian", "CN", 24.4450, 118.0820, "350203"),
    ],
    "abroad": [
        Place("", "Singapore", "Singapore", "SG", 1.3521, 103.8198, ""),
        Place("", "Munich", "Bavaria", "DE", 48.1351, 11.5820, ""),
        Place("", "San Jose", "California", "US", 37.3382, -121.8863, ""),
        Place("", "Boston", "Massachusetts", "US", 42.3601, -71.0589, ""),
        Place("", "Tokyo", "Tokyo", "JP", 35.6762, 139.6503, ""),
        Place("", "Seoul", "Seoul", "KR", 37.5665, 126.9780, ""),
        Place("", "London", "England", "GB", 51.5072, -0.1276, ""),
        Place("", "Tel Aviv", "Tel Aviv", "IL", 32.0853, 34.7818, ""),
    ],
}
# Legal-form suffixes that fit each country.
SUFFIXES_BY_COUNTRY = {
    "US": ("Inc.", "Corp.", "LLC"), "DE": ("GmbH", "AG"), "GB": ("Ltd.", "PLC"), "SG": ("Pte. Ltd.",),
    "JP": ("K.K.", "Co., Ltd."), "KR": ("Co., Ltd.", "Inc."), "IL": ("Ltd.",),
}
PLACE_SHARES = {"local": 0.10, "shanghai": 0.14, "yrd": 0.26, "china": 0.34, "abroad": 0.16}


def pick(rng: np.random.Generator, items, k: int = 1) -> list:
    """``k`` distinct items of ``items`` (all of them when there are fewer), in draw order."""
    idx = rng.choice(len(items), size=min(k, len(items)), replace=False)
    return [items[i] for i in idx]
