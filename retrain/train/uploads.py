"""Training-file uploads through any OpenAI-compatible API, once per content.

``state/uploads/{provider}/{sha256}.json`` maps a file's content hash to the provider's file id,
so the same bytes are uploaded once to each provider. Uploads are also named
``retrain-{sha256[:16]}-{role}.jsonl``, so a crash between upload and record is recovered by
listing the provider's files. Files above ``upload_part_threshold_bytes`` go through the
multi-part Uploads API; with ``delete_files_after_job`` our uploads (and their records) are
deleted once the job ended (``delete_job_files``).
"""

from __future__ import annotations

import hashlib
import logging

from openai import NotFoundError, OpenAI
from openai.types import FileObject
from openai.types.fine_tuning import FineTuningJob

from retrain.config.services import ProviderSettings
from retrain.config.stage_settings import TrainingSettings
from retrain.exceptions import ProviderError
from retrain.providers.clients import api_errors, create_once
from retrain.storage.layout import upload_key, uploads_prefix
from retrain.storage.object_store import ObjectStore

__all__ = ["delete_job_files", "upload_training_file"]

logger = logging.getLogger(__name__)

_DEFAULT_PART_THRESHOLD = 64 * 1024 * 1024


def upload_training_file(
    client: OpenAI,
    store: ObjectStore,
    provider: ProviderSettings,
    content: bytes,
    *,
    role: str,
    training: TrainingSettings | None = None,
) -> str:
    """Upload content once per provider (by hash); return the provider's file id.

    Content above ``training.upload_part_threshold_bytes`` goes through the Uploads API in
    parts of ``upload_part_size_bytes``.
    """
    threshold = training.upload_part_threshold_bytes if training else _DEFAULT_PART_THRESHOLD
    part_size = training.upload_part_size_bytes if training else _DEFAULT_PART_THRESHOLD
    digest = hashlib.sha256(content).hexdigest()
    name = f"retrain-{digest[:16]}-{role}.jsonl"
    record_key = upload_key(provider.name, digest)
    record = store.get_json_or_none(record_key)
    with api_errors(f"uploading {role} file", provider):
        if record is not None and _file_exists(client, record["file_id"]):
            logger.info("reusing uploaded %s file %s (%d bytes)", role, record["file_id"], len(content))
            return str(record["file_id"])
        existing = _listed_file(client, name, len(content))
        if existing is not None:
            file_id = existing.id
            logger.info("found %s file %s already on the provider (same name and size)", role, file_id)
        elif len(content) > threshold:
            upload = client.uploads.upload_file_chunked(
                file=content,
                filename=name,
                bytes=len(content),
                mime_type="text/jsonl",
                purpose="fine-tune",
                part_size=part_size,
            )
            if upload.status != "completed" or upload.file is None:
                raise ProviderError(
                    f"multi-part upload {upload.id} of the {role} file ended {upload.status}: re-run to retry"
                )
            file_id = upload.file.id
            parts = -(-len(content) // part_size)
            logger.info("uploaded %s file %s in %d parts (%d bytes)", role, file_id, parts, len(content))
        else:
            file_id = create_once(
                client,
                lambda once: once.files.create(file=(name, content), purpose="fine-tune"),
                lambda: _listed_file(client, name, len(content)),
                provider,
            ).id
            logger.info("uploaded %s file %s (%d bytes)", role, file_id, len(content))
    store.put_json(record_key, {"file_id": file_id, "bytes": len(content), "sha256": digest, "name": name})
    return file_id


def delete_job_files(
    client: OpenAI, store: ObjectStore, provider: ProviderSettings, job: FineTuningJob
) -> list[str]:
    """Delete the job's training and validation files that we uploaded, and their records."""
    wanted = {job.training_file, job.validation_file} - {None, ""}
    deleted = []
    for info in list(store.list(uploads_prefix(provider.name))):
        record = store.get_json(info.key)
        file_id = record.get("file_id")
        if file_id not in wanted:
            continue
        with api_errors(f"deleting file {file_id}", provider):
            try:
                client.files.delete(str(file_id))
            except NotFoundError:
                logger.info("file %s was already deleted", file_id)
        store.delete(info.key)
        deleted.append(str(file_id))
    if deleted:
        logger.info("deleted uploaded files %s of job %s", ", ".join(deleted), job.id)
    return deleted


def _listed_file(client: OpenAI, name: str, size: int) -> FileObject | None:
    """Our upload of this content, found by its hash-derived name (after a crash or a timeout)."""
    return next(
        (f for f in client.files.list(purpose="fine-tune") if f.filename == name and f.bytes == size), None
    )


def _file_exists(client: OpenAI, file_id: str) -> bool:
    try:
        client.files.retrieve(file_id)
    except NotFoundError:
        return False
    return True
