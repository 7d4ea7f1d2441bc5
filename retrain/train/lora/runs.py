"""One lora training run in the bucket: what it reads, what it saved, and how far it got.

A run is named by its dataset version and the hash of the settings that change what it learns
(``lora_config_hash``); everything it touches lives under ``models/lora/{version}-{hash}/``
(``retrain.storage.layout.lora_run_prefix``):

- ``data/train.jsonl``, ``data/validation.jsonl``: the training files, written create-only by the
  nightly flow before it starts the run;
- ``adapter/``: the adapter, tokenizer, ``training_config.json`` and ``metrics.json``, each file
  create-only, written by the `train-lora` flow;
- ``manifest.json``: every adapter file with its sha256, and the sha256 of that list (the
  adapter's content hash, recorded in the registry), written create-only once all files are up.
  A run with a manifest is done: a re-run finds it and trains nothing;
- ``progress.json``: step, total and the loss so far, overwritten as the run trains.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from retrain.config.stage_settings import LoraSettings
from retrain.exceptions import AlreadyExists, DataError
from retrain.storage.layout import (
    lora_adapter_prefix,
    lora_data_key,
    lora_manifest_key,
    lora_progress_key,
    lora_run_prefix,
)
from retrain.storage.object_store import ObjectStore
from retrain.train.result import LossPoint

__all__ = [
    "AdapterManifest",
    "LoraRun",
    "RunProgress",
    "download_adapter",
    "lora_config_hash",
    "lora_run",
    "put_training_inputs",
    "read_manifest",
    "read_progress",
    "run_status",
    "save_adapter",
    "write_progress",
]

_STATUS_OF_STATE = {
    "SCHEDULED": "queued",
    "PENDING": "queued",
    "RUNNING": "running",
    "PAUSED": "paused",
    "COMPLETED": "succeeded",
    "FAILED": "failed",
    "CRASHED": "failed",
    "CANCELLING": "cancelling",
    "CANCELLED": "cancelled",
}


def run_status(state_type: str | None) -> str:
    """A training flow run's Prefect state type as a job status (queued, running, succeeded, ...):
    the words the ledger, the job records and ``retrain jobs`` use for every backend."""
    return _STATUS_OF_STATE.get(state_type or "SCHEDULED", "queued")


_LEARNS = ("base_model", "epochs", "learning_rate", "batch_size", "max_length", "rank", "alpha", "dropout")


def lora_config_hash(lora: LoraSettings, init_adapter_hash: str | None = None) -> str:
    """A short hash of what changes what a run learns: the base model, the hyperparameters, the
    seed and the adapter it starts from (continued fine-tuning)."""
    relevant: dict[str, Any] = {name: getattr(lora, name) for name in _LEARNS}
    relevant |= {"target_modules": sorted(lora.target_modules), "seed": lora.seed, "init": init_adapter_hash}
    return hashlib.sha256(orjson.dumps(relevant, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


@dataclass(frozen=True)
class LoraRun:
    """One run: its dataset version, config hash and the adapter it continues from (if any)."""

    dataset_version: str
    config_hash: str
    base_model: str
    init_adapter: str | None = None  # an s3:// prefix of the adapter to continue from
    init_hash: str | None = None  # its content hash

    @property
    def prefix(self) -> str:
        return lora_run_prefix(self.dataset_version, self.config_hash)

    @property
    def train_key(self) -> str:
        return lora_data_key(self.dataset_version, self.config_hash, "train")

    @property
    def validation_key(self) -> str:
        return lora_data_key(self.dataset_version, self.config_hash, "validation")

    @property
    def adapter_prefix(self) -> str:
        return lora_adapter_prefix(self.dataset_version, self.config_hash)

    @property
    def manifest_key(self) -> str:
        return lora_manifest_key(self.dataset_version, self.config_hash)

    @property
    def progress_key(self) -> str:
        return lora_progress_key(self.dataset_version, self.config_hash)

    @property
    def model_id(self) -> str:
        """The name the adapter is served under (vLLM's ``lora_name``, the request's ``model``)."""
        return f"{self.dataset_version}-{self.config_hash}"

    def idempotency_key(self, attempt: int = 1) -> str:
        """The key the training flow run is created with: the same run for the same version and
        config, a fresh one only for a new attempt after a failed one."""
        key = f"train-lora:{self.dataset_version}:{self.config_hash}"
        return key if attempt == 1 else f"{key}:attempt-{attempt}"

    def parameters(self) -> dict[str, Any]:
        """The `train-lora` flow's parameters for this run."""
        return {
            "dataset_version": self.dataset_version,
            "config_hash": self.config_hash,
            "base_model": self.base_model,
            "init_adapter": self.init_adapter,
            "init_hash": self.init_hash,
        }


