"""Fine-tuning against the local OpenAI-compatible server: uploads once, one job per version."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import orjson
import pytest
from openai import OpenAI

from retrain.config.services import ProviderSettings
from retrain.config.stage_settings import TrainingSettings
from retrain.exceptions import FineTuneFailed
from retrain.local.synthetic import make_examples
from retrain.storage.object_store import ObjectStore
from retrain.train.job_spec import job_spec
from retrain.train.jobs import ensure_job, wait_for_job
from retrain.train.uploads import upload_training_file

pytestmark = pytest.mark.slow

TRAINING = TrainingSettings(poll_interval_seconds=0.05, max_poll_interval_seconds=0.2, wait_limit_seconds=60)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[OpenAI, ProviderSettings, str]]:
    from local_openai import serve_in_thread

    with serve_in_thread(tmp_path / "openai") as server:
        provider = ProviderSettings(base_url=server.base_url)
        yield OpenAI(base_url=server.base_url, api_key="x", max_retries=0), provider, server.root_url


@pytest.fixture
def store(moto_store: ObjectStore) -> ObjectStore:
    return moto_store


def _jsonl(n: int, seed: int) -> bytes:
    return b"".join(orjson.dumps(example) + b"\n" for example in make_examples(n, seed=seed))


def test_the_same_content_is_uploaded_once(
    api: tuple[OpenAI, ProviderSettings, str], store: ObjectStore
) -> None:
    client, provider, _ = api
    content = _jsonl(20, 1)
    first = upload_training_file(client, store, provider, content, role="train")
    assert upload_training_file(client, store, provider, content, role="train") == first

    # A crash between the upload and its record: the provider's file list finds it.
    for info in list(store.list("state/uploads/")):
        store.delete(info.key)
    assert upload_training_file(client, store, provider, content, role="train") == first
    assert [f.id for f in client.files.list()] == [first]

    other = upload_training_file(client, store, provider, _jsonl(20, 2), role="train")
    assert other != first


def test_one_job_per_dataset_version_even_without_our_state(
    api: tuple[OpenAI, ProviderSettings, str], store: ObjectStore
) -> None:
    client, provider, _ = api
    train = upload_training_file(client, store, provider, _jsonl(40, 1), role="train")
    spec = job_spec(TRAINING, dataset_version="ds-abc", run_id="retrain-2026-11-01", night=date(2026, 11, 1))

    created = ensure_job(client, store, provider, spec, training_file=train, validation_file=None)
    again = ensure_job(client, store, provider, spec, training_file=train, validation_file=None)
    assert not created.resumed and again.resumed and again.job.id == created.job.id

    # The state record is lost (a crash right after create): jobs.list(metadata=...) finds the job.
    store.delete(spec.state_key)
    recovered = ensure_job(client, store, provider, spec, training_file=train, validation_file=None)
    assert recovered.resumed and recovered.job.id == created.job.id
    assert len(client.fine_tuning.jobs.list().data) == 1

    finished = wait_for_job(client, provider, created.job.id, TRAINING)
    assert finished.status == "succeeded" and finished.fine_tuned_model
    assert finished.metadata and finished.metadata["dataset_version"] == "ds-abc"
    assert spec.suffix == "retrain-20261101"


def test_a_failed_job_is_replaced_by_a_new_one(
    api: tuple[OpenAI, ProviderSettings, str], store: ObjectStore
) -> None:
    import httpx

    client, provider, root = api
    httpx.post(f"{root}/admin/faults", json={"next_job": "fail"}, timeout=10).raise_for_status()
    train = upload_training_file(client, store, provider, _jsonl(40, 3), role="train")
    spec = job_spec(TRAINING, dataset_version="ds-def", run_id="r", night=date(2026, 11, 2))

    first = ensure_job(client, store, provider, spec, training_file=train, validation_file=None)
    with pytest.raises(FineTuneFailed, match="failed"):
        wait_for_job(client, provider, first.job.id, TRAINING)

    second = ensure_job(client, store, provider, spec, training_file=train, validation_file=None)
    assert not second.resumed and second.job.id != first.job.id
    assert wait_for_job(client, provider, second.job.id, TRAINING).status == "succeeded"
