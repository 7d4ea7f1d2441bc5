"""Retirement awareness: what stops within the warning window, from the published dates, the team's
calendar and the training backend, and where a person sees it (`retrain alias show`)."""

from __future__ import annotations

from datetime import date

import pytest
from typer.testing import CliRunner

from retrain.cli.main import app
from retrain.config.services import ProviderSettings, S3Settings
from retrain.config.settings import get_settings
from retrain.config.stage_settings import RetirementSettings
from retrain.registry.records import ModelRecord
from retrain.registry.registry import Registry
from retrain.registry.retirement import PUBLISHED, retirement_notices, retirement_of
from retrain.storage.object_store import ObjectStore

OPENAI = ProviderSettings(kind="openai", name="openai", api_key="sk-test-0123456789abcdef")
LOCAL = ProviderSettings()
TODAY = date(2026, 12, 7)


def record(base: str) -> ModelRecord:
    return ModelRecord(model_id=f"ft:{base}:acme::1", provider="local", base_model=base)


def test_published_dates_name_their_source_and_the_team_calendar_wins() -> None:
    assert PUBLISHED["gpt-3.5-turbo-0125"].on == date(2026, 10, 23)
    assert "OpenAI API deprecations" in PUBLISHED["gpt-3.5-turbo-0125"].source
    own = RetirementSettings(calendar={"gpt-3.5-turbo-0125": date(2027, 6, 1), "my-llama": date(2027, 1, 31)})
    assert retirement_of("gpt-3.5-turbo-0125", own) is not None
    assert retirement_of("gpt-3.5-turbo-0125", own).on == date(2027, 6, 1)  # type: ignore[union-attr]
    assert retirement_of("my-llama", own).source == "RETRAIN_RETIREMENT__CALENDAR"  # type: ignore[union-attr]
    assert retirement_of("gpt-4o-mini-2024-07-18", RetirementSettings()) is None  # no published date known


def test_notices_come_within_the_window_only_and_name_retrain_migrate() -> None:
    window = RetirementSettings(calendar={"my-llama": date(2027, 1, 31)}, warn_days=60)
    (soon,) = retirement_notices(record("my-llama"), LOCAL, "openai_api", window, TODAY)
    assert soon.kind == "base_model" and soon.days_left == 55
    assert soon.line.startswith(
        "production's base model my-llama (of ft:my-llama:acme::1) stops on 2027-01-31"
    )
    assert "`retrain migrate --to BACKEND`" in soon.line
    assert (
        retirement_notices(
            record("my-llama"), LOCAL, "openai_api", window.model_copy(update={"warn_days": 30}), TODAY
        )
        == []
    )
    (gone,) = retirement_notices(
        record("gpt-3.5-turbo-0125"), LOCAL, "openai_api", RetirementSettings(), TODAY
    )
    assert "stops since 2026-10-23" in gone.line
    assert retirement_notices(None, LOCAL, "openai_api", window, TODAY) == []


def test_the_openai_backend_stopping_is_a_notice_and_other_backends_are_not() -> None:
    (stop,) = retirement_notices(None, OPENAI, "openai_api", RetirementSettings(), TODAY)
    assert stop.kind == "backend" and stop.on == date(2027, 1, 6) and stop.days_left == 30
    assert "retrain migrate --to together" in stop.line
    assert retirement_notices(None, OPENAI, "openai_api", RetirementSettings(warn_days=10), TODAY) == []
    assert retirement_notices(None, LOCAL, "openai_api", RetirementSettings(), TODAY) == []
    assert retirement_notices(None, OPENAI, "together", RetirementSettings(), TODAY) == []


def test_alias_show_warns_of_the_base_model_retiring(
    s3_env: S3Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRAIN_RETIREMENT__CALENDAR", '{"my-llama": "2099-01-31"}')
    monkeypatch.setenv("RETRAIN_RETIREMENT__WARN_DAYS", "100000")
    get_settings.cache_clear()
    Registry(ObjectStore.from_settings(s3_env)).set("production", record("my-llama"), actor="t", reason="t")
    shown = CliRunner().invoke(app, ["alias", "show", "production"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert "warning (base model)" in shown.output and "stops on 2099-01-31" in shown.output
    monkeypatch.setenv("RETRAIN_RETIREMENT__WARN_DAYS", "60")
    get_settings.cache_clear()
    quiet = CliRunner().invoke(app, ["alias", "show", "production"], env={"COLUMNS": "250"})
    assert quiet.exit_code == 0 and "warning" not in quiet.output, quiet.output
