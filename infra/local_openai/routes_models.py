"""Models: the fixed base models and the fine-tuned models this server trained."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from local_openai.errors import ApiError
from local_openai.state import BASE_MODELS, StateDep, public

__all__ = ["router"]

router = APIRouter()


def _base(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": BASE_MODELS[model_id], "owned_by": "system"}


def _missing(model_id: str) -> ApiError:
    return ApiError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")


@router.get("/models")
def list_models(state: StateDep) -> dict[str, Any]:
    tuned = [public(d) for d in state.store.list("model") if not d["_checkpoint"]]
    return {"object": "list", "data": [_base(m) for m in BASE_MODELS] + tuned}


@router.get("/models/{model_id:path}")
def retrieve_model(state: StateDep, model_id: str) -> dict[str, Any]:
    if model_id in BASE_MODELS:
        return _base(model_id)
    doc = state.store.get("model", model_id)
    if doc is None:
        raise _missing(model_id)
    return public(doc)


@router.delete("/models/{model_id:path}")
def delete_model(state: StateDep, model_id: str) -> dict[str, Any]:
    if model_id in BASE_MODELS:
        raise ApiError(
            403, f"You do not have permission to delete the base model '{model_id}'.", param="model"
        )
    doc = state.store.get("model", model_id)
    if doc is None or not state.store.delete("model", model_id):
        raise _missing(model_id)
    state.forget(model_id)
    state.store.learner_path(doc["_learner"]).unlink(missing_ok=True)
    return {"id": model_id, "object": "model", "deleted": True}
