"""Files: upload (multipart), list, retrieve, delete, download."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response

from local_openai.errors import ApiError, not_found
from local_openai.state import ServerState, StateDep, public
from local_openai.store import new_id

__all__ = ["router"]

router = APIRouter()

_UPLOAD_PURPOSES = {"assistants", "batch", "fine-tune", "vision", "user_data"}


def _get(state: StateDep, file_id: str) -> dict[str, Any]:
    doc = state.store.get("file", file_id)
    if doc is None:
        raise not_found("file", file_id, param="file_id")
    return doc


@router.post("/files")
def create_file(
    state: StateDep, file: Annotated[UploadFile, File()], purpose: Annotated[str, Form()]
) -> dict[str, Any]:
    if purpose not in _UPLOAD_PURPOSES:
        raise ApiError(
            400, f"'{purpose}' is not one of {sorted(_UPLOAD_PURPOSES)} - 'purpose'", param="purpose"
        )
    filename = file.filename or "upload"
    if purpose == "fine-tune" and not filename.endswith(".jsonl"):
        raise ApiError(400, "Invalid file format for Fine-Tuning API. Must be .jsonl", param="file")
    return public(store_file(state, file.file.read(), filename=filename, purpose=purpose))


def store_file(state: ServerState, content: bytes, *, filename: str, purpose: str) -> dict[str, Any]:
    """Keep the bytes as a blob and record the file (a direct upload or a completed Uploads)."""
    file_id = new_id("file")
    state.store.blob_path(file_id).write_bytes(content)
    doc = {
        "id": file_id,
        "object": "file",
        "bytes": len(content),
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
    }
    return state.store.insert("file", doc)


@router.get("/files")
def list_files(
    state: StateDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 10000,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    after: str | None = None,
) -> dict[str, Any]:
    docs = [
        d for d in state.store.list("file", newest_first=order == "desc") if purpose in (None, d["purpose"])
    ]
    if after is not None:
        ids = [d["id"] for d in docs]
        docs = docs[ids.index(after) + 1 :] if after in ids else []
    page = [public(d) for d in docs[:limit]]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else "",
        "last_id": page[-1]["id"] if page else "",
        "has_more": len(docs) > limit,
    }


@router.get("/files/{file_id}")
def retrieve_file(state: StateDep, file_id: str) -> dict[str, Any]:
    return public(_get(state, file_id))


@router.delete("/files/{file_id}")
def delete_file(state: StateDep, file_id: str) -> dict[str, Any]:
    _get(state, file_id)
    state.store.delete("file", file_id)
    state.store.blob_path(file_id).unlink(missing_ok=True)
    return {"id": file_id, "object": "file", "deleted": True}


@router.get("/files/{file_id}/content")
def file_content(state: StateDep, file_id: str) -> Response:
    doc = _get(state, file_id)
    media = "text/csv" if doc["filename"].endswith(".csv") else "application/octet-stream"
    return Response(state.store.blob_path(file_id).read_bytes(), media_type=media)
