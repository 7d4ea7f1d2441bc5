# The two commands of the quickstart: `make demo` and `make test`.
# Each creates its own environment (.tools holds a pinned uv, .venv the project from uv.lock).

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT := false

.PHONY: setup demo test lint typecheck clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	touch $@

setup: .venv/.synced

demo: setup
	.venv/bin/retrain demo

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: setup
	.venv/bin/mypy

test: lint typecheck
	.venv/bin/pytest

clean:
	rm -rf .venv .tools .retrain .mypy_cache .ruff_cache .pytest_cache
