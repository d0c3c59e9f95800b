# Two commands set up a fresh machine: `make dev` runs Courier locally, `make test` runs the tests
# (lint, typecheck and the three test tiers; each tier alone: `make unit|integration|e2e`).
# Everything they need is installed by the targets below (uv into .tools/, then one locked venv).
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
RUN := $(UV) run --frozen --all-packages
AI_SDK := tests/ai_sdk
PAGE := web

.PHONY: install dev test lint typecheck pytest unit integration e2e bench fmt schemas clean browser-deps web

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml shared/pyproject.toml services/*/pyproject.toml local/pyproject.toml infra/pyproject.toml
	$(UV) sync --frozen --all-packages
	touch $@

install: $(VENV)/.synced

dev: install
	$(RUN) courier dev

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck: install
	$(RUN) mypy shared/src services/authorizer/src services/gateway/src services/worker/src services/migrator/src \
		local/src infra/src

# The test tiers (CONTRIBUTING.md says what belongs in each). Each runs alone, in its own session.
PYTEST := $(RUN) python -m pytest
unit: install
	$(PYTEST) tests/unit

# Integration tests run in parallel (pytest-xdist), a whole file to a worker: each worker has its own
# session fixtures (Postgres databases, moto, local stacks, temp dirs, all on free ports).
INTEGRATION_WORKERS ?= 2
integration: install
	$(PYTEST) -m integration -n $(INTEGRATION_WORKERS) --dist loadfile

e2e: install browser-deps $(AI_SDK)/node_modules/.installed $(PAGE)/node_modules/.installed
	$(PYTEST) -m e2e

pytest: unit integration e2e

# The stock AI SDK client the e2e tier drives (tests/ai_sdk): installed exactly from its lockfile.
$(AI_SDK)/node_modules/.installed: $(AI_SDK)/package.json $(AI_SDK)/package-lock.json
	cd $(AI_SDK) && npm ci --no-audit --no-fund
	touch $@

# The chat page (web/: React, useChat, the AI SDK's WebSocketChatTransport) is built into the Python
# package (local/src/courier_local/web), so `make dev` needs no Node. `make web` rebuilds it from the
# committed lockfile; the e2e tier fails when the shipped build is not what the sources build.
$(PAGE)/node_modules/.installed: $(PAGE)/package.json $(PAGE)/package-lock.json
	cd $(PAGE) && npm ci --no-audit --no-fund
	touch $@

web: $(PAGE)/node_modules/.installed
	cd $(PAGE) && npm run build

# The browser tests drive Debian's Chromium at /usr/bin/chromium (never `playwright install`).
# Installed here with apt-get when missing; where apt-get is unavailable the browser tests skip,
# except with CI=true, where a missing browser fails.
CHROMIUM := /usr/bin/chromium
browser-deps:
	@if [ ! -x $(CHROMIUM) ]; then \
		if command -v apt-get >/dev/null 2>&1; then \
			echo "Installing Chromium for the browser tests (apt-get install chromium)..."; \
			SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
			$$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium || exit 1; \
		elif [ "$(CI)" = "true" ]; then \
			echo "CI=true and $(CHROMIUM) is missing, and apt-get is not available" >&2; exit 1; \
		else \
			echo "warning: $(CHROMIUM) is missing and apt-get is not available: the browser tests will skip"; \
		fi; \
	fi

test: lint typecheck unit integration e2e

fmt: install
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

schemas: install
	$(RUN) python -m courier_shared.schemas docs/schemas

bench: install
	$(RUN) python -m courier_local.bench

# N connections x M turns against `courier dev` on a fresh Postgres database, created (and dropped)
# on TEST_DATABASE_URL's server; loopback only. Other sizes: make load LOAD_ARGS="--connections 50".
TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres
.PHONY: load
load: install
	$(RUN) python -m courier_local.load --admin-url "$(TEST_DATABASE_URL)" $(LOAD_ARGS)

clean:
	rm -rf .venv .tools .courier .mypy_cache .ruff_cache .pytest_cache $(AI_SDK)/node_modules

# Lambda zips for Python 3.13 on Linux, one per service, into build/ (`pulumi up` also builds them).
ARCH ?= arm64
.PHONY: package
package: install
	$(RUN) python -m courier_infra.packaging all --arch $(ARCH) --out build/

# Pulumi, always through make: `toolchain: uv` in Pulumi.yaml makes Pulumi's language host run `uv`
# from PATH, and `make install` puts uv only in .tools/bin. .venv/bin goes first so that a policy
# pack (PULUMI_ARGS="--policy-pack infra/policy"), which runs python3 from PATH, finds
# pulumi-policy. UV_FROZEN=1: Pulumi's `uv run` installs exactly uv.lock and never rewrites it.
#   make preview|up|refresh|destroy STACK=dev|prod [PULUMI_ARGS="..."]
PULUMI_COMMANDS := preview up refresh destroy
.PHONY: $(PULUMI_COMMANDS) pulumi-preflight page
$(PULUMI_COMMANDS): pulumi-preflight install
	PATH="$(CURDIR)/.venv/bin:$(CURDIR)/.tools/bin:$$PATH" UV_FROZEN=1 pulumi $@ -s "$(STACK)" $(PULUMI_ARGS)

# The chat page for a deployed stack, with its config.json from the stack's outputs (docs/deploy.md).
page: pulumi-preflight install
	PATH="$(CURDIR)/.tools/bin:$$PATH" pulumi stack output --json -s "$(STACK)" | $(RUN) courier page --outputs - --out build/page-$(STACK)

pulumi-preflight:
	@command -v pulumi >/dev/null 2>&1 || { \
		echo "The Pulumi CLI is not installed (or not on PATH): https://www.pulumi.com/docs/iac/download-install/" >&2; \
		exit 1; }
	@[ -n "$(STACK)" ] || { echo "Say which stack: make $(MAKECMDGOALS) STACK=dev (or prod)" >&2; exit 1; }
	@[ -f "Pulumi.$(STACK).yaml" ] || { echo "STACK=$(STACK): there is no Pulumi.$(STACK).yaml" >&2; exit 1; }
