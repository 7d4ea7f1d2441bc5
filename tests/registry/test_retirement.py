"""Retirement awareness: what stops within the warning window, from the published dates, the team's
calendar and the training backend, and where a person sees it (`retrain alias show`)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import httpx
import pytest
from local_openai import serve_in_thread
from typer.testing import CliRunner

from retrain.cli.main import app
from retrain.config.services import ProviderSettings, S3Settings
from retrain.config.settings import get_settings
from retrain.config.stage_settings import RetirementSettings
from retrain.registry.records import ModelRecord
from retrain.registry.registry import Registry
from retrain.registry.retirement import PUBLISHED, notices_for, retirement_notices, retirement_of
from retrain.storage.object_store import ObjectStore
from tests.azure import azure_env

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


def test_azure_says_when_its_base_model_retires_and_stops_fine_tuning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where Azure serves production and trains, its own model list's dates make the notices: the
    SDK's ``accounts.list_models`` against the local stack's management emulation."""
    with serve_in_thread(tmp_path / "server") as server:
        for name, value in {
            "RETRAIN_PROVIDER__KIND": "azure",
            "RETRAIN_PROVIDER__NAME": "azure",
            "RETRAIN_PROVIDER__AZURE_ENDPOINT": server.root_url,
            "RETRAIN_PROVIDER__API_KEY": "sk-azure-test-7f3c9a1e5b2d4f60",
            "RETRAIN_TRAINING__BASE_MODEL": "gpt-4o-mini-2024-07-18",
            **azure_env(server.root_url),
        }.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        settings = get_settings()
        production = ModelRecord(
            model_id="ft:gpt-4o-mini-2024-07-18:acme::1",
            provider="azure",
            base_model="gpt-4o-mini-2024-07-18",
        )
        # The emulation's made-up default dates are years away: nothing to say.
        assert notices_for(settings, production, TODAY) == []

        httpx.post(
            f"{server.root_url}/admin/azure/deprecations",
            json={
                "gpt-4o-mini-2024-07-18": {
                    "fineTune": "2027-01-20T00:00:00Z",
                    "inference": "2027-02-01T00:00:00Z",
                }
            },
        ).raise_for_status()
        serving, training = notices_for(settings, production, TODAY)
        assert serving.kind == "base_model" and serving.on == date(2027, 2, 1) and serving.days_left == 56
        assert "Azure OpenAI's model list (deprecation.inference)" in serving.line
        assert training.kind == "backend" and training.on == date(2027, 1, 20)
        assert "deprecation.fineTune" in training.source and "retrain migrate" in training.line

        # The team's calendar still wins over the provider's date.
        monkeypatch.setenv("RETRAIN_RETIREMENT__CALENDAR", '{"gpt-4o-mini-2024-07-18": "2027-01-10"}')
        get_settings.cache_clear()
        mine = notices_for(get_settings(), production, TODAY)
        assert mine[0].on == date(2027, 1, 10) and mine[0].source == "RETRAIN_RETIREMENT__CALENDAR"

        # Production on another provider does not take Azure's dates.
        elsewhere = production.model_copy(update={"provider": "openai"})
        assert [n.kind for n in notices_for(settings, elsewhere, TODAY)] == ["backend"]
    get_settings.cache_clear()
