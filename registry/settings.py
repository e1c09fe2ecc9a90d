"""Settings come from the environment; the defaults are for development only.

Production sets DEBUG=0, SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL and REDIS_URL.
"""

import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


# Off unless asked for: `make run` and the tests turn it on, production never does (fail closed).
DEBUG = env_bool("DEBUG", False)

# `manage.py makemigrations` / `sqlmigrate` only compare model definitions with migrations: they sign
# nothing, serve nothing and send nothing, so they load without production's secrets (a throw-away key,
# no mail). Decided from the command line, not from an environment variable an operator could leave set.
SCHEMA_ONLY_COMMANDS = {"makemigrations", "sqlmigrate"}
SCHEMA_ONLY = Path(sys.argv[0]).name == "manage.py" and len(sys.argv) > 1 and sys.argv[1] in SCHEMA_ONLY_COMMANDS

_DEVELOPMENT_SECRET = "dev-only-insecure-secret-key-do-not-use-in-production-0123456789"
SECRET_KEY = os.environ.get("SECRET_KEY", _DEVELOPMENT_SECRET if DEBUG else "")
if not SECRET_KEY and SCHEMA_ONLY:
    SECRET_KEY = secrets.token_urlsafe(50)
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (for development, set DEBUG=1).")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# The address users log in at, for links in emails (the stored report); the first trusted origin otherwise.
SITE_URL = os.environ.get("SITE_URL", "")

INSTALLED_APPS = [
    "registry.admin_apps.RegistryAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "import_export",
    "rangefilter",
    "django_celery_beat",
    # Logins: lock-out after repeated failures; two-factor (authenticator apps, recovery codes).
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "sites",
    "registry",
    "api",
    "reports",
]

MIDDLEWARE = [
    # First: every later middleware's log lines carry the request id too (registry.logs).
    "registry.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "sites.sessions.SessionTimeoutMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Writes one sites.RecordRead per request that read patients' records (sites.reads), after the response.
    "sites.reads.ReadLogMiddleware",
    # request.user.is_verified(): has this session given its second factor?
    "django_otp.middleware.OTPMiddleware",
    # With REQUIRE_2FA, a session that has not given it reaches only /account/ (sites.authentication).
    "sites.authentication.TwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Records the request's user on every history row written during the request.
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last: turns a login refused by the lock-out into the lock-out page (AXES_LOCKOUT_CALLABLE).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "registry.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "registry.wsgi.application"

# Without DATABASE_URL a newcomer gets an embedded SQLite file; tests and
# production name PostgreSQL.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        # A kept connection is checked (SELECT 1) before a request reuses it: after PostgreSQL restarts,
        # the first request of each thread works instead of failing on a dead socket (issue 17, item 6).
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # No JIT: the registry's queries are short pages and one-row lookups, and a page whose planner cost
    # crosses jit_above_cost spent ~45 ms compiling for a 5 ms query at 100,000 implantations (issue 16,
    # bench/README.md). DATABASE_JIT=on gives PostgreSQL's default back.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=" + (
        "on" if env_bool("DATABASE_JIT", False) else "off"
    )
