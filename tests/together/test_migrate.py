"""`retrain migrate --to together`: production moves off an OpenAI-shaped model to a Together model
only when the candidate is not worse by more than the margin, through the real flow and CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from retrain.curate.dataset import latest_version
from retrain.promote.decision import load_decision
from retrain.registry.registry import Registry
from tests.faults.support import land, production_history, run, set_faults
from tests.pipeline.conftest import Stack, stack  # noqa: F401

pytestmark = pytest.mark.slow

RETRAIN = Path(sys.executable).parent / "retrain"


def migrate(ts: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "RETRAIN_PROVIDERS__TOGETHER__KIND": "together",
        "RETRAIN_PROVIDERS__TOGETHER__BASE_URL": f"{ts.api_root}/together/v1",
    }
    return subprocess.run(
        [str(RETRAIN), "migrate", "--to", "together", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_migrate_holds_production_when_worse_by_more_than_the_margin_and_moves_it_when_not(
    stack: Stack,  # noqa: F811
) -> None:
    land(stack, "2026-11-01")
    first = run("2026-11-01")
    assert first.is_completed() and "promoted" in first.message, first.message
    openai_model = Registry(stack.store).get("production")
    assert openai_model is not None and openai_model.provider == "local"
    assert openai_model.model_id.startswith("ft:gpt-4o-mini")
    version = latest_version(stack.store)
    assert version is not None

    # A Together candidate much worse than production: held, whatever the margin allows.
    set_faults(stack, next_job="degraded")
    held = migrate(stack, "--margin", "0.05", "--night", "2026-11-02")
    assert held.returncode == 0, held.stdout + held.stderr
    assert "Rejected" in held.stdout and "migration to together" in held.stdout, held.stdout
    production = Registry(stack.store).get("production")
    assert production is not None and production.model_id == openai_model.model_id
    decision = load_decision(stack.store, version.version_id, "together")
    assert decision is not None and not decision.promote and decision.migration == "together"
    assert "Gate mode: non_inferiority (margin 0.05)" in decision.report_markdown
    assert decision.candidate.provider == "together" and decision.production.provider == "local"
    # The version's nightly decision (on the old backend) is untouched.
    nightly = load_decision(stack.store, version.version_id)
    assert nightly is not None and nightly.promote and nightly.migration is None

    # New data, and a Together candidate trained properly: not worse by more than the margin, promoted.
    land(stack, "2026-11-03", seed=3)
    moved = migrate(stack, "--margin", "0.05", "--night", "2026-11-03")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "Promoted" in moved.stdout and "RETRAIN_TRAINING__BACKEND=together" in moved.stdout, moved.stdout
    production = Registry(stack.store).get("production")
    assert production is not None and production.provider == "together"
    assert production.model_id.startswith("retrain-local/Meta-Llama-3.1-8B-Instruct-Reference-")
    history = Registry(stack.store).history("production")
    assert [(e.model.provider, e.previous_model_id) for e in history] == [
        ("local", None),
        ("together", openai_model.model_id),
    ]
    assert "migration to together" in history[-1].reason
    assert [action for action, _ in production_history(stack)] == ["promote", "promote"]
