"""Training-file uploads to the training provider (OpenAI's API shape or Together's), once per content.

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

from openai.types.fine_tuning import FineTuningJob

from retrain.config.services import ProviderSettings
from retrain.config.stage_settings import TrainingSettings
from retrain.curate.training_files import TrainingFiles
from retrain.providers.clients import api_errors
from retrain.storage.layout import upload_key, uploads_prefix
from retrain.storage.object_store import ObjectStore
from retrain.train.job_api import TrainingClient, job_api

__all__ = ["delete_job_files", "upload_dataset_files", "upload_training_file"]

logger = logging.getLogger(__name__)

_DEFAULT_PART_THRESHOLD = 64 * 1024 * 1024


def upload_training_file(
    client: TrainingClient,
    store: ObjectStore,
    provider: ProviderSettings,
    content: bytes,
    *,
    role: str,
    training: TrainingSettings | None = None,
) -> str:
    """Upload content once per provider (by hash); return the provider's file id.

    Content above ``training.upload_part_threshold_bytes`` goes through the provider's multi-part
    upload (OpenAI's Uploads API, in parts of ``upload_part_size_bytes``).
    """
    threshold = training.upload_part_threshold_bytes if training else _DEFAULT_PART_THRESHOLD
    part_size = training.upload_part_size_bytes if training else _DEFAULT_PART_THRESHOLD
    digest = hashlib.sha256(content).hexdigest()
    name = f"retrain-{digest[:16]}-{role}.jsonl"
    record_key = upload_key(provider.name, digest)
    record = store.get_json_or_none(record_key)
    api = job_api(client, provider)
    with api_errors(f"uploading {role} file", provider):
        if record is not None and api.file_exists(record["file_id"]):
            logger.info("reusing uploaded %s file %s (%d bytes)", role, record["file_id"], len(content))
            return str(record["file_id"])
        existing = api.find_file(name, len(content))
        if existing is not None:
            file_id = existing
            logger.info("found %s file %s already on the provider (same name and size)", role, file_id)
        else:
            file_id = api.upload(name, content, part_threshold=threshold, part_size=part_size)
            parts = -(-len(content) // part_size) if len(content) > threshold else 1
            logger.info("uploaded %s file %s in %d part(s) (%d bytes)", role, file_id, parts, len(content))
    store.put_json(record_key, {"file_id": file_id, "bytes": len(content), "sha256": digest, "name": name})
    return file_id


def upload_dataset_files(
    client: TrainingClient,
    store: ObjectStore,
    provider: ProviderSettings,
    files: TrainingFiles,
    training: TrainingSettings,
) -> tuple[str, str | None]:
    """A dataset version's training file and, if it has one, its validation file: their file ids."""
    train = upload_training_file(client, store, provider, files.train, role="train", training=training)
    validation = (
        upload_training_file(client, store, provider, files.validation, role="validation", training=training)
        if files.validation_examples
        else None
    )
    return train, validation


def delete_job_files(
    client: TrainingClient, store: ObjectStore, provider: ProviderSettings, job: FineTuningJob
) -> list[str]:
    """Delete the job's training and validation files that we uploaded, and their records."""
    wanted = {job.training_file, job.validation_file} - {None, ""}
    api = job_api(client, provider)
    deleted = []
    for info in list(store.list(uploads_prefix(provider.name))):
        record = store.get_json(info.key)
        file_id = record.get("file_id")
        if file_id not in wanted:
            continue
        with api_errors(f"deleting file {file_id}", provider):
            if not api.delete_file(str(file_id)):
                logger.info("file %s was already deleted", file_id)
        store.delete(info.key)
        deleted.append(str(file_id))
    if deleted:
        logger.info("deleted uploaded files %s of job %s", ", ".join(deleted), job.id)
    return deleted
