"""The tasks of the `train-lora` flow: train a LoRA adapter on a dataset version's files in the
bucket and save it there (logic in retrain.train.lora: runs, sft, base_models)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from retrain.config.stage_settings import LoraSettings
from retrain.exceptions import ConfigError
from retrain.report.training import training_metrics_markdown
from retrain.train.lora.runs import (
    AdapterManifest,
    LoraRun,
    RunProgress,
    download_adapter,
    lora_config_hash,
    read_manifest,
    save_adapter,
    write_progress,
)
from retrain.train.result import LossPoint
from tasks.context import task_context
from tasks.progress import TaskProgress
from tasks.retry import IO_TASK

__all__ = ["find_saved_adapter", "save_lora_adapter", "train_lora_adapter", "training_config"]


def training_config(run: LoraRun, config: dict[str, Any], init_hash: str | None) -> LoraSettings:
    """The nightly flow's LoRA settings, checked against the run's config hash."""
    lora = LoraSettings.model_validate(config)
    if lora_config_hash(lora, init_hash) != run.config_hash or lora.base_model != run.base_model:
        raise ConfigError(
            f"the settings passed to train-lora do not hash to {run.config_hash}: start the run from the "
            "nightly flow, which passes them whole"
        )
    return lora


@task(name="find-saved-adapter", **IO_TASK)
def find_saved_adapter(run: LoraRun) -> AdapterManifest | None:
    """The adapter an earlier attempt of this run saved, if it finished: nothing to train again."""
    manifest = read_manifest(task_context().store, run)
    if manifest is not None:
        get_run_logger().info(
            "run %s was trained already: %s (%s)", run.model_id, manifest.uri, manifest.content_hash
        )
    return manifest


@task(name="train-lora-adapter", cache_policy=NO_CACHE)
def train_lora_adapter(run: LoraRun, lora: LoraSettings, workdir: str) -> dict[str, Any]:
    """Fine-tune the adapter into ``workdir``; progress in the UI and in the run's progress.json."""
    from retrain.train.lora.sft import train_adapter

    context = task_context()
    store, logger = context.store, get_run_logger()
    train = store.get_bytes(run.train_key)
    validation = store.get_bytes(run.validation_key)
    init: Path | None = None
    if run.init_adapter:
        init = download_adapter(store, _key_of(run.init_adapter, store.uri("")), Path(workdir) / "init")
        logger.info("continuing from the adapter at %s", run.init_adapter)
    progress = TaskProgress(f"training {run.model_id}", key="training-progress")
    loss: list[LossPoint] = []

    def on_step(
        step: int, total: int, train_loss: float | None, valid_loss: float | None, epoch: float
    ) -> None:
        if train_loss is not None:
            loss.append(LossPoint(step, train_loss, valid_loss))
        message = f"step {step} of {total}, epoch {epoch:.2f}" + (
            f", training loss {train_loss:.4g}" if train_loss is not None else ""
        )
        progress.update(step, total, message)
        write_progress(store, run, RunProgress(step, total, list(loss), message))

    summary = train_adapter(
        lora, train, validation, Path(workdir) / "adapter", init_adapter=init, on_step=on_step
    )
    if loss:
        create_markdown_artifact(
            training_metrics_markdown(loss), key="training-metrics", description=f"Loss of {run.model_id}"
        )
    return {"folder": str(summary.output_dir), "train_tokens": summary.train_tokens}


def _key_of(uri: str, bucket_root: str) -> str:
    if not uri.startswith(bucket_root):
        raise ConfigError(
            f"adapter {uri} is not in this bucket ({bucket_root}); continue only from adapters here"
        )
    return uri.removeprefix(bucket_root)


@task(name="save-lora-adapter", **IO_TASK)
def save_lora_adapter(run: LoraRun, folder: str, train_tokens: int | None) -> AdapterManifest:
    manifest = save_adapter(task_context().store, run, Path(folder), train_tokens=train_tokens)
    get_run_logger().info(
        "adapter %s saved at %s (sha256 %s)", run.model_id, manifest.uri, manifest.content_hash
    )
    return manifest


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="retrain-lora-")
