"""Fine-tuning jobs: create, list, retrieve, cancel, pause, resume, events and checkpoints."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from local_openai.errors import ApiError, not_found
from local_openai.state import BASE_MODELS, ServerState, StateDep, public
from local_openai.store import Document, new_id
from local_openai.worker import ACTIVE, TERMINAL, add_event

__all__ = ["router"]

router = APIRouter()

_AUTO = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The published spec's bounds (FineTuneSupervisedHyperparameters, FineTuneDPOHyperparameters).
    n_epochs: Annotated[int, Field(ge=1, le=50)] | Literal["auto"] = Field(default="auto")
    batch_size: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = Field(default="auto")
    learning_rate_multiplier: Annotated[float, Field(gt=0)] | Literal["auto"] = Field(default="auto")
    beta: Annotated[float, Field(gt=0, le=2)] | Literal["auto"] | None = None


class CreateJob(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: Hyperparameters | None = None
    method: dict[str, Any] | None = None
    suffix: str | None = Field(default=None, min_length=1, max_length=64)
    seed: int | None = Field(default=None, ge=0, le=2147483647)
    metadata: dict[str, str] | None = None
    integrations: list[dict[str, Any]] | None = None


def _view(doc: Document) -> dict[str, Any]:
    """The public job; a paused job reads as ``queued`` because the API's status enum has no paused state."""
    job = public(doc)
    if job["status"] == "paused":
        job["status"] = "queued"
    return job


