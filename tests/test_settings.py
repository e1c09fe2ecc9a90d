"""Settings come from the environment; production settings pass the deploy checks."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args, **env):
    full_env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY"}}
    full_env.update(DJANGO_SETTINGS_MODULE="registry.settings", **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120
    )


PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "x7Rk2pLq9vNw4sTz8bYc1dFg6hJm3nQr5tUv0wXy2aBc4eDf6gHi8jKl0mNo",
    "ALLOWED_HOSTS": "registry.example.org",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "EMAIL_HOST": "smtp.example.org",
}
DEVELOPMENT = {"DEBUG": "1"}


def test_production_settings_pass_check_deploy_without_warnings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = run_manage("check", **env)
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_environment_selects_database_and_celery_mode():
    code = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER, s.CELERY_BROKER_URL)"
    )
    dev = run_manage("shell", "-v", "0", "-c", code, **DEVELOPMENT)
    assert dev.stdout.split() == ["django.db.backends.sqlite3", "True", "memory://"]
    prod = run_manage("shell", "-v", "0", "-c", code, **PRODUCTION)
    assert prod.stdout.split() == ["django.db.backends.postgresql", "False", "redis://127.0.0.1:6379/0"]


def test_debug_is_off_unless_asked_for():
    code = "from django.conf import settings as s; print(s.DEBUG)"
    unset = run_manage("shell", "-v", "0", "-c", code, **{k: v for k, v in PRODUCTION.items() if k != "DEBUG"})
    assert unset.returncode == 0, unset.stderr
    assert unset.stdout.split() == ["False"]
    # And without production's settings, an unset DEBUG refuses to start rather than run as development.
    bare = run_manage("check")
    assert bare.returncode != 0 and "SECRET_KEY must be set" in bare.stderr


def test_production_refuses_to_start_with_console_email():
    env = {k: v for k, v in PRODUCTION.items() if k != "EMAIL_HOST"}
    result = run_manage("check", **env)
    assert result.returncode != 0
    assert "Email would go to the console with DEBUG off" in result.stderr
    console = run_manage("check", **PRODUCTION, EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend")
    assert console.returncode != 0 and "Email would go to the console" in console.stderr
    # Development may print mail to the console.
    assert run_manage("check", **DEVELOPMENT).returncode == 0


def test_schema_only_commands_need_no_production_secrets():
    # Comparing models with migrations signs and sends nothing; everything else still refuses to start.
    result = run_manage("makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes detected" in result.stdout
    assert "SECRET_KEY must be set" in run_manage("migrate", "--plan").stderr
