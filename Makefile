# CivicBot: `make run` runs the product, `make test` sets everything up and runs the tests.
# Both work from a clean clone: they create the two environments from the lock files and
# train the NLU model when it is missing or older than its data, config or components.

SHELL := /bin/bash
PYTHON311 ?= $(shell scripts/find-python 3.11)
PYTHON310 ?= $(shell scripts/find-python 3.10)
UV_VERSION := 0.13.9

VENV := .venv
NLU_VENV := nlu/.venv
UV := $(VENV)/bin/uv
CIVICBOT := $(VENV)/bin/civicbot
MODEL := nlu/models/civicbot.tar.gz
MODEL_INPUTS := nlu/config.yml domain.yml $(wildcard nlu/data/*.yml) $(wildcard nlu/civicbot_nlu/*.py)
# Debian's Chromium drives the dashboard and web chat browser tests (Playwright, no download).
CHROMIUM := /usr/bin/chromium
# Debian's nginx fronts two app processes and two Rasa replicas in tests/test_cluster.py.
NGINX := /usr/sbin/nginx
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: setup run test lint nlu-eval bench clean

setup: $(VENV)/.installed $(NLU_VENV)/.installed $(MODEL)

run: setup
	$(CIVICBOT) run

test: setup lint $(CHROMIUM) $(NGINX)
	$(VENV)/bin/pytest

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) apt-get install -y -qq --no-install-recommends chromium

$(NGINX):
	$(SUDO) apt-get update -qq
	$(SUDO) apt-get install -y -qq --no-install-recommends nginx-light

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check bot storage tests scripts nlu/civicbot_nlu
	$(VENV)/bin/ruff format --check bot storage tests scripts nlu/civicbot_nlu
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

# Four independent dev sets (the second, third and fourth harder: issue 15); none is ever trained on.
nlu-eval: setup
	$(CIVICBOT) nlu eval tests/data/nlu_dev.csv --report docs/nlu-eval.md --chart docs/nlu-confusion.png
	$(if $(wildcard tests/data/nlu_dev2.csv),$(CIVICBOT) nlu eval tests/data/nlu_dev2.csv --report docs/nlu-eval2.md --chart docs/nlu-confusion2.png)
	$(if $(wildcard tests/data/nlu_dev3.csv),$(CIVICBOT) nlu eval tests/data/nlu_dev3.csv --report docs/nlu-eval3.md --chart docs/nlu-confusion3.png)
	$(if $(wildcard tests/data/nlu_dev4.csv),$(CIVICBOT) nlu eval tests/data/nlu_dev4.csv --report docs/nlu-eval4.md --chart docs/nlu-confusion4.png)

bench: setup
	$(CIVICBOT) bench
	$(VENV)/bin/python scripts/bench_bot_api.py
	$(VENV)/bin/python scripts/bench_turn.py
	$(VENV)/bin/python scripts/bench_pipeline.py
	$(VENV)/bin/python scripts/bench_digest.py

# The app environment (Python 3.11). uv installs the locked versions in seconds.
$(VENV)/.installed: pyproject.toml requirements.lock
	@test -n "$(PYTHON311)" || exit 1
	test -x $(VENV)/bin/python || $(PYTHON311) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(UV) pip sync --quiet --python $(VENV)/bin/python requirements.lock
	$(UV) pip install --quiet --python $(VENV)/bin/python --no-deps -e .
	touch $@

# The Rasa environment (Python 3.10: Rasa 3.6 supports no newer one). Its pins stay here.
$(NLU_VENV)/.installed: nlu/requirements.lock $(VENV)/.installed
	@test -n "$(PYTHON310)" || exit 1
	test -x $(NLU_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON310) $(NLU_VENV)
	$(UV) pip sync --quiet --python $(NLU_VENV)/bin/python nlu/requirements.lock
	touch $@

$(MODEL): $(MODEL_INPUTS) | $(VENV)/.installed $(NLU_VENV)/.installed
	$(CIVICBOT) nlu train

# Re-lock after changing dependencies in pyproject.toml or nlu/requirements.in.
lock: $(VENV)/.installed
	$(UV) pip compile --quiet pyproject.toml --extra dev --python-version 3.11 -o requirements.lock
	$(UV) pip compile --quiet nlu/requirements.in --python-version 3.10 -o nlu/requirements.lock

clean:
	rm -rf $(VENV) $(NLU_VENV) nlu/models
