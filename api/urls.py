from django.urls import include, path
from rest_framework.routers import DefaultRouter

from . import analysis, stats, views
from .releases import ReleaseViewSet
from .schema_views import DocsView, SchemaView

router = DefaultRouter()
router.register("centres", views.CentreViewSet, basename="centre")
router.register("surgeons", views.SurgeonViewSet, basename="surgeon")
router.register("patients", views.PatientViewSet, basename="patient")
router.register("implantations", views.ImplantationViewSet, basename="implantation")
router.register("treatments", views.TreatmentViewSet, basename="treatment")
router.register("complications", views.ComplicationViewSet, basename="complication")
router.register("follow-ups", views.FollowUpViewSet, basename="follow-up")
router.register("liver-tests", views.LiverTestViewSet, basename="liver-test")
router.register("perfusion-checks", views.PerfusionCheckViewSet, basename="perfusion-check")
router.register("systemic-toxicities", views.SystemicToxicityViewSet, basename="systemic-toxicity")
router.register("readmissions", views.ReadmissionViewSet, basename="readmission")
router.register("systemic-therapy-lines", views.SystemicTherapyLineViewSet, basename="systemic-therapy-line")
router.register("reports", views.CentreReportViewSet, basename="report")
router.register("data-queries", views.DataQueryViewSet, basename="data-query")
router.register("vocabularies/complication-types", views.ComplicationTypeViewSet, basename="complication-type")
router.register("pump-models", views.PumpModelViewSet, basename="pump-model")
router.register("releases", ReleaseViewSet, basename="release")

app_name = "api"
urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="token"),
    path("auth/token/revoke/", views.RevokeTokenView.as_view(), name="token-revoke"),
    path("auth/token/revoke-all/", views.RevokeAllTokensView.as_view(), name="token-revoke-all"),
    path("vocabularies/", views.VocabularyView.as_view(), name="vocabularies"),
    path("data-dictionary/", views.DataDictionaryView.as_view(), name="data-dictionary"),
    path("stats/complications/", stats.ComplicationStatsView.as_view(), name="stats-complications"),
    path("stats/pump-use/", stats.PumpUseStatsView.as_view(), name="stats-pump-use"),
    path("stats/survival/", stats.SurvivalStatsView.as_view(), name="stats-survival"),
    path(
        "stats/cumulative-incidence/", stats.CumulativeIncidenceStatsView.as_view(), name="stats-cumulative-incidence"
    ),
    path("stats/observed-expected/", stats.ObservedExpectedStatsView.as_view(), name="stats-observed-expected"),
    path("stats/concordance/", stats.ConcordanceStatsView.as_view(), name="stats-concordance"),
    path("stats/readmissions/", stats.ReadmissionStatsView.as_view(), name="stats-readmissions"),
    path("analysis-dataset/", analysis.AnalysisDatasetView.as_view(), name="analysis-dataset"),
    path(
        "analysis-dataset/dictionary/",
        analysis.AnalysisDatasetDictionaryView.as_view(),
        name="analysis-dataset-dictionary",
    ),
    # The API's description is for its users only: it names every filter an attacker would try.
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", DocsView.as_view(url_name="api:schema"), name="docs"),
    path("", include(router.urls)),
]
