"""Jobs on the local server: DPO with beta, the best checkpoint as candidate, pausing while we wait."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest
from openai import OpenAI
from openai.types.fine_tuning import FineTuningJobEvent

from retrain.config.services import ProviderSettings
from retrain.config.stage_settings import TrainingSettings
from retrain.storage.object_store import ObjectStore
from retrain.train.job_spec import config_hash, job_spec
from retrain.train.jobs import best_checkpoint, ensure_job, wait_for_job
from retrain.train.uploads import upload_training_file

from .conftest import Api, chat_file, preference_file

pytestmark = pytest.mark.slow

FAST = {"poll_interval_seconds": 0.05, "max_poll_interval_seconds": 0.2, "wait_limit_seconds": 60}


def test_beta_is_part_of_a_dpo_config_only() -> None:
    supervised = TrainingSettings()
    assert config_hash(supervised) == config_hash(supervised.model_copy(update={"beta": 0.3}))
    dpo = TrainingSettings(method="dpo", beta=0.1)
    assert config_hash(dpo) != config_hash(dpo.model_copy(update={"beta": 0.3}))
    spec = job_spec(dpo, dataset_version="v", run_id="r", night=date(2026, 11, 1))
    assert spec.method == {
        "type": "dpo",
        "dpo": {
            "hyperparameters": {
                "n_epochs": "auto",
                "batch_size": "auto",
                "learning_rate_multiplier": "auto",
                "beta": 0.1,
            }
        },
    }
    long = TrainingSettings(suffix="x" * 40)
    assert len(job_spec(long, dataset_version="v", run_id="r", night=date(2026, 11, 1)).suffix) <= 64


def test_a_dpo_job_trains_with_the_configured_beta(api: Api, moto_store: ObjectStore) -> None:
    training = TrainingSettings(method="dpo", beta=0.25, n_epochs=2, **FAST)
    train = upload_training_file(api.client, moto_store, api.provider, preference_file(40, 1), role="train")
    spec = job_spec(training, dataset_version="ds-dpo", run_id="r", night=date(2026, 11, 1))
    created = ensure_job(
        api.client, moto_store, api.provider, spec, training_file=train, validation_file=None
    )
    assert created.job.method is not None and created.job.method.type == "dpo"
    assert created.job.method.dpo is not None and created.job.method.dpo.hyperparameters is not None
    assert created.job.method.dpo.hyperparameters.beta == 0.25
    done = wait_for_job(api.client, api.provider, created.job.id, training)
    assert done.status == "succeeded" and done.fine_tuned_model


def test_the_best_checkpoint_has_the_lowest_validation_loss_and_answers(
    api: Api, moto_store: ObjectStore
) -> None:
    training = TrainingSettings(n_epochs=3, use_best_checkpoint=True, **FAST)
    train = upload_training_file(api.client, moto_store, api.provider, chat_file(60, 1), role="train")
    valid = upload_training_file(api.client, moto_store, api.provider, chat_file(15, 2), role="validation")
    spec = job_spec(training, dataset_version="ds-ckpt", run_id="r", night=date(2026, 11, 1))
    created = ensure_job(
        api.client, moto_store, api.provider, spec, training_file=train, validation_file=valid
    )
    job = wait_for_job(api.client, api.provider, created.job.id, training)

    checkpoints = list(api.client.fine_tuning.jobs.checkpoints.list(job.id))
    assert len(checkpoints) >= 2
    losses = {
        c.fine_tuned_model_checkpoint: c.metrics.full_valid_loss or c.metrics.valid_loss for c in checkpoints
    }
    chosen = best_checkpoint(api.client, api.provider, job)
    assert chosen is not None and chosen != job.fine_tuned_model
    assert losses[chosen] == min(value for value in losses.values() if value is not None)
    reply = api.client.chat.completions.create(
        model=chosen, messages=[{"role": "user", "content": "How do I reset my password?"}]
    )
    assert reply.model == chosen

    # Without a validation file there is no validation loss: the final model stays the candidate.
    plain = ensure_job(
        api.client,
        moto_store,
        api.provider,
        job_spec(training, dataset_version="ds-noval", run_id="r", night=date(2026, 11, 1)),
        training_file=train,
        validation_file=None,
    )
    finished = wait_for_job(api.client, api.provider, plain.job.id, training)
    assert best_checkpoint(api.client, api.provider, finished) is None


def test_a_paused_job_is_waited_for_and_resumed(tmp_path: Path, moto_store: ObjectStore) -> None:
    from local_openai import serve_in_thread

    with serve_in_thread(tmp_path / "slow", step_delay=0.03) as server:
        client = OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        provider = ProviderSettings(base_url=server.base_url, max_retries=0)
        short = TrainingSettings(
            n_epochs=3, poll_interval_seconds=0.05, max_poll_interval_seconds=0.1, wait_limit_seconds=1.0
        )
        train = upload_training_file(client, moto_store, provider, chat_file(60, 3), role="train")
        spec = job_spec(short, dataset_version="ds-pause", run_id="r", night=date(2026, 11, 1))
        job_id = ensure_job(
            client, moto_store, provider, spec, training_file=train, validation_file=None
        ).job.id
        deadline = time.monotonic() + 60
        while client.fine_tuning.jobs.retrieve(job_id).status != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        client.fine_tuning.jobs.pause(job_id)

        events: list[FineTuningJobEvent] = []
        held = wait_for_job(client, provider, job_id, short, on_event=events.append)
        assert held.status not in ("succeeded", "failed", "cancelled")
        assert "Fine-tuning job paused" in {e.message for e in events}
        assert len({e.id for e in events}) == len(events)

        client.fine_tuning.jobs.resume(job_id)
        done = wait_for_job(client, provider, job_id, short.model_copy(update={"wait_limit_seconds": 120}))
        assert done.status == "succeeded"
