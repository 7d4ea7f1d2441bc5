"""Together AI's API, as the ``together`` SDK calls it, under ``/together``.

The SDK's base URL is ``http://HOST:PORT/together``; its paths start with ``/v1``. Together's
OpenAI-compatible inference (chat completions, models) is mounted beside these routes by
``app.py``, so the ``openai`` SDK reaches a trained model at ``/together/v1``.

- Files go up in three steps, as ``together.lib.resources.files.UploadManager`` sends them:
  ``POST /v1/files`` (a form with purpose, file_name, file_type and checksum) answers 302 with the
  upload URL in ``Location`` and the new id in ``X-Together-File-Id`` (or 409 with the id of a
  file of the same checksum); ``PUT`` of the bytes to that URL; ``POST /v1/files/{id}/preprocess``
  validates the file and returns it.
- Fine-tuning jobs (``/v1/fine-tunes``) are stored as the OpenAI routes' job documents, marked
  ``_api: together``, so the same worker and learner train them. Their states are Together's:
  pending, queued, running, compressing, uploading, cancel_requested, cancelled, error, completed;
  their events are Together's ``fine-tune-event`` types; step metrics come from ``/metrics``.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from local_openai.errors import ApiError, not_found
from local_openai.state import TOGETHER_BASE_MODELS, StateDep
from local_openai.store import Document
from local_openai.training_files import InvalidFile, read_pairs
from local_openai.worker import add_event

__all__ = ["JOB_API", "router", "upload_router"]

router = APIRouter()
upload_router = APIRouter()

JOB_API = "together"
FILE_KIND = "together_file"
_USER = "user-retrain-local"
# What the local service charges for LoRA SFT on models up to 16B parameters, per million tokens
# (Together's published price for that tier).
_USD_PER_MILLION_TOKENS = 0.48


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat()


# --- files -------------------------------------------------------------------------------------


def _file_view(doc: Document) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": doc["id"],
        "object": "file",
        "bytes": doc["bytes"],
        "created_at": doc["created_at"],
        "filename": doc["filename"],
        "FileType": doc["file_type"],
        "purpose": doc["purpose"],
        "processing_status": doc["processing_status"],
    }
    if doc.get("validation_report") is not None:
        view["validation_report"] = doc["validation_report"]
    return view


def _file(state: StateDep, file_id: str) -> Document:
    doc = state.store.get(FILE_KIND, file_id)
    if doc is None or (doc["processing_status"] == "PENDING" and not doc["bytes"]):
        raise not_found("file", file_id, param="id")
    return doc


@router.post("/v1/files")
def start_upload(
    state: StateDep,
    request: Request,
    purpose: Annotated[str, Form()],
    file_name: Annotated[str, Form()],
    file_type: Annotated[str, Form()],
    checksum: Annotated[str, Form()],
) -> Response:
    if purpose != "fine-tune":
        raise ApiError(
            400, f"Unsupported purpose '{purpose}' (local server: fine-tune only)", param="purpose"
        )
    if file_type != "jsonl":
        raise ApiError(
            400, f"Unsupported file type '{file_type}' (local server: jsonl only)", param="file_type"
        )
    for doc in state.store.list(FILE_KIND):
        if (
            doc["checksum"] == checksum
            and doc["purpose"] == purpose
            and doc["processing_status"] == "COMPLETED"
        ):
            return JSONResponse(
                {"message": "A file with this checksum already exists.", "file_id": doc["id"]},
                status_code=409,
            )
    file_id = f"file-{uuid.uuid4()}"
    state.store.insert(
        FILE_KIND,
        {
            "id": file_id,
            "bytes": 0,
            "created_at": int(time.time()),
            "filename": file_name,
            "file_type": file_type,
            "purpose": purpose,
            "checksum": checksum,
            "processing_status": "PENDING",
        },
    )
    location = str(request.url_for("put_upload", file_id=file_id))
    return Response(status_code=302, headers={"Location": location, "X-Together-File-Id": file_id})


@upload_router.put("/uploads/{file_id}", name="put_upload")
async def put_upload(state: StateDep, request: Request, file_id: str) -> Response:
    doc = state.store.get(FILE_KIND, file_id)
    if doc is None or doc["processing_status"] != "PENDING":
        return Response("no pending upload with this id", status_code=404)
    content = await request.body()
    state.store.blob_path(file_id).write_bytes(content)
    state.store.update(FILE_KIND, file_id, lambda d: {**d, "bytes": len(content)})
    return Response(status_code=200)


@router.post("/v1/files/{file_id}/preprocess")
def preprocess(state: StateDep, file_id: str) -> dict[str, Any]:
    doc = state.store.get(FILE_KIND, file_id)
    if doc is None or not doc["bytes"]:
        raise not_found("file", file_id, param="id")
    content = state.store.blob_path(file_id).read_bytes()
    if hashlib.sha256(content).hexdigest() != doc["checksum"]:
        raise ApiError(400, "The uploaded bytes do not match the checksum given.", param="checksum")
    try:
        pairs, _ = read_pairs(state.store.blob_path(file_id), method="supervised")
        report: dict[str, Any] = {"valid": True, "dataset_format": "CONVERSATION", "nlines": len(pairs)}
        status = "COMPLETED"
    except InvalidFile as exc:
        report = {"valid": False, "error": str(exc), "error_type": "INVALID_FORMAT"}
        status = "INVALID_FORMAT"
    report["file_id"] = file_id
    updated = state.store.update(
        FILE_KIND, file_id, lambda d: {**d, "processing_status": status, "validation_report": report}
    )
    assert updated is not None
    return _file_view(updated)


@router.get("/v1/files")
def list_files(state: StateDep) -> dict[str, Any]:
    return {"data": [_file_view(d) for d in state.store.list(FILE_KIND) if d["bytes"]]}


@router.get("/v1/files/{file_id}")
def retrieve_file(state: StateDep, file_id: str) -> dict[str, Any]:
    return _file_view(_file(state, file_id))


@router.delete("/v1/files/{file_id}")
def delete_file(state: StateDep, file_id: str) -> dict[str, Any]:
    _file(state, file_id)
    state.store.delete(FILE_KIND, file_id)
    state.store.blob_path(file_id).unlink(missing_ok=True)
    return {"id": file_id, "deleted": True}


# --- fine-tunes --------------------------------------------------------------------------------


class TrainingType(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["Lora", "Full"]
    lora_r: int | None = Field(default=None, ge=1)
    lora_alpha: float | None = Field(default=None, gt=0)
    lora_dropout: float | None = Field(default=None, ge=0, lt=1)
    lora_trainable_modules: str | None = None


class CreateFineTune(BaseModel):
    model_config = ConfigDict(extra="ignore")

    training_file: str
    validation_file: str | None = None
    model: str | None = None
    n_epochs: int = Field(ge=1, le=20)
    learning_rate: float = Field(gt=0, le=1)
    batch_size: int | Literal["max"] | None = None
    suffix: str | None = Field(default=None, max_length=40)
    random_seed: int | None = None
    n_evals: int | None = Field(default=None, ge=0)
    n_checkpoints: int | None = Field(default=None, ge=1)
    training_type: TrainingType | None = None
    training_method: dict[str, Any] = Field(default_factory=lambda: {"method": "sft"})
    from_checkpoint: str | None = None


def _limits(model: str) -> dict[str, Any]:
    full = {"max_batch_size": 96, "max_batch_size_dpo": 48, "min_batch_size": 8}
    return {
        "model_name": model,
        "default_gradient_accumulation_steps": 1,
        "lora_training": {
            "default_rank": 64,
            "max_batch_size": 128,
            "max_batch_size_dpo": 64,
            "max_rank": 64,
            "min_batch_size": 8,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        },
        "full_training": full,
        "max_learning_rate": 1.0,
        "min_learning_rate": 0.0,
        "max_num_checkpoints": 10,
        "max_num_epochs": 20,
        "max_num_evals": 100,
        "max_seq_length_sft": 8192,
        "max_seq_length_dpo": 8192,
        "min_max_seq_length": 1024,
        "merge_output_lora": True,
        "supports_full_training": True,
        "supports_reasoning": False,
        "supports_tools": False,
        "supports_vision": False,
    }


def _unknown_model(model: str) -> ApiError:
    return ApiError(
        400,
        f"Model {model} is not supported for fine-tuning "
        f"(local server knows: {', '.join(TOGETHER_BASE_MODELS)}).",
        param="model",
    )


@router.get("/v1/fine-tunes/models/limits")
def model_limits(model_name: str) -> dict[str, Any]:
    if model_name not in TOGETHER_BASE_MODELS:
        raise _unknown_model(model_name)
    return _limits(model_name)


def _tokens(state: StateDep, file_id: str) -> int:
    _, tokens = read_pairs(state.store.blob_path(file_id), method="supervised")
    return tokens


@router.post("/v1/fine-tunes/estimate-price")
def estimate_price(state: StateDep, body: dict[str, Any]) -> dict[str, Any]:
    doc = state.store.get(FILE_KIND, str(body.get("training_file", "")))
    if doc is None or doc["processing_status"] != "COMPLETED":
        return {"estimation_available": False, "unavailable_reason": "train_file_not_validated"}
    tokens = _tokens(state, doc["id"]) * int(body.get("n_epochs") or 1)
    return {
        "estimation_available": True,
        "allowed_to_proceed": True,
        "estimated_train_token_count": float(tokens),
        "estimated_eval_token_count": 0.0,
        "estimated_total_price": round(tokens * _USD_PER_MILLION_TOKENS / 1e6, 6),
        "user_limit": 1000.0,
    }


def _training_file(state: StateDep, file_id: str, param: str) -> None:
    doc = state.store.get(FILE_KIND, file_id)
    if doc is None:
        raise ApiError(400, f"File {file_id} not found.", param=param)
    if doc["processing_status"] != "COMPLETED":
        raise ApiError(400, f"File {file_id} is {doc['processing_status']}, not validated.", param=param)


def _status(doc: Document) -> str:
    status: str = doc["status"]
    if status == "running" and doc.get("_phase"):
        return str(doc["_phase"])
    if status == "cancelled" and doc.get("_cancel_requested"):
        return "cancel_requested"
    return {
        "validating_files": "pending",
        "queued": "queued",
        "paused": "queued",
        "running": "running",
        "succeeded": "completed",
        "failed": "error",
        "cancelled": "cancelled",
    }[status]


def _job_view(doc: Document) -> dict[str, Any]:
    together = doc["_together"]
    hyper = doc["hyperparameters"]
    view: dict[str, Any] = {
        "id": doc["id"],
        "status": _status(doc),
        "user_id": _USER,
        "created_at": _iso(doc["created_at"]),
        "updated_at": _iso(doc.get("finished_at") or doc.get("_updated_at") or doc["created_at"]),
        "model": doc["model"],
        "suffix": together["suffix"],
        "training_file": doc["training_file"],
        "validation_file": doc["validation_file"] or "",
        "n_epochs": together["n_epochs"],
        "learning_rate": together["learning_rate"],
        "batch_size": hyper["batch_size"] if isinstance(hyper["batch_size"], int) else None,
        "random_seed": doc["seed"],
        "n_checkpoints": together["n_checkpoints"],
        "n_evals": together["n_evals"],
        "training_type": together["training_type"],
        "training_method": together["training_method"],
        "token_count": doc.get("trained_tokens"),
    }
    lora = together["training_type"]["type"] == "Lora"
    view["model_output_name"] = doc["_output_name"]
    view["adapter_output_name"] = f"{doc['_output_name']}-adapter" if lora else None
    return view


def _job(state: StateDep, job_id: str) -> Document:
    doc = state.store.get("job", job_id)
    if doc is None or doc.get("_api") != JOB_API:
        raise not_found("fine-tune job", job_id, param="id")
    return doc


@router.post("/v1/fine-tunes")
def create_fine_tune(state: StateDep, request: Request, body: CreateFineTune) -> dict[str, Any]:
    if body.model is None or body.model not in TOGETHER_BASE_MODELS:
        raise _unknown_model(str(body.model))
    _training_file(state, body.training_file, "training_file")
    if body.validation_file:
        _training_file(state, body.validation_file, "validation_file")
    method = str(body.training_method.get("method", "sft"))
    if method != "sft":
        raise ApiError(
            400, f"Training method {method!r} is not supported by the local server.", param="training_method"
        )
    batch = body.batch_size if isinstance(body.batch_size, int) else "auto"
    job_id = f"ft-{uuid.uuid4()}"
    training_type = (body.training_type or TrainingType(type="Full")).model_dump(exclude_none=True)
    job: Document = {
        "object": "fine_tuning.job",
        "id": job_id,
        "created_at": int(time.time()),
        "error": None,
        "fine_tuned_model": None,
        "finished_at": None,
        "hyperparameters": {
            "n_epochs": body.n_epochs,
            "batch_size": batch,
            "learning_rate_multiplier": "auto",
        },
        "model": body.model,
        "organization_id": f"org-{state.org}",
        "result_files": [],
        "status": "validating_files",
        "trained_tokens": None,
        "training_file": body.training_file,
        "validation_file": body.validation_file or None,
        "integrations": None,
        "seed": body.random_seed if body.random_seed is not None else 42,
        "estimated_finish": None,
        "method": {
            "type": "supervised",
            "supervised": {
                "hyperparameters": {
                    "n_epochs": body.n_epochs,
                    "batch_size": batch,
                    "learning_rate_multiplier": "auto",
                }
            },
        },
        "metadata": None,
        "user_provided_suffix": body.suffix,
        "_api": JOB_API,
        # Together names the model when the job is created: {account}/{base}-{suffix}-{short id}
        "_output_name": f"{state.org}/{body.model.rsplit('/', 1)[-1]}-{body.suffix or 'ft'}-{job_id[-6:]}",
        "_together": {
            "suffix": body.suffix,
            "n_epochs": body.n_epochs,
            "learning_rate": body.learning_rate,
            "n_checkpoints": body.n_checkpoints or 1,
            "n_evals": body.n_evals or 0,
            "training_type": training_type,
            "training_method": {
                "method": "sft",
                "train_on_inputs": body.training_method.get("train_on_inputs", "auto"),
            },
        },
        "_fault": state.faults.take_next_job(),
        "_step": 0,
    }
    state.store.insert("job", job)
    add_event(state, job_id, "Fine-tune request created", stage="job_pending")
    request.app.state.worker.wake()
    return _job_view(job)


@router.get("/v1/fine-tunes")
def list_fine_tunes(state: StateDep) -> dict[str, Any]:
    docs = [d for d in state.store.list("job", newest_first=True) if d.get("_api") == JOB_API]
    return {"data": [_job_view(d) for d in docs]}


@router.get("/v1/fine-tunes/{job_id}")
def retrieve_fine_tune(state: StateDep, job_id: str) -> dict[str, Any]:
    return _job_view(_job(state, job_id))


@router.post("/v1/fine-tunes/{job_id}/cancel")
def cancel_fine_tune(state: StateDep, job_id: str) -> dict[str, Any]:
    _job(state, job_id)
    refused: list[str] = []

    def change(doc: Document) -> Document | None:
        if doc["status"] not in {"validating_files", "queued", "running", "paused"}:
            refused.append(_status(doc))
            return None
        return {**doc, "status": "cancelled", "finished_at": int(time.time()), "_cancel_requested": True}

    doc = state.store.update("job", job_id, change)
    if doc is None or refused:
        raise ApiError(
            400, f"Cannot cancel a job whose status is '{refused[0] if refused else 'gone'}'.", param="id"
        )
    add_event(state, job_id, "Job cancel requested", stage="cancel_requested")
    view = _job_view(doc)
    state.store.update("job", job_id, lambda d: {**d, "_cancel_requested": False})
    add_event(state, job_id, "Job stopped: cancelled by the user", stage="job_stopped")
    return view


@router.get("/v1/fine-tunes/{job_id}/events")
def list_fine_tune_events(state: StateDep, job_id: str) -> dict[str, Any]:
    _job(state, job_id)
    events = [e for e in state.store.list("event", parent=job_id) if e.get("_stage")]
    return {
        "data": [
            {
                "object": "fine-tune-event",
                "created_at": _iso(e["created_at"]),
                "message": e["message"],
                "type": e["_stage"],
                "level": e["level"] if e["level"] in ("info", "warning", "error") else "info",
                **{key: e["data"][key] for key in ("step", "total_steps") if key in e.get("data", {})},
            }
            for e in events
        ]
    }


@router.get("/v1/fine-tunes/{job_id}/metrics")
def list_fine_tune_metrics(
    state: StateDep, job_id: str, global_step_from: Annotated[int | None, Query()] = None
) -> dict[str, Any]:
    _job(state, job_id)
    rows = []
    for event in state.store.list("event", parent=job_id):
        data = event.get("data") or {}
        if event["type"] != "metrics" or "train_loss" not in data:
            continue
        if global_step_from is not None and data["step"] < global_step_from:
            continue
        row = {"global_step": float(data["step"]), "train_loss": float(data["train_loss"])}
        if data.get("valid_loss") is not None:
            row["eval_loss"] = float(data["valid_loss"])
        rows.append(row)
    return {"metrics": rows}


@router.get("/v1/fine-tunes/{job_id}/checkpoints")
def list_fine_tune_checkpoints(state: StateDep, job_id: str) -> dict[str, Any]:
    _job(state, job_id)
    return {
        "data": [
            {
                "checkpoint_type": f"Intermediate (step {c['step_number']})",
                "created_at": _iso(c["created_at"]),
                "path": c["fine_tuned_model_checkpoint"],
                "step": c["step_number"],
                "checkpoint": "adapter",
            }
            for c in state.store.list("checkpoint", parent=job_id, newest_first=True)
        ]
    }
