"""Account pages, mounted at /account/ (registry.urls): login, two-factor enrolment, recovery codes, logout."""

from django.urls import path

from . import authentication

app_name = "account"
urlpatterns = [
    path("", authentication.AccountHomeView.as_view(), name="home"),
    path("login/", authentication.LoginView.as_view(), name="login"),
    path("logout/", authentication.LogoutView.as_view(), name="logout"),
    path("two-factor/", authentication.TwoFactorView.as_view(), name="two-factor"),
    path("two-factor/recovery-codes/", authentication.RecoveryCodesView.as_view(), name="recovery-codes"),
]
