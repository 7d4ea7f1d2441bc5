"""Uploads: multi-part above a threshold (the local /v1/uploads checked against the spec), reuse, cleanup."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from retrain.config.stage_settings import TrainingSettings
from retrain.storage.object_store import ObjectStore
from retrain.train.job_spec import job_spec
from retrain.train.jobs import ensure_job, wait_for_job
from retrain.train.uploads import delete_job_files, upload_training_file

from .conftest import Api, chat_file

pytestmark = pytest.mark.slow

SPEC = Path(
    os.environ.get(
        "RETRAIN_OPENAPI_SPEC", Path(__file__).resolve().parents[2] / "../shared/openai-openapi/openapi.yaml"
    )
)
PARTS = "POST /uploads/{upload_id}/parts"


def test_a_large_file_goes_up_in_parts_and_is_reused_by_hash(api: Api, moto_store: ObjectStore) -> None:
    content = chat_file(60, 1)
    training = TrainingSettings(upload_part_threshold_bytes=4096, upload_part_size_bytes=4096)
    file_id = upload_training_file(
        api.client, moto_store, api.provider, content, role="train", training=training
    )

    expected_parts = -(-len(content) // 4096)
    assert expected_parts >= 3
    assert api.route_count(PARTS) == expected_parts
    assert api.route_count("POST /uploads/{upload_id}/complete") == 1
    assert api.route_count("POST /files") == 0
    assert api.client.files.content(file_id).read() == content
    assert api.client.files.retrieve(file_id).filename.startswith("retrain-")

    again = upload_training_file(
        api.client, moto_store, api.provider, content, role="train", training=training
    )
    assert again == file_id and api.route_count(PARTS) == expected_parts

    # Below the threshold the plain files endpoint is used.
    small = chat_file(5, 2)
    upload_training_file(
        api.client,
        moto_store,
        api.provider,
        small,
        role="train",
        training=training.model_copy(update={"upload_part_threshold_bytes": 10**6}),
    )
    assert api.route_count("POST /files") == 1 and api.route_count(PARTS) == expected_parts


def _check(spec: dict[str, Any], path: str, response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    if status == 200:
        schema = spec["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    else:
        schema = {"$ref": "#/components/schemas/ErrorResponse"}
    errors = list(Draft202012Validator({**schema, "components": spec["components"]}).iter_errors(body))
    assert not errors, f"{path}: {[e.message for e in errors[:3]]}"
    return body


def test_the_uploads_api_conforms_to_the_spec(api: Api) -> None:
    if not SPEC.is_file():
        pytest.skip(f"OpenAI OpenAPI description not found at {SPEC}; set RETRAIN_OPENAPI_SPEC")
    import yaml

    spec = yaml.load(SPEC.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    http = httpx.Client(base_url=f"{api.root}/v1", timeout=30)
    content = chat_file(10, 3)
    half = len(content) // 2
    request = {
        "filename": "t.jsonl",
        "purpose": "fine-tune",
        "bytes": len(content),
        "mime_type": "text/jsonl",
    }

    upload = _check(spec, "/uploads", http.post("/uploads", json=request))
    assert upload["status"] == "pending" and upload["object"] == "upload"
    parts = [
        _check(
            spec,
            "/uploads/{upload_id}/parts",
            http.post(f"/uploads/{upload['id']}/parts", files={"data": ("blob", chunk)}),
        )
        for chunk in (content[half:], content[:half])
    ]
    assert all(p["object"] == "upload.part" and p["upload_id"] == upload["id"] for p in parts)
    # The order of part_ids decides the order of the bytes.
    wrong_count = http.post(f"/uploads/{upload['id']}/complete", json={"part_ids": [parts[1]["id"]]})
    _check(spec, "/uploads/{upload_id}/complete", wrong_count, status=400)
    done = _check(
        spec,
        "/uploads/{upload_id}/complete",
        http.post(f"/uploads/{upload['id']}/complete", json={"part_ids": [parts[1]["id"], parts[0]["id"]]}),
    )
    assert done["status"] == "completed" and done["file"]["bytes"] == len(content)
    assert http.get(f"/files/{done['file']['id']}/content").content == content
    _check(
        spec,
        "/uploads/{upload_id}/parts",
        http.post(f"/uploads/{upload['id']}/parts", files={"data": ("b", b"x")}),
        status=400,
    )

    other = _check(spec, "/uploads", http.post("/uploads", json=request))
    cancelled = _check(spec, "/uploads/{upload_id}/cancel", http.post(f"/uploads/{other['id']}/cancel"))
    assert cancelled["status"] == "cancelled"
    _check(
        spec,
        "/uploads/{upload_id}/complete",
        http.post(f"/uploads/{other['id']}/complete", json={"part_ids": []}),
        status=400,
    )
    _check(spec, "/uploads", http.post("/uploads", json={**request, "unexpected": 1}), status=400)
    _check(spec, "/uploads", http.post("/uploads", json={**request, "filename": "t.csv"}), status=400)
    assert http.post("/uploads/upload_nope/cancel").status_code == 404


def test_our_files_are_deleted_after_the_job_with_their_records(api: Api, moto_store: ObjectStore) -> None:
    training = TrainingSettings(
        poll_interval_seconds=0.05, max_poll_interval_seconds=0.2, wait_limit_seconds=60
    )
    train = upload_training_file(api.client, moto_store, api.provider, chat_file(40, 4), role="train")
    valid = upload_training_file(api.client, moto_store, api.provider, chat_file(12, 5), role="validation")
    unrelated = api.client.files.create(file=("someone-else.jsonl", chat_file(5, 6)), purpose="fine-tune").id
    spec = job_spec(training, dataset_version="ds-clean", run_id="r", night=date(2026, 11, 1))
    created = ensure_job(
        api.client, moto_store, api.provider, spec, training_file=train, validation_file=valid
    )
    job = wait_for_job(api.client, api.provider, created.job.id, training)

    assert sorted(delete_job_files(api.client, moto_store, api.provider, job)) == sorted([train, valid])
    remaining = {f.id for f in api.client.files.list()}
    assert unrelated in remaining and not {train, valid} & remaining
    assert set(job.result_files) <= remaining  # the service's results are not ours to delete
    assert list(moto_store.list("state/uploads/")) == []
    assert delete_job_files(api.client, moto_store, api.provider, job) == []
