# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EMBEDDED := $(BIN)/python -m nventory.embedded

.PHONY: run demo test chaos lint typecheck check bench manage clean browser

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python requirements.txt requirements-dev.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

## Start web (gunicorn), workers, beat, the notification consumer, the Shopify and Amazon
## simulators and an SQS server (moto) on embedded PostgreSQL/Redis
## (or DATABASE_URL/REDIS_URL). `make run WEB_SERVER=runserver`: Django's development server
## instead, which reloads on code changes but drops connections under a burst of webhooks.
run: $(STAMP)
	CHANNELS_ALLOW_LOCAL_HOSTS=1 $(EMBEDDED) --data-dir .data/run -- sh -c '$(BIN)/python manage.py migrate --noinput && $(BIN)/python manage.py prepare_local --simulator-seed-file .data/run/shopify-demo.json && exec $(BIN)/honcho start -f Procfile'

## Black Friday in a box: `make run` plus buyers on every simulator (orders, cancellations,
## returns at DEMO_RATE orders/s, default 1), an oversell provoked now and then, and faults.
DEMO_TRAFFIC := traffic: .venv/bin/python -m channels.simulators.traffic --rate $${DEMO_RATE:-1} --shopify http://127.0.0.1:$${SHOPIFY_SIMULATOR_PORT:-8765} --amazon http://127.0.0.1:$${AMAZON_SIMULATOR_PORT:-8766} --walmart http://127.0.0.1:$${WALMART_SIMULATOR_PORT:-8768} --ebay http://127.0.0.1:$${EBAY_SIMULATOR_PORT:-8769} --tiktok http://127.0.0.1:$${TIKTOK_SIMULATOR_PORT:-8770}
demo: $(STAMP)
	@mkdir -p .data/run && { cat Procfile; echo '$(DEMO_TRAFFIC)'; } > .data/run/Procfile.demo
	CHANNELS_ALLOW_LOCAL_HOSTS=1 $(EMBEDDED) --data-dir .data/run -- sh -c '$(BIN)/python manage.py migrate --noinput && $(BIN)/python manage.py prepare_local --simulator-seed-file .data/run/shopify-demo.json && exec $(BIN)/honcho -d . -f .data/run/Procfile.demo start'

## Lint (ruff, the import contracts), type-check and run the whole suite on real PostgreSQL.
test: $(STAMP) lint typecheck browser
	CHANNELS_ALLOW_LOCAL_HOSTS=1 $(EMBEDDED) --data-dir .data/test -- $(BIN)/python -m pytest $(PYTEST_ARGS)

## The slow fault suite (docs/reliability.md): each scenario with real processes, one
## PASS/FAIL line with its figures (kept in .data/chaos/results.txt). CHAOS_ORDERS,
## CHAOS_RATE and CHAOS_SKUS size the bursts, CHAOS_F1_ORDERS and CHAOS_F1_SKUS the full-size
## F1's, CHAOS_F3_S how long F3 drops connections, CHAOS_F5_S how long F5's shop is down.
chaos: $(STAMP)
	CHAOS=1 $(EMBEDDED) --data-dir .data/chaos-servers -- $(BIN)/python -m pytest -s -q tests/reliability/test_chaos.py $(PYTEST_ARGS)

## The browser tests (tests/browser/) drive Debian's chromium package; Playwright never
## downloads a browser. Installed here when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian's chromium package for the browser tests"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || \
	      { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; \
	  else \
	    echo "The browser tests need Debian's chromium package: run 'sudo apt-get install chromium'" \
	         "(or make test PYTEST_ARGS='-m \"not browser\"' to leave them out)"; exit 1; \
	  fi; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

## django-stubs loads the settings: a local run's (DEBUG on, so no production secret needed).
typecheck: $(STAMP)
	DEBUG=true DATABASE_URL=postgresql://unused/nventory REDIS_URL=redis://unused:1/0 $(BIN)/mypy .

## Every benchmark (results in docs/benchmarks.json, tables and plots in docs/), or one:
## make bench NAME=hot_sku
bench: $(STAMP)
	CHANNELS_ALLOW_LOCAL_HOSTS=1 $(EMBEDDED) --data-dir .data/bench -- $(BIN)/python bench/$(if $(NAME),$(NAME),run_all).py

## Any manage.py command against the embedded servers: make manage ARGS="createsuperuser"
manage: $(STAMP)
	CHANNELS_ALLOW_LOCAL_HOSTS=1 $(EMBEDDED) --data-dir .data/run -- $(BIN)/python manage.py $(ARGS)

clean:
	rm -rf .data
