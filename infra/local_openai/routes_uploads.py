"""Uploads: a file sent in parts (create, add parts, complete into a File, cancel).

Parts are stored as blobs of their own until the upload completes; completing joins them
in the order given, checks the byte count (and md5 when sent) and creates the File.
"""

from __future__ import annotations

import hashlib
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from local_openai.errors import ApiError, not_found
from local_openai.routes_files import store_file
from local_openai.state import ServerState, StateDep, public
from local_openai.store import Document, new_id

__all__ = ["router"]

router = APIRouter()

_MAX_UPLOAD_BYTES = 8 * 1024**3
_MAX_PART_BYTES = 64 * 1024**2
_DEFAULT_EXPIRY_SECONDS = 3600


class ExpiresAfter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    anchor: Literal["created_at"]
    seconds: int = Field(ge=3600, le=2_592_000)


class CreateUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1)
    purpose: Literal["assistants", "batch", "fine-tune", "vision"]
    bytes: int = Field(ge=0, le=_MAX_UPLOAD_BYTES)
    mime_type: str = Field(min_length=1)
    expires_after: ExpiresAfter | None = None


class CompleteUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    part_ids: list[str]
    md5: str | None = None


def _get(state: ServerState, upload_id: str) -> Document:
    doc = state.store.get("upload", upload_id)
    if doc is None:
        raise not_found("upload", upload_id, param="upload_id")
    if doc["status"] == "pending" and time.time() > doc["expires_at"]:
        doc = state.store.update("upload", upload_id, lambda d: {**d, "status": "expired"}) or doc
    return doc


def _require_pending(doc: Document, action: str) -> None:
    if doc["status"] != "pending":
        raise ApiError(
            400, f"Cannot {action} upload {doc['id']}: its status is {doc['status']!r}, not 'pending'."
        )


@router.post("/uploads")
def create_upload(state: StateDep, body: CreateUpload) -> dict[str, Any]:
    if body.purpose == "fine-tune" and not body.filename.endswith(".jsonl"):
        raise ApiError(400, "Invalid file format for Fine-Tuning API. Must be .jsonl", param="filename")
    now = int(time.time())
    seconds = body.expires_after.seconds if body.expires_after else _DEFAULT_EXPIRY_SECONDS
    doc = {
        "id": new_id("upload", "_"),
        "object": "upload",
        "bytes": body.bytes,
        "created_at": now,
        "filename": body.filename,
        "purpose": body.purpose,
        "status": "pending",
        "expires_at": now + seconds,
        "file": None,
        "_mime_type": body.mime_type,
    }
    return public(state.store.insert("upload", doc))


@router.post("/uploads/{upload_id}/parts")
def add_upload_part(state: StateDep, upload_id: str, data: Annotated[UploadFile, File()]) -> dict[str, Any]:
    _require_pending(_get(state, upload_id), "add a part to")
    content = data.file.read()
    if len(content) > _MAX_PART_BYTES:
        raise ApiError(
            400, f"A part can be at most {_MAX_PART_BYTES} bytes (got {len(content)}).", param="data"
        )
    part_id = new_id("part", "_")
    state.store.blob_path(part_id).write_bytes(content)
    part = {
        "id": part_id,
        "object": "upload.part",
        "created_at": int(time.time()),
        "upload_id": upload_id,
        "_bytes": len(content),
    }
    return public(state.store.insert("upload_part", part, parent=upload_id))


@router.post("/uploads/{upload_id}/complete")
def complete_upload(state: StateDep, upload_id: str, body: CompleteUpload) -> dict[str, Any]:
    doc = _get(state, upload_id)
    _require_pending(doc, "complete")
    parts = {part["id"]: part for part in state.store.list("upload_part", parent=upload_id)}
    unknown = [part_id for part_id in body.part_ids if part_id not in parts]
    if unknown:
        raise ApiError(400, f"Parts {unknown} do not belong to upload {upload_id}.", param="part_ids")
    if len(set(body.part_ids)) != len(body.part_ids):
        raise ApiError(400, "part_ids lists a part more than once.", param="part_ids")
    content = b"".join(state.store.blob_path(part_id).read_bytes() for part_id in body.part_ids)
    if len(content) != doc["bytes"]:
        raise ApiError(
            400,
            f"The upload was created for {doc['bytes']} bytes but the parts hold {len(content)} bytes.",
            param="part_ids",
        )
    if body.md5 is not None and hashlib.md5(content).hexdigest() != body.md5.lower():
        raise ApiError(400, "The md5 checksum does not match the uploaded bytes.", param="md5")
    file_doc = store_file(state, content, filename=doc["filename"], purpose=doc["purpose"])
    for part_id in parts:
        state.store.blob_path(part_id).unlink(missing_ok=True)
    done = state.store.update("upload", upload_id, lambda d: {**d, "status": "completed", "file": file_doc})
    assert done is not None
    return public(done)


@router.post("/uploads/{upload_id}/cancel")
def cancel_upload(state: StateDep, upload_id: str) -> dict[str, Any]:
    _require_pending(_get(state, upload_id), "cancel")
    for part in state.store.list("upload_part", parent=upload_id):
        state.store.blob_path(part["id"]).unlink(missing_ok=True)
    done = state.store.update("upload", upload_id, lambda d: {**d, "status": "cancelled"})
    assert done is not None
    return public(done)
