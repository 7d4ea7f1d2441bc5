"""The calls a fine-tuning job needs from a provider, whichever API shape it has.

``retrain.train.jobs`` and ``retrain.train.uploads`` hold the logic (resume, create once, wait,
cancel, upload once per content); a ``JobApi`` makes the calls. Jobs, events and checkpoints come
back in our shape, which is OpenAI's (``FineTuningJob``: validating_files, queued, running,
succeeded, failed, cancelled): ``OpenAIJobApi`` passes them through, ``TogetherJobApi``
(``retrain.train.together_jobs``) maps Together's onto them. Errors are the SDK's own; callers
translate them with ``api_errors``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from openai import NotFoundError, OpenAI
from openai.types import FileObject
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint
from together import Together

from retrain.config.services import ProviderSettings
from retrain.exceptions import ProviderError
from retrain.providers.clients import create_once
from retrain.storage.object_store import ObjectStore
from retrain.train.job_spec import JobSpec
from retrain.train.together_jobs import TogetherJobApi

__all__ = ["JobApi", "OpenAIJobApi", "TrainingClient", "job_api"]

TrainingClient = OpenAI | Together


class JobApi(Protocol):
    """One provider's fine-tuning calls, in our shape."""

    provider: ProviderSettings

    def find_jobs(self, spec: JobSpec) -> list[FineTuningJob]:
        """The provider's jobs for this dataset version and config (found by metadata or name)."""
        ...

    def retrieve(self, job_id: str) -> FineTuningJob | None:
        """The job, or None if the provider does not know it."""
        ...

    def create(
        self,
        spec: JobSpec,
        training_file: str,
        validation_file: str | None,
        find: Callable[[], FineTuningJob | None],
    ) -> FineTuningJob:
        """Create the job once: after a timeout or a 5xx, ``find`` (the spec's alive job) is asked first."""
        ...

    def events(self, job_id: str) -> list[FineTuningJobEvent]: ...

    def cancel(self, job_id: str) -> FineTuningJob: ...

    def checkpoints(self, job_id: str) -> list[FineTuningJobCheckpoint]: ...

    def recent_jobs(self, limit: int) -> list[FineTuningJob]: ...

    def file_exists(self, file_id: str) -> bool: ...

    def find_file(self, name: str, size: int) -> str | None:
        """Our upload of this content, found by its hash-derived name (after a crash or a timeout)."""
        ...

    def upload(self, name: str, content: bytes, *, part_threshold: int, part_size: int) -> str:
        """Upload once; the new file's id."""
        ...

    def delete_file(self, file_id: str) -> bool:
        """Delete the file; False if it was already gone."""
        ...


class OpenAIJobApi:
    """OpenAI's fine-tuning API (OpenAI, Azure OpenAI, any compatible server)."""

    def __init__(self, client: OpenAI, provider: ProviderSettings) -> None:
        self.client = client
        self.provider = provider

    def find_jobs(self, spec: JobSpec) -> list[FineTuningJob]:
        matches = self.client.fine_tuning.jobs.list(
            metadata={"dataset_version": spec.dataset_version, "config_hash": spec.config_hash}, limit=20
        )
        return [job for job in matches if (job.metadata or {}).get("config_hash") == spec.config_hash]

    def retrieve(self, job_id: str) -> FineTuningJob | None:
        try:
            return self.client.fine_tuning.jobs.retrieve(job_id)
        except NotFoundError:
            return None

    def create(
        self,
        spec: JobSpec,
        training_file: str,
        validation_file: str | None,
        find: Callable[[], FineTuningJob | None],
    ) -> FineTuningJob:
        return create_once(
            self.client,
            lambda once: once.fine_tuning.jobs.create(
                model=spec.base_model,
                training_file=training_file,
                validation_file=validation_file,
                method=spec.method,  # type: ignore[arg-type]
                seed=spec.seed,
                suffix=spec.suffix,
                metadata=spec.metadata,
            ),
            find,
            self.provider,
        )

    def events(self, job_id: str) -> list[FineTuningJobEvent]:
        return list(self.client.fine_tuning.jobs.list_events(job_id, limit=100))

    def cancel(self, job_id: str) -> FineTuningJob:
        return self.client.fine_tuning.jobs.cancel(job_id)

    def checkpoints(self, job_id: str) -> list[FineTuningJobCheckpoint]:
        return list(self.client.fine_tuning.jobs.checkpoints.list(job_id, limit=100))

    def recent_jobs(self, limit: int) -> list[FineTuningJob]:
        return list(self.client.fine_tuning.jobs.list(limit=limit).data)

    def file_exists(self, file_id: str) -> bool:
        try:
            self.client.files.retrieve(file_id)
        except NotFoundError:
            return False
        return True

    def find_file(self, name: str, size: int) -> str | None:
        found = self._listed_file(name, size)
        return found.id if found else None

    def _listed_file(self, name: str, size: int) -> FileObject | None:
        files = self.client.files.list(purpose="fine-tune")
        return next((f for f in files if f.filename == name and f.bytes == size), None)

    def upload(self, name: str, content: bytes, *, part_threshold: int, part_size: int) -> str:
        if len(content) <= part_threshold:
            return create_once(
                self.client,
                lambda once: once.files.create(file=(name, content), purpose="fine-tune"),
                lambda: self._listed_file(name, len(content)),
                self.provider,
            ).id
        upload = self.client.uploads.upload_file_chunked(
            file=content,
            filename=name,
            bytes=len(content),
            mime_type="text/jsonl",
            purpose="fine-tune",
            part_size=part_size,
        )
        if upload.status != "completed" or upload.file is None:
            raise ProviderError(
                f"multi-part upload {upload.id} of {name} ended {upload.status}: re-run to retry"
            )
        return upload.file.id

    def delete_file(self, file_id: str) -> bool:
        try:
            self.client.files.delete(file_id)
        except NotFoundError:
            return False
        return True


def job_api(client: TrainingClient, provider: ProviderSettings, store: ObjectStore | None = None) -> JobApi:
    """The job API for a training client (``make_training_client``); ``store`` lets Together's jobs,
    which carry no metadata, be matched to the dataset version their job record names."""
    if isinstance(client, Together):
        return TogetherJobApi(client, provider, store)
    return OpenAIJobApi(client, provider)
