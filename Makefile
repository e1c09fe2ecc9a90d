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

.PHONY: run test venv services check-deploy bench-seed

$(BIN)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

venv: $(BIN)/.installed

run: venv
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo --centres $(DEMO_CENTRES) --implantations $(DEMO_IMPLANTATIONS) --seed 1 --if-empty
	@echo
	@echo "  Log in at   http://127.0.0.1:$(PORT)/admin/   as coordinator, dm-lyon, lead-lyon (password demo-password-1)"
	@echo "  REST API    http://127.0.0.1:$(PORT)/api/v1/docs/   (investigator / demo-password-1 for a de-identified view)"
	@echo
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

services:
	bash .ci/ensure-services

test: services venv
	$(BIN)/python -m pytest -q

bench-seed: venv
	bash bench/seed_demo.sh

check-deploy: venv
	DEBUG=0 SECRET_KEY=$$($(BIN)/python -c "import secrets; print(secrets.token_urlsafe(50))") \
	  ALLOWED_HOSTS=registry.example.org $(BIN)/python manage.py check --deploy --fail-level WARNING
