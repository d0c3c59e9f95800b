# Two commands set up a fresh machine: `make dev` runs Courier locally, `make test` runs the tests.
# Everything they need is installed by the targets below (uv into .tools/, then one locked venv).
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
RUN := $(UV) run --frozen --all-packages

.PHONY: install dev test lint typecheck pytest bench fmt schemas clean browser-deps

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
	$(RUN) mypy shared/src services/authorizer/src services/gateway/src services/worker/src services/migrator/src

pytest: install
	$(RUN) python -m pytest

test: lint typecheck pytest

fmt: install
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

schemas: install
	$(RUN) python -m courier_shared.schemas docs/schemas

bench: install
	$(RUN) python -m courier_local.bench

clean:
	rm -rf .venv .tools .courier .mypy_cache .ruff_cache .pytest_cache

# Lambda zips for Python 3.13 on Linux, one per service, into build/ (`pulumi up` also builds them).
ARCH ?= arm64
.PHONY: package
package: install
	$(RUN) python -m courier_infra.packaging all --arch $(ARCH) --out build/
