# The two commands a newcomer needs:
#   make run    set up, load demo data, serve the admin on http://127.0.0.1:8000/admin/
#   make test   set up (PostgreSQL, Redis, Chromium included) and run the whole test suite
#
# Without DATABASE_URL / REDIS_URL, `make run` uses an embedded SQLite file and
# runs Celery tasks eagerly; set them to use PostgreSQL and Redis instead.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_CENTRES ?= 8
DEMO_IMPLANTATIONS ?= 3000
PORT ?= 8000

.PHONY: run test venv venv-dev lint lock services check-deploy bench-seed backup restore

# Two locks (requirements/*.txt), each compiled from a short input list (*.in):
# runtime.txt is what the image installs; dev.txt adds the tests, ruff and pip-tools.
$(BIN)/.runtime-installed: requirements/runtime.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements/runtime.txt
	touch $@

$(BIN)/.dev-installed: $(BIN)/.runtime-installed requirements/dev.txt
	$(BIN)/pip install -q -r requirements/runtime.txt -r requirements/dev.txt
	touch $@

venv: $(BIN)/.runtime-installed

venv-dev: $(BIN)/.dev-installed

# Refresh both locks from their input lists (monthly, and after editing a .in file).
lock: venv-dev
	cd requirements && ../$(BIN)/pip-compile -q --upgrade --strip-extras --no-emit-index-url --no-emit-find-links runtime.in -o runtime.txt
	cd requirements && ../$(BIN)/pip-compile -q --upgrade --strip-extras --no-emit-index-url --no-emit-find-links dev.in -o dev.txt

# Style, and models that agree with their migrations.
lint: venv-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run

# The demo runs with DEBUG on (development settings: console email, no second factor); DEBUG is off
# by default everywhere else.
run: export DEBUG = 1
run: venv
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo --centres $(DEMO_CENTRES) --implantations $(DEMO_IMPLANTATIONS) --seed 1 --if-empty
	@echo
	@echo "  Log in at   http://127.0.0.1:$(PORT)/admin/   as coordinator, dm-lyon, lead-lyon (password demo-password-1)"
	@echo "  REST API    http://127.0.0.1:$(PORT)/api/v1/docs/   after logging in at /account/login/ (investigator /"
	@echo "              demo-password-1 for the de-identified view)"
	@echo "  Two-factor authentication is off in this demo (DEBUG=1, REQUIRE_2FA unset): log in with the password"
	@echo "  alone; production asks every user for an authenticator code (enrol at /account/two-factor/)."
	@echo
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

services:
	bash .ci/ensure-services

# Two test processes (pytest-xdist), one per core of the CI machine; each has its own test database. A file
# stays in one process, so a module's shared world (tests/api_world.py) is built once.
TEST_PROCESSES ?= 2

test: services lint
	$(BIN)/python -m pytest -q -n $(TEST_PROCESSES) --dist loadfile

bench-seed: venv
	bash bench/seed_demo.sh

check-deploy: venv
	DEBUG=0 SECRET_KEY=$$($(BIN)/python -c "import secrets; print(secrets.token_urlsafe(50))") \
	  ALLOWED_HOSTS=registry.example.org EMAIL_HOST=smtp.example.org \
	  $(BIN)/python manage.py check --deploy --fail-level WARNING

# Backups (README, "For operators"): a pg_dump of DATABASE_URL's database, a copy of MEDIA_ROOT and a manifest,
# in a timestamped folder under BACKUP_DIR. A restore goes into an empty database (FORCE=1 replaces one that is not)
# and checks the restored rows and files against the manifest.
BACKUP_DIR ?= backups

backup: venv
	$(BIN)/python manage.py backup_registry --output-dir "$(BACKUP_DIR)"

restore: venv
	@test -n "$(BACKUP)" || { echo "Usage: make restore BACKUP=$(BACKUP_DIR)/hai-backup-<time> [FORCE=1]" >&2; exit 2; }
	$(BIN)/python manage.py restore_registry "$(BACKUP)" $(if $(FORCE),--force)
