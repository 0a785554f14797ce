# socialpipe developer and CI entry points. `make help` lists them.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when pyproject.toml changed: the stamp's name carries its hash.
PYPROJECT_HASH := $(shell $(PYTHON) -c "import hashlib; print(hashlib.sha256(open('pyproject.toml', 'rb').read()).hexdigest()[:16])")
STAMP := $(VENV)/.installed-$(PYPROJECT_HASH)
SERVICES := $(BIN)/python scripts/services.py
# Two worker processes, each test file on one of them (its module fixtures stay together).
PYTEST_ARGS ?= -n 2 --dist loadfile
DEMO_ARGS ?=
LOADTEST_ARGS ?=
BENCH_ARGS ?=

# Exports DATABASE_URL/REDIS_URL of embedded servers when the configured ones do
# not answer, and stops those servers when the recipe ends (KEEP_SERVICES=1 keeps them).
define with_services
set -euo pipefail; \
exports="$$($(SERVICES) ensure)"; eval "$$exports"; \
if [ -n "$$exports" ] && [ -z "$${KEEP_SERVICES:-}" ]; then trap '$(SERVICES) stop' EXIT; fi;
endef

.PHONY: help venv services services-stop test lint format typecheck demo loadtest fauxqs bench proto lock image clean distclean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# `dev` carries the test tools and the `loadtest` extra (moto's server, the tansu broker,
# matplotlib), so `make test`, `make demo` and `make loadtest` all find what they run;
# `lock` is the pinned uv that `make lock` uses. The image installs none of these.
EXTRAS := dev,lock

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing socialpipe[$(EXTRAS)] into $(VENV)" >&2
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[$(EXTRAS)]' \
		> $(VENV)/pip-install.log 2>&1 || { cat $(VENV)/pip-install.log >&2; exit 1; }
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP) ## Create .venv and install the project with its dev tools

services: venv ## Start embedded PostgreSQL/Redis if none answer (kept running)
	@$(SERVICES) ensure

services-stop: venv ## Stop embedded PostgreSQL/Redis started under .run/
	@$(SERVICES) stop

test: venv ## Lint, type-check and run the whole test suite
	@$(with_services) \
	echo "== ruff check"; $(BIN)/ruff check .; \
	echo "== ruff format --check"; $(BIN)/ruff format --check .; \
	echo "== mypy"; $(BIN)/mypy .; \
	echo "== pytest"; rc=0; $(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

lint: venv ## ruff check and ruff format --check
	@$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: venv ## Apply ruff's fixes and formatting
	@$(BIN)/ruff check --fix . && $(BIN)/ruff format .

typecheck: venv ## mypy --strict over the repository
	@$(BIN)/mypy .

demo: venv ## API, relay and all workers on embedded defaults; a minute of load through the API
	@$(with_services) \
	$(BIN)/socialpipe migrate up; \
	$(BIN)/socialpipe demo $(DEMO_ARGS)

FAUXQS_DIR := scripts/fauxqs

$(FAUXQS_DIR)/node_modules/.package-lock.json: $(FAUXQS_DIR)/package-lock.json
	@command -v node >/dev/null || { echo "make loadtest needs Node.js 20+ for fauxqs (or pass LOADTEST_ARGS='--emulator moto')" >&2; exit 1; }
	@cd $(FAUXQS_DIR) && npm ci --no-audit --no-fund --loglevel=error

fauxqs: $(FAUXQS_DIR)/node_modules/.package-lock.json ## Install the pinned fauxqs SQS/SNS emulator (npm ci)

loadtest: venv fauxqs ## Seed a graph and measure P95 under load (LOADTEST_ARGS="--workers 2 ...")
	@$(with_services) \
	$(BIN)/socialpipe migrate up; \
	$(BIN)/socialpipe loadtest $(LOADTEST_ARGS)

bench: venv ## Run the fan-out benchmark (python -m bench.fanout)
	@$(with_services) \
	$(BIN)/python -m bench.fanout $(BENCH_ARGS)

# Checked-in stubs of the Connections Service (docs/connections-service.md#stubs).
proto: venv ## Regenerate connections_service/proto/ stubs from connections.proto
	@$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. \
		connections_service/proto/connections.proto

# The image's runtime closure, every distribution pinned with its hashes, for the
# Python and platform of the Dockerfile's base image. Run after changing `dependencies`.
lock: venv ## Regenerate requirements.lock (hashed runtime dependencies of the image)
	@$(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--custom-compile-command 'make lock' -o requirements.lock

IMAGE ?= socialpipe:$(shell $(PYTHON) -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")

image: ## Build the container image with its version and commit labels (IMAGE=name:tag)
	docker build -t $(IMAGE) \
		--build-arg VERSION=$(lastword $(subst :, ,$(IMAGE))) \
		--build-arg VCS_REF=$(shell git rev-parse HEAD 2>/dev/null || echo unknown) .

clean: ## Stop embedded services; remove caches, build output and .run/
	@if [ -x $(BIN)/python ]; then $(SERVICES) stop; fi
	@rm -rf .run build dist out .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
	@find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## clean, and remove .venv too
	@rm -rf $(VENV)
