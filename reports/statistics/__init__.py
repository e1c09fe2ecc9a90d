"""Pure statistical functions for the registry (no Django, no database).

Used by the REST API's stats endpoints and the monthly PDF reports.  Every
method follows ``shared/domain/STATISTICS.md`` and is tested against published
known answers (``tests/test_statistics_*.py``).

Modules:
    proportions  -- Wilson and Clopper–Pearson intervals for a rate
    funnel       -- Spiegelhalter (2005) funnel plot limits and over-dispersion
    cusum        -- Steiner et al. (2000) Bernoulli / risk-adjusted CUSUM, fixed control limit, VLAD
    observed_expected -- O/E: Ulm's exact interval, Poisson funnel limits (Spiegelhalter 2005),
                    exact one-sided flags, DerSimonian–Laird between-centre variance
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
    fixed_control_limit,
    parsonnet_risk,
    vlad,
)
from .funnel import (
    funnel_bands,
    funnel_limits,
    funnel_position,
    funnel_z_scores,
    normal_limits,
    overdispersion_phi,
)
from .observed_expected import (
    binomial_flag,
    dersimonian_laird,
    log_normal_funnel_limits,
    poisson_flag,
    poisson_funnel_bands,
    poisson_funnel_limits,
    poisson_ratio_interval,
    tau2_log_ratio,
    tau2_logit,
)
from .proportions import clopper_pearson_interval, proportion_summary, wilson_interval
from .suppression import suppress_small_counts
from .survival import KaplanMeierResult, kaplan_meier, log_rank, survival_at

__all__ = [
    "CumulativeIncidenceResult",
    "CusumChart",
    "KaplanMeierResult",
    "aalen_johansen",
    "binomial_flag",
    "clopper_pearson_interval",
    "cumulative_incidence_at",
    "cusum_arl_by_simulation",
    "cusum_chart",
    "cusum_scores",
    "cusum_threshold_by_simulation",
    "cusum_weight",
    "dersimonian_laird",
    "fixed_control_limit",
    "funnel_bands",
    "funnel_limits",
    "funnel_position",
    "funnel_z_scores",
    "kaplan_meier",
    "log_normal_funnel_limits",
    "log_rank",
    "normal_limits",
    "overdispersion_phi",
    "parsonnet_risk",
    "poisson_flag",
    "poisson_funnel_bands",
    "poisson_funnel_limits",
    "poisson_ratio_interval",
    "proportion_summary",
    "suppress_small_counts",
    "survival_at",
    "tau2_log_ratio",
    "tau2_logit",
    "vlad",
    "wilson_interval",
]
