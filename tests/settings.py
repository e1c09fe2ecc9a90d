"""Test settings: PostgreSQL unless DATABASE_URL says otherwise."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hai_registry")
# Development settings (the dev secret key, console-free mail below); production refuses them. Set in the
# environment so the worker and manage.py subprocesses the tests start get them too.
os.environ.setdefault("DEBUG", "1")

from registry.settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Off whatever the environment says: most tests log in with force_login/force_authenticate, which give no
# second factor. The two-factor tests (tests/test_two_factor.py) turn it on with override_settings.
REQUIRE_2FA = False

# Throttling has its own test; elsewhere it must not interfere.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {"anon": "100000/min", "user": "100000/min", "auth": "100000/min"},
}

# The replica is the test database itself, read over a connection of its own (tests/test_replica_router.py,
# transactional tests: it sees committed rows only, as a real replica does). No router unless a test
# installs one, so the rest of the suite reads and counts queries on "default" alone.
DATABASES["replica"] = {  # noqa: F405
    **DATABASES["default"],  # noqa: F405
    "OPTIONS": dict(DATABASES["default"].get("OPTIONS", {})),  # noqa: F405
    "TEST": {"MIRROR": "default"},
}
DATABASE_ROUTERS = []
