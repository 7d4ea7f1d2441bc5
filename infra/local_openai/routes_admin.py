"""Operator endpoints outside the API: health, fault injection and request statistics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from local_openai.faults import FaultConfig
from local_openai.state import StateDep

__all__ = ["router"]

router = APIRouter()


@router.get("/health")
def health(state: StateDep) -> dict[str, Any]:
    return {"status": "ok", "org": state.org}


@router.get("/admin/faults")
def get_faults(state: StateDep) -> dict[str, Any]:
    return state.faults.config.model_dump()


@router.post("/admin/faults")
def set_faults(state: StateDep, config: FaultConfig) -> dict[str, Any]:
    state.faults.configure(config)
    return state.faults.config.model_dump()


@router.delete("/admin/faults")
def clear_faults(state: StateDep) -> dict[str, Any]:
    state.faults.configure(FaultConfig())
    return state.faults.config.model_dump()


@router.get("/admin/stats")
def stats(state: StateDep) -> dict[str, Any]:
    return {
        "routes": dict(state.route_counts),
        "chat_completions_by_model": dict(state.chat_counts),
        "faults_injected": dict(state.faults.injected),
    }