def lora_run(
    lora: LoraSettings, dataset_version: str, *, init_adapter: str | None = None, init_hash: str | None = None
) -> LoraRun:
    return LoraRun(
        dataset_version, lora_config_hash(lora, init_hash), lora.base_model, init_adapter, init_hash
    )


def _put_same(store: ObjectStore, key: str, data: bytes, what: str) -> None:
    """Create ``key`` with ``data``; an existing object must hold the same bytes."""
    try:
        store.put_bytes(key, data, create_only=True)
    except AlreadyExists:
        if hashlib.sha256(store.get_bytes(key)).digest() != hashlib.sha256(data).digest():
            raise DataError(
                f"{store.uri(key)} already holds other {what} for this run; a run's files never change, "
                "so delete that run's prefix only if you know why it differs"
            ) from None


def put_training_inputs(store: ObjectStore, run: LoraRun, train: bytes, validation: bytes) -> None:
    """The run's training files, create-only (a re-run after a crash finds the same bytes there)."""
    _put_same(store, run.train_key, train, "training data")
    _put_same(store, run.validation_key, validation, "validation data")


@dataclass(frozen=True)
class RunProgress:
    step: int
    total_steps: int
    loss: list[LossPoint] = field(default_factory=list)
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "message": self.message,
            "loss": [[p.step, p.train_loss, p.valid_loss] for p in self.loss],
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> RunProgress:
        loss = [LossPoint(int(step), float(train), valid) for step, train, valid in record.get("loss", [])]
        return cls(int(record["step"]), int(record["total_steps"]), loss, str(record.get("message", "")))


def write_progress(store: ObjectStore, run: LoraRun, progress: RunProgress) -> None:
    store.put_json(run.progress_key, progress.to_json())


def read_progress(store: ObjectStore, run: LoraRun) -> RunProgress | None:
    record = store.get_json_or_none(run.progress_key)
    return None if record is None else RunProgress.from_json(record)


@dataclass(frozen=True)
class AdapterManifest:
    """What a finished run saved: its files' sha256 and the hash of the whole."""

    uri: str
    content_hash: str
    files: dict[str, str]
    train_tokens: int | None = None

    @classmethod
    def of(cls, uri: str, files: dict[str, str], train_tokens: int | None) -> AdapterManifest:
        listing = orjson.dumps(dict(sorted(files.items())))
        return cls(uri, hashlib.sha256(listing).hexdigest(), dict(sorted(files.items())), train_tokens)


def read_manifest(store: ObjectStore, run: LoraRun) -> AdapterManifest | None:
    record = store.get_json_or_none(run.manifest_key)
    return None if record is None else AdapterManifest(**record)


def save_adapter(
    store: ObjectStore, run: LoraRun, folder: Path, *, train_tokens: int | None
) -> AdapterManifest:
    """Upload every file of ``folder`` under the run's ``adapter/`` (create-only), then the manifest.

    A file already there with the same bytes is kept (a retry after a crash mid-upload); the
    manifest a concurrent or earlier save wrote first wins.
    """
    files: dict[str, str] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        data = path.read_bytes()
        _put_same(store, f"{run.adapter_prefix}{name}", data, "adapter files")
        files[name] = hashlib.sha256(data).hexdigest()
    manifest = AdapterManifest.of(store.uri(run.adapter_prefix), files, train_tokens)
    try:
        store.put_json(run.manifest_key, manifest.__dict__, create_only=True)
    except AlreadyExists:
        existing = read_manifest(store, run)
        if existing is not None:
            return existing
    return manifest


def download_adapter(store: ObjectStore, prefix: str, destination: Path) -> Path:
    """Copy the adapter under key ``prefix`` into ``destination`` (kept if already complete)."""
    infos = list(store.list(prefix))
    if not infos:
        raise DataError(f"no adapter at {store.uri(prefix)}: nothing was saved there")
    destination.mkdir(parents=True, exist_ok=True)
    for info in infos:
        target = destination / info.key.removeprefix(prefix)
        if target.is_file() and target.stat().st_size == info.size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".part")
        partial.write_bytes(store.get_bytes(info.key))
        partial.replace(target)
    return destination
