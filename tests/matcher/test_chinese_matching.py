"""Chinese matching (issue 10): tokenizer, language detection, industry codes, lexical placement of
needs, segment assignment against Chinese segment texts, evidence clauses, reasons in both languages."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import bm25s
import numpy as np
import pandas as pd
import pytest

from matcher import schemas as S
from matcher.catalog import Catalog
from matcher.chain_map import ChainMap
from matcher.chains import (
    FEEDBACK_DOCS, analyse_chains, chain_words, code_profile, code_profile_match, industry_code_match,
    industry_code_table, industry_divisions, normalise_industry_code,
)
from matcher.errors import ArtifactCorruptError
from matcher.explain import evidence_sentences, industry_label, reason_text, split_sentences
from matcher.features import FEATURES, MONOTONIC
from matcher.lexical import TOKENIZER_FILE, LexicalIndex, chinese_words, text_language, tokenize
from matcher.ranking import component_scores

SCOPE = ("一般项目：集成电路芯片设计及服务；软件开发；技术服务、技术开发。（除依法须经批准的项目外，凭营业执照依法自主开展"
         "经营活动）许可项目：第二类增值电信业务。（依法须经批准的项目，经相关部门批准后方可开展经营活动，具体经营项目以相关部门"
         "批准文件或许可证件为准）")

FIRMS = [
    "上海快充新能源科技有限公司。电动汽车充电桩的建设与运营；充电设施运营管理；新能源汽车充换电服务。",
    "杭州电桩能源有限公司。充电桩运营服务，集中式快速充电站，充电桩销售与安装。",
    "深圳某某电子商务有限公司。网络零售平台运营，直播电商服务，电子商务代运营。",
    "北京芯算科技有限公司。集成电路芯片设计，AI芯片与GPU研发，芯片销售。",
    "苏州生物医药有限公司。创新药研发，CDMO服务，临床试验技术服务。",
    "Acme Robotics. Delivery robots with lidar perception for warehouses.",
]


def test_chinese_text_is_segmented_into_words_and_bigrams():
    tokens = tokenize(["集成电路芯片设计企业"])[0]

    assert {"集成电路", "芯片", "设计"} <= set(tokens)
    assert "集成电路芯片设计企业" not in tokens  # not one token per run of characters
    assert "芯片" in tokens and "片设" in tokens  # character bigrams added to the words


def test_business_scope_boilerplate_and_numbering_are_dropped():
    tokens = set(tokenize([SCOPE])[0])
    numbered = set(tokenize(["（一）吸收公众存款；（二）发放短期贷款；1、办理结算"])[0])

    assert {"芯片", "软件开发", "电信"} & tokens
    for boilerplate in ("一般", "项目", "许可", "营业执照", "依法", "批准", "经营活动", "证件"):
        assert boilerplate not in tokens
    assert {"吸收", "存款", "贷款", "结算"} <= numbered
    assert not {"一", "二", "1"} & numbered


def test_latin_terms_inside_chinese_text_stay_tokens():
    tokens = set(tokenize(["提供AI芯片、GPU服务器、SaaS平台及CDMO服务"])[0])

    for term in ("AI", "GPU", "SaaS", "CDMO"):
        assert tokenize([term])[0][0] in tokens  # the English pipeline's token for it


def test_english_text_tokenises_exactly_as_the_english_pipeline():
    texts = ["The Sensors and the Sensor", "Acme. Solid-state LiDAR sensors for autonomous driving.",
             "CDMO services; GMP manufacturing (biologics), 2024!", ""]
    english = bm25s.tokenize(texts, stopwords="en", stemmer=__import__("Stemmer").Stemmer("english"),
                             return_ids=False, show_progress=False)

    assert tokenize(texts) == [list(t) for t in english]
    mixed = tokenize(["充电桩运营", "The Sensors and the Sensor"])  # a mixed batch changes nothing
    assert mixed[1] == ["sensor", "sensor"]


def test_chain_keywords_join_the_segmenter_dictionary():
    text = "化成分容设备制造"
    words = chinese_words(["化成分容", "AI芯片", "x"])

    assert words == ("化成分容", "芯片")
    assert "化成分容" in tokenize([text], words)[0]
    assert "化成分容" not in tokenize([text])[0]


def test_chain_words_are_the_segments_chinese_keywords():
    data = copy.deepcopy(MAP_ZH)
    assert chain_words(ChainMap.model_validate(data)) == ["充电桩", "充电站", "直播电商", "网络零售"]


@pytest.mark.parametrize("text, lang", [
    ("招引CPU、GPU、AI芯片、FPGA等数字芯片设计企业", "zh"),
    ("充电桩运营", "zh"),
    ("Fermentation-based production of enzymes", "en"),
    ("Acme Robotics (上海) builds delivery robots for warehouses and factories", "en"),
    ("", "en"),
])
def test_language_is_decided_by_the_share_of_cjk_characters(text, lang):
    assert text_language(text) == lang


def test_a_chinese_need_ranks_the_right_firms_first():
    index = LexicalIndex.build(FIRMS)

    scores = index.scores(index.query_tokens("充电桩运营企业"))
    chips = index.scores(index.query_tokens("招引AI芯片设计企业"))

    assert set(np.argsort(-scores)[:2]) == {0, 1}
    assert scores[2:].max() < scores[:2].min()
    assert int(np.argmax(chips)) == 3
    assert index.scores(index.query_tokens("lidar robots"))[5] > 0  # English still found in a mixed corpus


def test_tokenizer_identity_is_saved_and_checked(tmp_path):
    index = LexicalIndex.build(FIRMS, words=["充电桩"])
    index.save(tmp_path / "lexical")

    loaded = LexicalIndex.load(tmp_path / "lexical")
    assert loaded.tokenizer == index.tokenizer and loaded.words == ("充电桩",)
    np.testing.assert_array_equal(loaded.scores(loaded.query_tokens("充电桩运营")), index.scores(index.query_tokens("充电桩运营")))

    saved = json.loads((tmp_path / "lexical" / TOKENIZER_FILE).read_text())
    (tmp_path / "lexical" / TOKENIZER_FILE).write_text(json.dumps({**saved, "id": "other-tokenizer"}))
    with pytest.raises(ArtifactCorruptError, match="other-tokenizer.*matcher build"):
        LexicalIndex.load(tmp_path / "lexical")


def test_an_index_saved_without_identity_loads_as_english_only_and_refuses_chinese_vocabulary(tmp_path):
    english = LexicalIndex.build(FIRMS[5:])
    english.retriever.save(str(tmp_path / "en"), show_progress=False)  # as saved before identities
    assert LexicalIndex.load(tmp_path / "en").tokenizer == "en-1"

    old = bm25s.BM25()
    old.index([["充电桩运营服务"], ["sensor"]], show_progress=False)  # whole runs as tokens, as before
    old.save(str(tmp_path / "old"), show_progress=False)
    with pytest.raises(ArtifactCorruptError, match="without Chinese segmentation"):
        LexicalIndex.load(tmp_path / "old")


@pytest.mark.parametrize("firm, segment, expected", [
    ("I6513", ["I65"], 1.0),
    ("I6513", ["I6513", "C39"], 1.0),
    ("I65", ["I6513"], 0.5),  # division-level source (CSRC): same division, class unconfirmed
    ("C39", ["I65", "I6513"], 0.0),
    ("软件开发 I6513", ["I65"], 1.0),
    (None, ["I65"], None),
    ("I", ["I65"], None),  # a section letter alone is no evidence
    ("I65", [], None),
])
def test_industry_codes_match_by_prefix(firm, segment, expected):
    value = industry_code_match(firm, segment)
    if expected is None:
        assert np.isnan(value)
    else:
        assert value == expected


def test_industry_code_table_matches_each_firm_with_each_segment():
    chain_map = ChainMap.model_validate(copy.deepcopy(MAP_ZH))
    index, table = industry_code_table(["F5292", "I65", None, "C39"], chain_map)
    matrix = table[index]

    assert matrix.shape == (4, 2)
    assert matrix[0].tolist() == [0.0, 1.0]  # F5292 within F52 (online retail)
    assert np.isnan(matrix[2]).all()
    assert normalise_industry_code(" i6513 ") == "I6513"


MAP_ZH = {
    "region": {"id": "testville", "name": "Testville", "city": "Shanghai", "province": "Shanghai", "country": "CN",
               "lat": 31.0, "lon": 121.0},
    "chains": [{
        "id": "green", "name": "Green", "kind": "emerging", "leader": "Mayor",
        "segments": [
            {"id": "charging", "name": "EV charging", "name_zh": "充电设施", "stage": "downstream",
             "description": "Companies that build and operate EV charging stations.",
             "description_zh": "电动汽车充电桩、充电站的建设与运营，充换电服务。", "keywords_zh": ["充电桩", "充电站"],
             "industry_codes": ["D44", "O81"]},
            {"id": "ecommerce", "name": "E-commerce", "name_zh": "电子商务", "stage": "downstream",
             "description": "Online retail platforms and live-streaming commerce.",
             "description_zh": "网络零售平台运营，直播电商，电子商务代运营服务。", "keywords_zh": ["直播电商", "网络零售"],
             "industry_codes": ["F52", "I64"]},
        ],
    }],
}


def test_a_chinese_need_is_placed_on_the_segment_of_its_chinese_text():
    chain_map = ChainMap.model_validate(copy.deepcopy(MAP_ZH))
    index = LexicalIndex.build(FIRMS, words=chain_words(chain_map))
    # The embedding points at the wrong segment: an English model reading Chinese is near noise.
    catalog = SimpleNamespace(
        chain_map=chain_map, lexical=index, dense_weight_zh=0.0,
        segment_vectors=np.array([[1.0, 0.0], [0.0, 1.0]], np.float32),
        segments=pd.DataFrame({"similarity_mean": [0.0, 0.0], "similarity_sd": [1.0, 1.0]}),
    )
    vector = np.array([0.0, 1.0], np.float32)

    assert Catalog.need_as_gap(catalog, "充电桩运营企业", vector)["segment_id"] == "charging"
    assert Catalog.need_as_gap(catalog, "直播电商服务商", np.array([1.0, 0.0], np.float32))["segment_id"] == "ecommerce"
    assert Catalog.need_as_gap(catalog, "EV charging operators", vector)["segment_id"] == "ecommerce"  # English: embedding


def test_chinese_local_firms_are_assigned_by_their_chinese_similarity_and_codes_count():
    chain_map = ChainMap.model_validate(copy.deepcopy(MAP_ZH))
    local = pd.DataFrame({S.ENTERPRISE_ID: ["zh1", "zh2", "en1"], S.NAME: ["快充", "电商", "Acme"]})
    # Embedding z says the opposite of the Chinese texts for the Chinese firms.
    vectors = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]], np.float32)
    segment_vectors = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    stats = (np.zeros(2, np.float32), np.full(2, 0.3, np.float32))
    chinese_z = np.array([[4.0, 0.0], [0.0, 2.2], [np.nan, np.nan]], np.float32)
    codes = np.array([[np.nan, np.nan], [0.0, 1.0], [np.nan, np.nan]], np.float32)

    plain = analyse_chains(chain_map, local, vectors, segment_vectors, stats, 2.5, 0.25, 1, 0.35)
    by_language = analyse_chains(chain_map, local, vectors, segment_vectors, stats, 2.5, 0.25, 1, 0.35,
                                 chinese=np.array([True, True, False]), chinese_z=chinese_z)
    with_codes = analyse_chains(chain_map, local, vectors, segment_vectors, stats, 2.5, 0.25, 1, 0.35,
                                chinese=np.array([True, True, False]), chinese_z=chinese_z, code_match=codes)

    def pairs(analysis):
        return set(zip(analysis.assignments[S.ENTERPRISE_ID], analysis.assignments["segment_id"]))

    assert ("zh1", "ecommerce") in pairs(plain)
    assert pairs(by_language) == {("zh1", "charging"), ("en1", "charging")}  # zh2 at 2.2: below the threshold
    assert pairs(with_codes) == {("zh1", "charging"), ("zh2", "ecommerce"), ("en1", "charging")}  # the code tips it


def test_evidence_quotes_a_clause_of_the_business_scope():
    clauses = split_sentences(SCOPE)
    evidence = evidence_sentences(SCOPE, "集成电路芯片设计企业")

    assert len(clauses) >= 3
    assert evidence and "芯片" in evidence[0] and len(evidence[0]) < len(SCOPE) / 2
    assert all(e in SCOPE for e in evidence)
    assert split_sentences("Acme builds LiDAR. It sells to carmakers; mostly abroad today.") == [
        "Acme builds LiDAR.", "It sells to carmakers;", "mostly abroad today."]


def test_industry_code_feature_is_appended_and_monotone():
    assert FEATURES[-1] == "industry_code_match"
    assert FEATURES[:26][-1] != "industry_code_match" and MONOTONIC["industry_code_match"] == 1


def test_industry_code_reason_reads_in_both_languages():
    assert reason_text("industry_code_match", 1.0, "en") == "industry code matches this segment's industry codes"
    assert reason_text("industry_code_match", 1.0, "zh") == "国标行业代码与该环节的行业代码相符"
    firm = industry_label("I6513", "I6513 应用软件开发")  # the registry's text repeats the code
    assert firm == "I6513 应用软件开发" and industry_label("I65", "软件和信息技术服务业") == "I65 软件和信息技术服务业"
    assert industry_label(None, "软件") is None and industry_label("C39", None) == "C39"
    assert (reason_text("industry_code_match", 1.0, "en", firm)
            == "industry code I6513 应用软件开发 matches this segment's industry codes")
    assert reason_text("industry_code_match", 1.0, "zh", firm) == "国标行业代码 I6513 应用软件开发 与该环节的行业代码相符"
    # A free-text need has no segment: the value is the share of its best matches in the firm's division.
    assert (reason_text("industry_code_match", 0.4, "en", firm, search=True)
            == "industry code I6513 应用软件开发: its division holds 40% of the need's best text matches")
    assert "40%" in reason_text("industry_code_match", 0.4, "zh", firm, search=True)
    assert "segment" not in reason_text("industry_code_match", 0.0, "en", firm, search=True)
    assert "division" in reason_text("industry_code_match", 0.5, "en")
    assert "大类" in reason_text("industry_code_match", 0.5, "zh")
    assert "outside" in reason_text("industry_code_match", 0.0, "en")
    assert reason_text("industry_code_match", float("nan"), "zh") == "国标行业代码：未披露"


def _features(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    frame = pd.DataFrame({name: np.full(n, np.nan) for name in FEATURES})
    for name, values in columns.items():
        frame[name] = np.asarray(values, float)
    return frame


def test_fit_without_a_dense_similarity_rests_on_lexical_and_industry_code():
    features = _features(lexical_z=[6.0, 6.0, 2.0], industry_code_match=[1.0, 0.0, 1.0])

    fit = component_scores(features)["fit_score"].to_numpy()

    assert fit[0] > fit[1] and fit[0] > fit[2]
    unknown_code = component_scores(_features(lexical_z=[6.0], industry_code_match=[np.nan]))["fit_score"].iloc[0]
    assert fit[1] < unknown_code < fit[0]  # an unknown code is neither a match nor a mismatch


def test_build_warns_once_about_an_english_model_over_mostly_chinese_profiles():
    from pipelines.build_index import language_note

    note = language_note("all-MiniLM-L6-v2", 0.97)

    assert note and "MATCHER_EMBEDDING_MODEL" in note and "lexical and industry-code" in note and "97%" in note
    assert language_note("all-MiniLM-L6-v2", 0.2) is None  # mostly English
    assert language_note("/models/bge-small-zh", 0.97) is None  # a model that reads Chinese


# --- Chinese relevance: BM25 + TF-IDF cosine; industry profile of a free-text need -----------------

LONG_SCOPE = ("宁波综合贸易有限公司。服装销售；五金产品批发；建筑材料销售；日用百货销售；充电桩销售；化工产品销售；"
              "机械设备租赁；物业管理；广告设计；会议及展览服务；货物进出口；食品销售；家具销售；办公用品销售。")


def test_a_chinese_corpus_gets_a_tfidf_cosine_and_an_english_one_does_not():
    chinese = LexicalIndex.build(FIRMS)
    english = LexicalIndex.build(["Acme Robotics. Delivery robots.", "Beta Bio. Enzymes for food companies."])

    assert chinese.tfidf is not None and english.tfidf is None
    tokens = english.query_tokens("delivery robots")
    np.testing.assert_array_equal(english.relevance(tokens, chinese=True), english.scores(tokens))
    tokens = chinese.query_tokens("lidar robots")
    np.testing.assert_array_equal(chinese.relevance(tokens, chinese=False), chinese.scores(tokens))


def test_the_cosine_is_length_normalised():
    profile = "上海快充新能源科技有限公司。电动汽车充电桩的建设与运营；充电设施运营管理。"
    index = LexicalIndex.build([profile, profile * 3, LONG_SCOPE, FIRMS[3]])
    matrix = index.tfidf.matrix
    cosine = index.tfidf.scores(index.query_tokens("充电桩运营"), index.retriever.vocab_dict)

    np.testing.assert_allclose(np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel()), 1.0, rtol=1e-5)
    bm25 = index.scores(index.query_tokens("充电桩运营"))
    assert bm25[1] > bm25[0] and cosine[1] < 1.1 * cosine[0]  # BM25 rewards repetition; the cosine hardly
    assert cosine[2] < cosine[0]  # one item among fourteen in a trading firm's scope
    assert cosine[3] == 0


def test_chinese_relevance_ranks_a_focused_profile_above_a_scope_that_lists_the_need():
    index = LexicalIndex.build(FIRMS + [LONG_SCOPE])
    relevance = index.relevance(index.query_tokens("充电桩运营企业"), chinese=True)

    assert set(np.argsort(-relevance, kind="stable")[:2]) == {0, 1}
    assert relevance[len(FIRMS)] < relevance[:2].min()
    assert relevance.dtype == np.float32 and relevance.shape == (len(FIRMS) + 1,)


def test_the_tfidf_cosine_round_trips(tmp_path):
    index = LexicalIndex.build(FIRMS + [LONG_SCOPE], words=["充电桩"])
    index.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path)

    for need in ("充电桩运营企业", "招引AI芯片设计企业", "CDMO服务"):
        tokens = index.query_tokens(need)
        np.testing.assert_array_equal(loaded.relevance(tokens, chinese=True), index.relevance(tokens, chinese=True))


def test_industry_divisions_are_the_section_letter_and_two_digits():
    index, divisions = industry_divisions(["C3971", "I65", None, "软件开发 I6513", "C", "C39"])

    assert [divisions[i] for i in index] == ["C39", "I65", None, "I65", None, "C39"]


def test_a_need_s_code_profile_weighs_divisions_by_their_share_of_the_best_matches():
    profile = code_profile(["C39", "C39", "I65", None, "C39", "C35"])

    assert profile == {"C39": 1.0, "I65": pytest.approx(1 / 3), "C35": pytest.approx(1 / 3)}
    assert code_profile([None, None]) == {}
    match = code_profile_match(["C39", "I65", None, "M74"], profile)
    assert match[0] == 1.0 and match[1] == pytest.approx(1 / 3) and np.isnan(match[2]) and match[3] == 0.0
    assert np.isnan(code_profile_match(["C39"], {})).all()  # no codes among the matches: unknown, not a mismatch


def test_a_search_takes_its_industry_codes_from_its_best_matches_and_a_gap_from_its_segment():
    index, divisions = industry_divisions(["C27", "C27", "I65", None] + ["R87"] * 20)
    catalog = SimpleNamespace(context=SimpleNamespace(division_index=index, divisions=divisions))
    found = SimpleNamespace(rows=np.array([0, 1, 2, 3] + list(range(4, 20))))

    profile = Catalog.need_codes(catalog, {"kind": "search"}, found)
    assert profile["R87"] == 1.0 and profile["C27"] == pytest.approx(2 / 6)  # the first FEEDBACK_DOCS only
    assert set(profile) == {"C27", "I65", "R87"} and FEEDBACK_DOCS == 10
    assert Catalog.need_codes(catalog, {"kind": "missing", "segment_id": "x"}, found) is None