# A streaming replica of the primary takes investigators' reads and statistics (registry.routers). It is
# set up as the primary is (connection reuse, OPTIONS such as jit=off); only its address differs. Without
# DATABASE_REPLICA_URL there is no second alias and no router at all.
if os.environ.get("DATABASE_REPLICA_URL"):
    _replica = dj_database_url.parse(os.environ["DATABASE_REPLICA_URL"])
    if {DATABASES["default"]["ENGINE"], _replica["ENGINE"]} != {"django.db.backends.postgresql"}:
        # A release is read through PostgreSQL's search_path on whichever connection reads it (reports.releases).
        raise ImproperlyConfigured("DATABASE_REPLICA_URL needs PostgreSQL: a streaming replica of DATABASE_URL.")
    DATABASES["replica"] = {
        **DATABASES["default"],
        **{key: _replica[key] for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT")},
        "OPTIONS": {**DATABASES["default"].get("OPTIONS", {}), **_replica.get("OPTIONS", {})},
    }
    DATABASE_ROUTERS = ["registry.routers.ReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: refuses every login (password or second factor) while the username or the address is locked out.
    "axes.backends.AxesStandaloneBackend",
    # Roles (sites.Membership) grant model permissions; per-centre scoping is
    # applied on top by the scoped querysets.
    "sites.backends.RoleBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
# Dates are shown and taken as YYYY-MM-DD in every language, never 04/03/2026 (registry.formats, registry.dates).
FORMAT_MODULE_PATH = ["registry.formats"]
# The registry's own clock; each centre's "today" is in its own zone (sites.Centre.time_zone, registry.rules).
TIME_ZONE = os.environ.get("TIME_ZONE", "Europe/London")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))
# The nightly pruning (registry.services.prune_temporary_files) deletes a file under MEDIA_ROOT's report folders
# that no row refers to (a render that died between writing its files and committing) once it is this old:
# far longer than any task may run (CELERY_TASK_TIME_LIMIT), so a render in progress is never hit.
MEDIA_ORPHAN_GRACE_HOURS = int(os.environ.get("MEDIA_ORPHAN_GRACE_HOURS", "48"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Celery: eager without REDIS_URL so the app runs with no services at all.
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task past its soft limit gets SoftTimeLimitExceeded (a centre's report is then marked failed, not
# left running); past the hard limit its process is killed. Workers are replaced after a number of tasks,
# or once they grow past a memory ceiling, so a slow leak in the PDF stack cannot take a worker down.
CELERY_TASK_SOFT_TIME_LIMIT = int(os.environ.get("CELERY_TASK_SOFT_TIME_LIMIT", "900"))
CELERY_TASK_TIME_LIMIT = int(os.environ.get("CELERY_TASK_TIME_LIMIT", "960"))
# The sweeper (reports.tasks.sweep_unfinished_runs, every few minutes) sends a report's task again once it
# has been this long without finishing: past the hard time limit, so a task still at work is not doubled.
REPORT_RESEND_AFTER_SECONDS = int(os.environ.get("REPORT_RESEND_AFTER_SECONDS", str(CELERY_TASK_TIME_LIMIT + 240)))
CELERY_WORKER_MAX_TASKS_PER_CHILD = int(os.environ.get("CELERY_WORKER_MAX_TASKS_PER_CHILD", "50"))
CELERY_WORKER_MAX_MEMORY_PER_CHILD = int(os.environ.get("CELERY_WORKER_MAX_MEMORY_PER_CHILD_KB", "1500000"))
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))}
# How often a worker looks for a dead worker's unacknowledged tasks (kombu's default sweep is ~100 s).
if os.environ.get("CELERY_UNACKED_RESTORE_SECONDS"):
    CELERY_BROKER_TRANSPORT_OPTIONS |= {
        "unacked_restore_interval": int(os.environ["CELERY_UNACKED_RESTORE_SECONDS"]),
        "unacked_restore_throttle": 1,
    }
# A prefix on every Redis key Celery writes, so two registries (or a test's workers) can share one Redis.
if os.environ.get("CELERY_KEY_PREFIX"):
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = os.environ["CELERY_KEY_PREFIX"]
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": os.environ["CELERY_KEY_PREFIX"]}
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Workers log through LOGGING below, not handlers of Celery's own (registry.celery.use_django_logging).
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Beat writes each task's last send to the database after this many sends (0: every few minutes only);
# compose sets 1 so beat's health check (manage.py check_beat) reads a fresh time.
CELERY_BEAT_SYNC_EVERY = int(os.environ.get("CELERY_BEAT_SYNC_EVERY", "0"))

# --- Email: console in development, SMTP when EMAIL_HOST is set.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(BASE_DIR / "sent-emails"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "hai-registry@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if SCHEMA_ONLY:
    EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
if not DEBUG and EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend":
    # The console backend would print every centre's confidential report into the log and mark it sent.
    raise ImproperlyConfigured(
        "Email would go to the console with DEBUG off: set EMAIL_HOST (SMTP) or another EMAIL_BACKEND."
    )

# --- History: the audit trail is read-only, so no "revert" from the admin.
SIMPLE_HISTORY_REVERT_DISABLED = True
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True

# --- Import: one file is one transaction; a bad row rolls the whole file back.
IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_SKIP_ADMIN_LOG = False
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"
# An upload waits for its confirmation under a random name in the uploader's own folder, never in the
# system temp folder under a name the confirm form could choose (registry.import_storage).
IMPORT_EXPORT_TMP_STORAGE_CLASS = "registry.import_storage.UploaderTemporaryStorage"
IMPORT_TEMPORARY_ROOT = Path(os.environ.get("IMPORT_TEMPORARY_ROOT", BASE_DIR / "var" / "imports"))
# An upload never confirmed (the user left the preview) is deleted by the nightly pruning once this old.
IMPORT_TEMPORARY_HOURS = int(os.environ.get("IMPORT_TEMPORARY_HOURS", "24"))
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"