def _method(body: CreateJob) -> dict[str, Any]:
    if body.method is None:
        hyper = body.hyperparameters.model_dump(exclude_none=True) if body.hyperparameters else {}
        return {"type": "supervised", "supervised": {"hyperparameters": {**_AUTO, **hyper}}}
    kind = body.method.get("type")
    if kind not in ("supervised", "dpo"):
        raise ApiError(
            400, f"Unsupported method type {kind!r}; use 'supervised' or 'dpo'.", param="method.type"
        )
    given = (body.method.get(kind) or {}).get("hyperparameters") or {}
    try:
        hyper = Hyperparameters.model_validate(given).model_dump(exclude_none=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        param = f"method.{kind}.hyperparameters" + (f".{name}" if name else "")
        raise ApiError(400, f"Invalid {param}: {first['msg']}", param=param) from exc
    if kind == "dpo":
        hyper.setdefault("beta", "auto")
    return {"type": kind, kind: {"hyperparameters": {**_AUTO, **hyper}}}


def _check_file(state: ServerState, file_id: str, param: str) -> None:
    doc = state.store.get("file", file_id)
    if doc is None:
        raise ApiError(
            400, f"Invalid file ID: '{file_id}'. No such file.", param=param, code="invalid_file_id"
        )
    if doc["purpose"] != "fine-tune":
        raise ApiError(400, f"File '{file_id}' has purpose '{doc['purpose']}', not 'fine-tune'.", param=param)


def _get(state: ServerState, job_id: str) -> Document:
    doc = state.store.get("job", job_id)
    if doc is None or doc.get("_api") is not None:  # Together's jobs have their own routes
        raise not_found("fine-tuning job", job_id, param="fine_tuning_job_id", code="fine_tune_not_found")
    return doc


@router.post("/fine_tuning/jobs")
def create_job(state: StateDep, request: Request, body: CreateJob) -> dict[str, Any]:
    if body.model not in BASE_MODELS and state.store.get("model", body.model) is None:
        raise ApiError(
            400,
            f"Model {body.model} is not available for fine-tuning or does not exist.",
            param="model",
            code="model_not_available",
        )
    _check_file(state, body.training_file, "training_file")
    if body.validation_file:
        _check_file(state, body.validation_file, "validation_file")
    method = _method(body)
    hyper = method[method["type"]]["hyperparameters"]
    job_id = new_id("ftjob")
    job: Document = {
        "object": "fine_tuning.job",
        "id": job_id,
        "created_at": int(time.time()),
        "error": None,
        "fine_tuned_model": None,
        "finished_at": None,
        "hyperparameters": {k: hyper[k] for k in _AUTO},
        "model": body.model,
        "organization_id": f"org-{state.org}",
        "result_files": [],
        "status": "validating_files",
        "trained_tokens": None,
        "training_file": body.training_file,
        "validation_file": body.validation_file,
        "integrations": None,
        "seed": body.seed if body.seed is not None else int(time.time()) % 2147483647,
        "estimated_finish": None,
        "method": method,
        "metadata": body.metadata,
        "user_provided_suffix": body.suffix,
        "_fault": state.faults.take_next_job(),
        "_step": 0,
    }
    state.store.insert("job", job)
    add_event(state, job_id, f"Created fine-tuning job: {job_id}")
    request.app.state.worker.wake()
    return _view(job)


def _metadata_filter(request: Request) -> dict[str, str] | None:
    wanted = {
        key[len("metadata[") : -1]: value
        for key, value in request.query_params.items()
        if key.startswith("metadata[") and key.endswith("]")
    }
    return wanted or None


def _page(docs: list[Document], after: str | None, limit: int) -> tuple[list[Document], bool]:
    if after is not None:
        ids = [d["id"] for d in docs]
        docs = docs[ids.index(after) + 1 :] if after in ids else []
    return docs[:limit], len(docs) > limit


@router.get("/fine_tuning/jobs")
def list_jobs(
    state: StateDep,
    request: Request,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    docs = [d for d in state.store.list("job", newest_first=True) if d.get("_api") is None]
    wanted = _metadata_filter(request)
    if request.query_params.get("metadata") == "null":
        docs = [d for d in docs if not d["metadata"]]
    elif wanted:
        docs = [d for d in docs if all((d["metadata"] or {}).get(k) == v for k, v in wanted.items())]
    page, more = _page(docs, after, limit)
    return {"object": "list", "data": [_view(d) for d in page], "has_more": more}


@router.get("/fine_tuning/jobs/{job_id}")
def retrieve_job(state: StateDep, job_id: str) -> dict[str, Any]:
    return _view(_get(state, job_id))


def _transition(state: ServerState, job_id: str, allowed: set[str], target: str, verb: str) -> Document:
    _get(state, job_id)
    refused: list[str] = []

    def change(doc: Document) -> Document | None:
        if doc["status"] not in allowed:
            refused.append(doc["status"])
            return None
        extra = {"finished_at": int(time.time()), "estimated_finish": None} if target in TERMINAL else {}
        return {**doc, "status": target, **extra}

    doc = state.store.update("job", job_id, change)
    if doc is None or refused:
        status = refused[0] if refused else "deleted"
        raise ApiError(400, f"Cannot {verb} a job whose status is '{status}'.", param="fine_tuning_job_id")
    return doc


@router.post("/fine_tuning/jobs/{job_id}/cancel")
def cancel_job(state: StateDep, job_id: str) -> dict[str, Any]:
    doc = _transition(state, job_id, ACTIVE | {"paused"}, "cancelled", "cancel")
    add_event(state, job_id, "Fine-tuning job cancelled")
    return _view(doc)


@router.post("/fine_tuning/jobs/{job_id}/pause")
def pause_job(state: StateDep, job_id: str) -> dict[str, Any]:
    doc = _transition(state, job_id, {"running"}, "paused", "pause")
    add_event(state, job_id, "Fine-tuning job paused")
    return _view(doc)


@router.post("/fine_tuning/jobs/{job_id}/resume")
def resume_job(state: StateDep, request: Request, job_id: str) -> dict[str, Any]:
    doc = _transition(state, job_id, {"paused"}, "running", "resume")
    add_event(state, job_id, "Fine-tuning job resumed")
    request.app.state.worker.wake()
    return _view(doc)


@router.get("/fine_tuning/jobs/{job_id}/events")
def list_events(
    state: StateDep, job_id: str, after: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> dict[str, Any]:
    _get(state, job_id)
    page, more = _page(state.store.list("event", parent=job_id, newest_first=True), after, limit)
    return {"object": "list", "data": page, "has_more": more}


@router.get("/fine_tuning/jobs/{job_id}/checkpoints")
def list_checkpoints(
    state: StateDep, job_id: str, after: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> dict[str, Any]:
    _get(state, job_id)
    page, more = _page(state.store.list("checkpoint", parent=job_id, newest_first=True), after, limit)
    return {
        "object": "list",
        "data": page,
        "has_more": more,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }
