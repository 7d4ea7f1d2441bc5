"""The `train-lora` flow: LoRA fine-tuning of an open-weight model on one dataset version, started
by the nightly flow on a work pool (a process pool locally, a Kubernetes GPU pool in production)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from retrain.train.lora.base_models import require_training_extra
from retrain.train.lora.runs import LoraRun
from tasks.lora_training import (
    find_saved_adapter,
    save_lora_adapter,
    scratch_dir,
    train_lora_adapter,
    training_config,
)

__all__ = ["train_lora"]


@flow(name="train-lora", log_prints=False, retries=0)
def train_lora(
    dataset_version: str,
    config_hash: str,
    base_model: str,
    config: dict[str, Any],
    init_adapter: str | None = None,
    init_hash: str | None = None,
) -> dict[str, Any]:
    """Train (or find already trained) the adapter of one dataset version and config; its manifest."""
    run = LoraRun(dataset_version, config_hash, base_model, init_adapter, init_hash)
    lora = training_config(run, config, init_hash)
    saved = find_saved_adapter(run)
    if saved is None:
        require_training_extra()
        with scratch_dir() as workdir:
            trained = train_lora_adapter(run, lora, workdir)
            saved = save_lora_adapter(run, trained["folder"], trained["train_tokens"])
    get_run_logger().info("adapter %s: %s", run.model_id, saved.uri)
    return saved.__dict__
