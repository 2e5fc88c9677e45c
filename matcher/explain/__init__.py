"""Explanations of a prospect's rank, in English and Chinese, rendered only from the feature values
that produced the score.

For the landing model the contributions are exact SHAP values in the booster's log-odds
(``base_value + sum(contributions) == model_output``); for the cold-start score they are the
weighted components (``0 + sum == the weighted score before clipping to [0, 1]``). Every reason
states the value it rests on, where the value came from (observed in the source on a date, or
derived by the engine) and how it compares with the other ranked candidates' values ("more than
90% of candidates", "fewer than most candidates"; :func:`~matcher.explain.render.percentile_phrase`).

The package, by job: :mod:`~matcher.explain.labels` (templates, feature names, rounding),
:mod:`~matcher.explain.render` (one value as words, percentiles, evidence),
:mod:`~matcher.explain.assemble` (a ranked prospect's explanation) and
:mod:`~matcher.explain.whatif` (compare, why-not). Explanations are computed from the ranked pool they
are given and the few tables of :class:`~matcher.explain.assemble.ExplainInputs`; nothing here
ranks or reads a catalog.
"""

from matcher.explain.labels import (  # noqa: F401
    COMPARE, COMPARISON, DECIMALS, FEATURE_NAMES_EN, FEATURE_NAMES_ZH, LABELS, OBSERVED, SIGNED, rounded,
)
from matcher.explain.render import (  # noqa: F401
    contribution_rows, contribution_text, evidence_for, evidence_sentences, industry_label, industry_labels,
    industry_text, percentile_phrase, percentile_phrases, reason_text, sorted_population, split_sentences,
)
from matcher.explain.assemble import (  # noqa: F401
    ExplainInputs, cold_start_contributions, explain_ranked, explain_reasons, model_features, top_positions,
)
from matcher.explain.whatif import (  # noqa: F401
    compare_factors, compare_report, factor_scores, why_not_report,
)