# --- Cache: Redis when available, so throttles hold across gunicorn workers.
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "hai"}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "api.schema.RegistryAutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # knox tokens, each acting in the one role it was created for.
        "api.authentication.RoleTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.RegistryPermission"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "api.pagination.StableOrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.RegistryPagination",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
        "api.renderers.CSVRenderer",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("THROTTLE_ANON", "60/min"),
        "user": os.environ.get("THROTTLE_USER", "6000/min"),
        "auth": os.environ.get("THROTTLE_AUTH", "10/min"),
    },
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "api.negotiation.RegistryContentNegotiation",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=int(os.environ.get("API_TOKEN_TTL_HOURS", "12"))),
    "AUTH_HEADER_PREFIX": "Token",
    "TOKEN_LIMIT_PER_USER": 20,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "HAI Registry API",
    "DESCRIPTION": (
        "De-identified records and statistics of the multi-institution registry of hepatic arterial "
        "infusion (HAI) pump implantations. Every error has the shape of `Error`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # One enum for every missing-data code field (<field>_missing, registry.missing_data), not one per field.
    "ENUM_NAME_OVERRIDES": {"MissingReasonEnum": "registry.vocabulary.MissingReason"},
    # The enum hook is drf-spectacular's default; ours gives each operation a summary and keeps developer
    # notes out of the docs (api.schema).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "api.schema.document_for_users"],
}

# --- Logins: lock-out (django-axes), two-factor (django-otp), trusted proxies. README, "Logging in".
# X-Forwarded-For is believed only from the NUM_PROXIES proxies in front of the app (0: it is ignored and
# REMOTE_ADDR is the client). The throttles and the lock-out read the same address (sites.authentication.client_ip).
NUM_PROXIES = int(os.environ.get("NUM_PROXIES", "0"))
REST_FRAMEWORK["NUM_PROXIES"] = NUM_PROXIES
AXES_CLIENT_IP_CALLABLE = "sites.authentication.client_ip"
# AXES_FAILURE_LIMIT failures lock the username (from any address) and, separately, the address (for any
# username), until AXES_COOLOFF_MINUTES after the last failure. Wrong second-factor codes count too.
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("AXES_COOLOFF_MINUTES", "30")))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A success does not wipe the count: an attacker's own valid login would otherwise reset their address's guesses.
AXES_RESET_ON_SUCCESS = False
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "password", "otp"]
# The lock-out answer: the API's error shape under /api/, a page elsewhere.
AXES_LOCKOUT_CALLABLE = "sites.authentication.lockout_response"
AXES_ENABLE_ADMIN = False  # sites.admin shows the attempts and logs to the coordinator, read-only
AXES_VERBOSE = False  # no banner on every start; failures and lock-outs are still logged
# Two-factor: required of every role unless REQUIRE_2FA is off (the default only with DEBUG on, for the demo).
REQUIRE_2FA = env_bool("REQUIRE_2FA", not DEBUG)
OTP_TOTP_ISSUER = "HAI Registry"
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the coordinator may remove a user's devices, never read their secrets
LOGIN_URL = "/account/login/"

# --- Security: strict whenever DEBUG is off (manage.py check --deploy is clean).
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
# A session ends after SESSION_IDLE_MINUTES without a request (sites.sessions.SessionTimeoutMiddleware)
# and SESSION_MAX_HOURS after login whatever happens: no longer than an API token lives.
SESSION_IDLE_MINUTES = int(os.environ.get("SESSION_IDLE_MINUTES", "30"))
SESSION_MAX_HOURS = int(os.environ.get("SESSION_MAX_HOURS", "12"))
SESSION_COOKIE_AGE = SESSION_MAX_HOURS * 3600
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- Logs: one JSON object a line in production (for the log collector), plain lines in development; each
# with the request id (registry.logs). Never a patient identifier in a log message.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain" if DEBUG else "json").strip().lower()
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured("LOG_FORMAT must be json or plain.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "registry.logs.ContextFilter"}},
    "formatters": {
        "json": {"()": "registry.logs.JsonFormatter"},
        "plain": {"()": "registry.logs.PlainFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # Page-by-page layout progress and font subsetting chatter.
        **{name: {"level": "WARNING"} for name in ("weasyprint", "fontTools", "matplotlib")},
        # Django's own console handler would print its lines a second time, without the request id;
        # its lines reach the root handler above.
        "django": {"handlers": [], "level": "INFO"},
    },
}

# --- Error reports to Sentry (or a compatible service) when SENTRY_DSN is set, scrubbed of patient data
# before they leave (registry.error_reporting).
SENTRY_DSN = os.environ.get("SENTRY_DSN", "")
if SENTRY_DSN and not SCHEMA_ONLY:
    from registry.error_reporting import init_error_reporting

    init_error_reporting(
        dsn=SENTRY_DSN,
        environment=os.environ.get("SENTRY_ENVIRONMENT") or None,
        release=os.environ.get("SENTRY_RELEASE") or None,
        traces_sample_rate=float(os.environ.get("SENTRY_TRACES_SAMPLE_RATE", "0")),
    )
