"""Pure statistical functions for the registry (no Django, no database).

Used by the REST API's stats endpoints and the monthly PDF reports.  Every
method follows ``shared/domain/STATISTICS.md`` and is tested against published
known answers (``tests/test_statistics_*.py``).

Modules:
    proportions  -- Wilson and Clopper–Pearson intervals for a rate
    funnel       -- Spiegelhalter (2005) funnel plot limits and over-dispersion
    cusum        -- Steiner et al. (2000) Bernoulli / risk-adjusted CUSUM
    survival     -- Kaplan–Meier (with delayed entry), median and its CI, log-rank
    competing_risks -- Aalen–Johansen cumulative incidence (with delayed entry), IJ variance
    suppression  -- small-cell suppression with complementary suppression
"""

from .competing_risks import CumulativeIncidenceResult, aalen_johansen, cumulative_incidence_at
from .cusum import (
    CusumChart,
    cusum_arl_by_simulation,
    cusum_chart,
    cusum_scores,
    cusum_threshold_by_simulation,
    cusum_weight,
    parsonnet_risk,
)
from .funnel import (
    funnel_bands,
    funnel_limits,
    funnel_position,
    funnel_z_scores,
    normal_limits,
    overdispersion_phi,
)
from .proportions import clopper_pearson_interval, proportion_summary, wilson_interval
from .suppression import suppress_small_counts
from .survival import KaplanMeierResult, kaplan_meier, log_rank, survival_at

__all__ = [
    "CumulativeIncidenceResult",
    "CusumChart",
    "KaplanMeierResult",
    "aalen_johansen",
    "clopper_pearson_interval",
    "cumulative_incidence_at",
    "cusum_arl_by_simulation",
    "cusum_chart",
    "cusum_scores",
    "cusum_threshold_by_simulation",
    "cusum_weight",
    "funnel_bands",
    "funnel_limits",
    "funnel_position",
    "funnel_z_scores",
    "kaplan_meier",
    "log_rank",
    "normal_limits",
    "overdispersion_phi",
    "parsonnet_risk",
    "proportion_summary",
    "suppress_small_counts",
    "survival_at",
    "wilson_interval",
]
