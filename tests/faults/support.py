"""Helpers shared by the fault, crash and secret tests: land data, run a night, read what a run left."""

from __future__ import annotations

import orjson
from openai.types.fine_tuning import FineTuningJob

from retrain.local.synthetic import make_examples
from retrain.storage.layout import BATCH_PREFIX, DECISION_PREFIX
from retrain.storage.layout import JOB_PREFIX as JOB_STATE
from retrain.storage.layout import UPLOAD_PREFIX as UPLOAD_STATE
from tests.pipeline.conftest import Stack, client, production_history, run

__all__ = [
    "EXAMPLES",
    "assert_consistent",
    "client",
    "jobs",
    "land",
    "production_history",
    "run",
    "set_faults",
    "uploaded_files",
]

EXAMPLES = 150


def land(stack: Stack, night: str, *, n: int = EXAMPLES, seed: int = 1) -> None:
    lines = [orjson.dumps(example).decode() for example in make_examples(n, seed=seed)]
    stack.store.put_bytes(f"incoming/{night}/a.jsonl", ("\n".join(lines) + "\n").encode())


def jobs(stack: Stack) -> list[FineTuningJob]:
    """Every fine-tuning job the provider knows, oldest first."""
    return sorted(client(stack).fine_tuning.jobs.list(limit=100).data, key=lambda job: job.created_at)


def uploaded_files(stack: Stack) -> list[str]:
    return sorted(f.id for f in client(stack).files.list(purpose="fine-tune"))


def set_faults(stack: Stack, **config: object) -> None:
    stack.admin("POST", "/admin/faults", json=config)


def assert_consistent(stack: Stack) -> None:
    """What any run, however it ended, must leave in S3.

    Every batch manifest accounts for every line it read; every upload record and job record
    names an object the provider has; a decision exists only for a job that produced a model.
    """
    sdk = client(stack)
    for info in stack.store.list(BATCH_PREFIX):
        batch = stack.store.get_json(info.key)
        assert batch["lines_read"] == batch["accepted"] + batch["quarantined"], info.key
        for entry in batch["objects"]:
            assert entry["lines_read"] == entry["accepted"] + entry["quarantined"], info.key
    files = set(uploaded_files(stack))
    for info in stack.store.list(UPLOAD_STATE):
        assert stack.store.get_json(info.key)["file_id"] in files, info.key
    known = {job.id: job for job in jobs(stack)}
    for info in stack.store.list(JOB_STATE):
        assert stack.store.get_json(info.key)["job_id"] in known, info.key
    for info in stack.store.list(DECISION_PREFIX):
        if info.key.endswith("LAST.json"):
            continue
        decision = stack.store.get_json(info.key)
        job = sdk.fine_tuning.jobs.retrieve(decision["job_id"])
        assert job.status == "succeeded" and job.fine_tuned_model, (info.key, job.status)
        assert decision["candidate"]["model_id"] == job.fine_tuned_model
