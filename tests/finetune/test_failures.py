"""How job failures are classified, against the local server through the real SDK.

A failure that is permanent for the dataset version is recorded once, even when the night that
saw it stopped before recording it; a refusal for a setting is a ConfigError that names the
setting and leaves no job; the API key never appears in either.
"""

from __future__ import annotations

import time
from datetime import date

import pytest
from openai import OpenAI

from retrain.config.stage_settings import TrainingSettings
from retrain.curate.dataset import DatasetVersion
from retrain.exceptions import ConfigError, FineTuneFailed, FineTuneFailedPermanently
from retrain.providers.clients import make_client
from retrain.storage.object_store import ObjectStore
from retrain.train.failures import PermanentFailure, job_failure_kind, load_failure
from retrain.train.job_spec import job_spec
from retrain.train.jobs import ensure_job, wait_for_job
from retrain.train.plan import TrainingHistory, plan_training
from retrain.train.uploads import upload_training_file

from .conftest import Api, chat_file

FAST = TrainingSettings(poll_interval_seconds=0.05, max_poll_interval_seconds=0.2, wait_limit_seconds=60)


@pytest.mark.parametrize(
    ("code", "message", "kind"),
    [
        ("safety_check_failed", "the fine-tuned model failed the post-training safety checks", "permanent"),
        ("invalid_training_file", "Invalid file format: line 3", "permanent"),
        (None, "This training file was blocked by our moderation system", "permanent"),
        ("server_error", "The job failed due to an unsafe training file.", "permanent"),
        ("model_not_available", "Model gpt-x is not available for fine-tuning", "permanent"),
        ("server_error", "Internal error while training", "transient"),
        (None, None, "transient"),
        ("something_new", "a reason no one has seen", "transient"),
    ],
)
def test_job_failures_are_permanent_only_for_reasons_another_try_would_meet_again(
    code: str | None, message: str | None, kind: str
) -> None:
    assert job_failure_kind(code, message) == kind


def _job(api: Api, store: ObjectStore, version: str, training: TrainingSettings = FAST) -> tuple[OpenAI, str]:
    client = make_client(api.provider)
    train = upload_training_file(client, store, api.provider, chat_file(20, 1), role="train")
    spec = job_spec(training, dataset_version=version, run_id="r", night=date(2026, 12, 7))
    job = ensure_job(client, store, api.provider, spec, training_file=train, validation_file=None).job
    return client, job.id


@pytest.mark.slow
def test_a_permanent_failure_found_after_a_crash_is_recorded_and_no_second_job_is_created(
    api: Api, moto_store: ObjectStore
) -> None:
    api.admin("POST", "/admin/faults", json={"next_job": "invalid_file"})
    client, job_id = _job(api, moto_store, "ds-bad")
    with pytest.raises(FineTuneFailedPermanently) as failed:
        wait_for_job(client, api.provider, job_id, FAST, sleep=time.sleep)
    assert "failed permanently (invalid_training_file:" in str(failed.value)
    assert load_failure(moto_store, "ds-bad") is None  # the night "crashed" before recording it

    with pytest.raises(FineTuneFailedPermanently, match="ds-bad is not trained again"):
        _job(api, moto_store, "ds-bad")  # the next night finds the failed job: no new one
    failure = load_failure(moto_store, "ds-bad")
    assert failure is not None and failure.job_id == job_id and failure.provider == api.provider.name
    assert [job.id for job in client.fine_tuning.jobs.list().data] == [job_id]


@pytest.mark.slow
def test_a_transient_failure_is_not_recorded_and_the_next_try_creates_a_new_job(
    api: Api, moto_store: ObjectStore
) -> None:
    api.admin("POST", "/admin/faults", json={"next_job": "fail"})
    client, first = _job(api, moto_store, "ds-flaky")
    with pytest.raises(FineTuneFailed) as failed:
        wait_for_job(client, api.provider, first, FAST, sleep=time.sleep)
    assert not isinstance(failed.value, FineTuneFailedPermanently)
    _, second = _job(api, moto_store, "ds-flaky")
    assert second != first and load_failure(moto_store, "ds-flaky") is None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("training", "setting"),
    [
        (FAST.model_copy(update={"base_model": "davinci-002-retired"}), "RETRAIN_TRAINING__BASE_MODEL"),
        (FAST.model_copy(update={"batch_size": 1024}), "RETRAIN_TRAINING__BATCH_SIZE"),
        (
            FAST.model_copy(update={"learning_rate_multiplier": -1.0}),
            "RETRAIN_TRAINING__LEARNING_RATE_MULTIPLIER",
        ),
    ],
)
def test_a_job_refused_for_a_setting_is_a_config_error_naming_it_and_leaves_no_job(
    api: Api, moto_store: ObjectStore, training: TrainingSettings, setting: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        _job(api, moto_store, "ds-config", training)
    message = str(refused.value)
    assert message.startswith(f"provider {api.provider.name!r} refused to create the fine-tuning job")
    assert setting in message and "\n" not in message
    assert api.provider.api_key.get_secret_value() not in message
    assert make_client(api.provider).fine_tuning.jobs.list().data == []
    assert load_failure(moto_store, "ds-config") is None


def test_a_version_that_failed_permanently_is_not_planned_again_however_many_examples_it_adds() -> None:
    version = DatasetVersion(
        version_id="ds-1",
        shards=(),
        examples=500,
        train=450,
        validation=50,
        content_hash="c",
        created_at="2026-12-07T00:00:00+00:00",
        run_id="retrain-2026-12-07",
    )
    failure = PermanentFailure(
        dataset_version="ds-1", job_id="ftjob-1", provider="local", code="safety_check_failed", message="no"
    )
    plan = plan_training(TrainingHistory(version, failure=failure), min_new_examples=10)
    assert not plan.train and plan.outcome is not None and plan.outcome.value == "NoNewData"
    assert "ds-1 is not trained again" in plan.reason and "ftjob-1 failed permanently" in plan.reason
    assert plan_training(TrainingHistory(version), min_new_examples=10).train
