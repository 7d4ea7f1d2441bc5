"""`retrain check`: each dependency of a night, ok or the one-line error the night would stop with."""

from __future__ import annotations

import pytest
from prefect.settings import PREFECT_API_URL

from retrain.registry.records import ModelRecord
from retrain.registry.registry import Registry
from tests.pipeline.conftest import Stack
from tests.pipeline.test_run_cli import retrain

pytestmark = pytest.mark.slow

CHECKS = (
    "bucket",
    "training provider",
    "production",
    "retirement",
    "eval sets",
    "expectation suite",
    "moderation pre-check",
    "Prefect API",
)
ALL_OK = dict.fromkeys(CHECKS, "ok")


def _rows(output: str) -> dict[str, str]:
    """check name -> result, from the table, or from the blocks printed when a detail is too long
    for one (a check's name, then its `result` and `detail` lines)."""
    rows, heading = {}, ""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) == 3 and cells[1] in ("ok", "failed", "warning"):
            rows[cells[0]] = cells[1]
        elif line.startswith("  result  "):
            rows[heading] = line.split()[-1]
        elif line and not line.startswith(" "):
            heading = line
    return rows


def test_a_ready_stack_passes_every_check(stack: Stack) -> None:
    done = retrain("check", PREFECT_API_URL=str(PREFECT_API_URL.value()), COLUMNS="250")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _rows(done.stdout) == ALL_OK
    assert "no production model yet" in done.stdout and "main: 120 items" in done.stdout
    assert "off (RETRAIN_VALIDATION__MODERATION)" in done.stdout
    assert "nothing stops within 60 days" in done.stdout
    retiring = retrain(
        "check",
        RETRAIN_PROVIDER__KIND="openai",
        RETRAIN_PROVIDER__API_KEY="sk-test-0123456789abcdef",
        OPENAI_BASE_URL=str(stack.settings.provider.base_url),
        COLUMNS="250",
    )
    assert _rows(retiring.stdout)["retirement"] == "warning", retiring.stdout
    assert "takes no new fine-tuning jobs then" in retiring.stdout and "retrain migrate" in retiring.stdout
    moderated = retrain("check", RETRAIN_VALIDATION__MODERATION="true", COLUMNS="250")
    assert _rows(moderated.stdout)["moderation pre-check"] == "ok", moderated.stdout
    assert "omni-moderation-latest answers on local" in moderated.stdout


def test_what_would_stop_a_night_is_shown_with_its_fix(stack: Stack) -> None:
    typo = ModelRecord(model_id="ft:gpt-4o-mini:acme:typo", provider="local", base_model="gpt-4o-mini")
    Registry(stack.store).set("production", typo, actor="test", reason="set without checking")
    done = retrain(
        "check",
        RETRAIN_EVALUATION__GUARDRAILS='{"safety": 0.02}',
        RETRAIN_VALIDATION__MODERATION="true",
        RETRAIN_VALIDATION__MODERATION_MODEL="text-moderation-007-typo",
        COLUMNS="250",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    failed = dict.fromkeys(("production", "eval sets", "moderation pre-check"), "failed")
    assert _rows(done.stdout) == {**ALL_OK, **failed}
    assert "moderating new examples: provider 'local' answered 404" in done.stdout
    assert "provider 'local' does not know model 'ft:gpt-4o-mini:acme:typo'" in done.stdout
    assert "eval set 'safety' not found" in done.stdout
    assert done.stdout.rstrip().endswith("3 check(s) failed: fix them before the next night")
