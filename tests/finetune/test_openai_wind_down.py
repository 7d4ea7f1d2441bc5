"""OpenAI stops taking new fine-tuning jobs on 6 January 2027: a night on its API says so in time.

The warning (``wind_down_notice``) is logged before anything is uploaded; a job creation that
OpenAI's API refuses carries the hint (``job_refused_hint``). Other providers see neither.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from openai import OpenAI

from retrain.config.services import ProviderSettings
from retrain.config.settings import get_settings
from retrain.config.stage_settings import TrainingSettings
from retrain.exceptions import ProviderError, QuotaExceeded
from retrain.providers.clients import job_refused_hint, make_client, wind_down_notice
from retrain.storage.object_store import ObjectStore
from retrain.train.job_spec import job_spec
from retrain.train.jobs import ensure_job
from retrain.train.uploads import upload_training_file
from tests.pipeline.conftest import Stack, run
from tests.pipeline.test_nightly_flow import land, run_logs

from .conftest import Api, chat_file

OPENAI = ProviderSettings(kind="openai", name="openai", api_key="sk-test-3f9a7c1e5b2d4f60a8e1")
KEY = OPENAI.api_key.get_secret_value()
MOVE = (
    "move training with `retrain migrate --to together` (or lora), or to another OpenAI-compatible "
    "provider (README, 'Move training to another provider')"
)


def test_a_night_on_openai_is_warned_with_the_days_left() -> None:
    assert wind_down_notice(OPENAI, date(2026, 11, 26)) == (
        "training provider 'openai' is OpenAI's API, which takes no new fine-tuning jobs from "
        f"6 January 2027 (41 days from now): {MOVE} before then"
    )
    assert "(1 day from now)" in (wind_down_notice(OPENAI, date(2027, 1, 5)) or "")
    assert wind_down_notice(OPENAI, date(2027, 1, 6)) == (
        "training provider 'openai' is OpenAI's API, which takes no new fine-tuning jobs since "
        f"6 January 2027, so tonight's job will be refused: {MOVE}"
    )


def test_other_providers_get_no_warning_and_no_hint() -> None:
    azure = ProviderSettings(kind="azure", azure_endpoint="https://acme.openai.azure.com", api_key="k" * 20)
    for provider in (ProviderSettings(), azure):
        assert wind_down_notice(provider, date(2026, 11, 26)) is None
        assert job_refused_hint(provider, date(2027, 2, 1)) == ""


def test_the_refusal_hint_names_the_day_it_applies_from() -> None:
    before, after = job_refused_hint(OPENAI, date(2026, 11, 26)), job_refused_hint(OPENAI, date(2027, 1, 6))
    assert "none for anyone from 6 January 2027" in before
    assert "none for anyone since 6 January 2027" in after
    assert "organisations created since May 2026" in before and after.endswith(MOVE)


def _openai_on(api: Api, monkeypatch: pytest.MonkeyPatch) -> ProviderSettings:
    """Kind openai talks to OpenAI's API; the SDK's OPENAI_BASE_URL points it at the local server."""
    monkeypatch.setenv("OPENAI_BASE_URL", str(api.provider.base_url))
    return OPENAI.model_copy(update={"max_retries": 0})


def _create(store: ObjectStore, provider: ProviderSettings) -> None:
    client: OpenAI = make_client(provider)
    train = upload_training_file(client, store, provider, chat_file(20, 1), role="train")
    spec = job_spec(TrainingSettings(), dataset_version="ds-refused", run_id="r", night=date(2026, 11, 26))
    ensure_job(client, store, provider, spec, training_file=train, validation_file=None)


def _refuse_jobs(admin: Callable[..., Any], kind: str) -> None:
    admin(
        "POST",
        "/admin/faults",
        json={"rules": [{"route": "/fine_tuning/jobs", "method": "POST", "kind": kind}]},
    )


@pytest.mark.slow
def test_a_job_refused_by_openai_says_why_it_may_be_and_what_to_do(
    api: Api, moto_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = _openai_on(api, monkeypatch)
    _refuse_jobs(api.admin, "403")
    with pytest.raises(ProviderError) as refused:
        _create(moto_store, provider)
    message = str(refused.value)
    assert message.startswith(
        "creating the fine-tuning job: provider 'openai' answered 403: Your organization does not have "
        "access to create fine-tuning jobs"
    )
    assert "OpenAI is winding down self-serve fine-tuning" in message and message.endswith(MOVE)
    assert KEY not in message
    assert api.route_count("POST /fine_tuning/jobs (403 injected)") == 1
    assert api.client.fine_tuning.jobs.list().data == []


@pytest.mark.slow
def test_a_refusal_elsewhere_or_a_quota_gets_no_wind_down_hint(
    api: Api, moto_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_jobs(api.admin, "403")
    with pytest.raises(ProviderError) as refused:
        _create(moto_store, api.provider)
    assert "answered 403" in str(refused.value) and "winding down" not in str(refused.value)

    provider = _openai_on(api, monkeypatch)
    _refuse_jobs(api.admin, "quota")
    with pytest.raises(QuotaExceeded) as quota:
        _create(moto_store, provider)
    assert "winding down" not in str(quota.value)


@pytest.mark.slow
def test_a_night_on_openai_warns_before_uploading_and_fails_with_the_hint_when_refused(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", str(stack.settings.provider.base_url))
    monkeypatch.setenv("RETRAIN_PROVIDER__KIND", "openai")
    monkeypatch.setenv("RETRAIN_PROVIDER__NAME", "local")  # production (the base model) is served there too
    monkeypatch.setenv("RETRAIN_PROVIDER__API_KEY", KEY)
    get_settings.cache_clear()
    _refuse_jobs(stack.admin, "403")
    land(stack, "incoming/2026-11-26/a.jsonl", 40, seed=3)

    night = run("2026-11-26")

    assert night.is_failed()
    assert "answered 403" in night.message and night.message.endswith(MOVE)
    logs = [(log.name, log.level, log.message) for log in run_logs(night.state_details.flow_run_id)]
    warnings = [i for i, (_, level, text) in enumerate(logs) if level == 30 and "6 January 2027" in text]
    uploads = [i for i, (_, _, text) in enumerate(logs) if text.startswith("training file ")]
    assert warnings and uploads, "the run's log has the wind-down warning and the upload"
    warning, upload = warnings[0], uploads[0]
    assert warning < upload, "the warning comes before anything is uploaded"
    assert (
        "training provider 'local' is OpenAI's API, which takes no new fine-tuning jobs" in logs[warning][2]
    )
    assert all(KEY not in message for _, _, message in logs)
