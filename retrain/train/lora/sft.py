"""Supervised LoRA fine-tuning with TRL's ``SFTTrainer`` and PEFT, on the CPU or a GPU.

``train_adapter`` takes a run's training and validation JSONL (chat examples), renders each
through the base model's chat template with the loss on assistant turns only
(``retrain.train.lora.rendering``), and trains a LoRA adapter: seeded, the validation split
evaluated each epoch, the loss reported step by step through ``on_step``. It saves into one
folder the adapter (``adapter_config.json``, ``adapter_model.safetensors``), the tokenizer,
``training_config.json`` and ``metrics.json``. With ``init_adapter`` it continues training that
adapter (continued fine-tuning) instead of starting one from the base model.

torch, transformers, peft, trl and datasets are imported inside the functions: the training extra.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from retrain.config.stage_settings import LoraSettings
from retrain.exceptions import DataError
from retrain.train.lora.base_models import choose_device, load_base_model, locate_base_model
from retrain.train.lora.rendering import RenderedExample, render_example

__all__ = ["OnStep", "TrainSummary", "render_jsonl", "train_adapter"]

OnStep = Callable[[int, int, float | None, float | None, float], None]


@dataclass(frozen=True)
class TrainSummary:
    output_dir: Path
    steps: int
    train_tokens: int
    tokens_per_second: float
    final_train_loss: float | None
    final_validation_loss: float | None
    losses: list[float] = field(default_factory=list)
    validation_losses: list[float] = field(default_factory=list)


def render_jsonl(tokenizer: Any, data: bytes, max_length: int, name: str) -> list[RenderedExample]:
    """Every line of a JSONL file of chat examples, rendered for the loss."""
    rendered = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            example = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise DataError(f"{name} line {number} is not JSON ({exc}); curated files are JSONL") from None
        rendered.append(
            render_example(tokenizer, example, max_length=max_length, where=f"{name} line {number}")
        )
    return [example for example in rendered if example.trained_tokens > 0]


def _dataset(examples: list[RenderedExample]) -> Any:
    from datasets import Dataset

    return Dataset.from_dict(
        {"input_ids": [e.input_ids for e in examples], "labels": [e.labels for e in examples]}
    )


def _peft_model(model: Any, lora: LoraSettings, init_adapter: Path | None) -> Any:
    from peft import LoraConfig, PeftModel, get_peft_model

    if init_adapter is not None:
        return PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [module for module in lora.target_modules if module in names]
    if not targets:
        raise DataError(
            f"none of RETRAIN_LORA__TARGET_MODULES {lora.target_modules} is a layer of the base model"
        )
    config = LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def _callback(on_step: OnStep, losses: list[float], validation: list[float]) -> Any:
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            logs = logs or {}
            train, valid = logs.get("loss"), logs.get("eval_loss")
            if train is None and valid is None:
                return
            if train is not None:
                losses.append(float(train))
            if valid is not None:
                validation.append(float(valid))
            on_step(state.global_step, state.max_steps, train, valid, float(state.epoch or 0.0))

    return _Progress()


def _config(lora: LoraSettings, output: Path, device: str, has_validation: bool) -> Any:
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(output.parent / f"{output.name}-trainer"),  # beside the adapter: not saved with it
        num_train_epochs=lora.epochs,
        per_device_train_batch_size=lora.batch_size,
        per_device_eval_batch_size=lora.batch_size,
        learning_rate=lora.learning_rate,
        lr_scheduler_type="linear",
        logging_steps=1,
        eval_strategy="epoch" if has_validation else "no",
        save_strategy="no",
        report_to=[],
        seed=lora.seed,
        data_seed=lora.seed,
        use_cpu=device == "cpu",
        bf16=device == "cuda",
        max_length=lora.max_length,
        gradient_checkpointing=lora.activation_checkpointing,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def train_adapter(
    lora: LoraSettings,
    train: bytes,
    validation: bytes,
    output: Path,
    *,
    init_adapter: Path | None = None,
    on_step: OnStep = lambda step, total, loss, valid, epoch: None,
) -> TrainSummary:
    """Train the adapter on the JSONL ``train`` (evaluating ``validation`` each epoch) into ``output``."""
    from transformers import PrinterCallback, set_seed
    from trl import SFTTrainer

    set_seed(lora.seed)
    device = choose_device(lora.device)
    files = locate_base_model(lora.base_model)
    model, tokenizer = load_base_model(files, device)
    train_examples = render_jsonl(tokenizer, train, lora.max_length, "train.jsonl")
    if not train_examples:
        raise DataError("train.jsonl has no example with an assistant turn to learn from")
    valid_examples = render_jsonl(tokenizer, validation, lora.max_length, "validation.jsonl")
    losses: list[float] = []
    validation_losses: list[float] = []
    trainer = SFTTrainer(
        model=_peft_model(model, lora, init_adapter),
        args=_config(lora, output, device, bool(valid_examples)),
        train_dataset=_dataset(train_examples),
        eval_dataset=_dataset(valid_examples) if valid_examples else None,
        processing_class=tokenizer,
        callbacks=[_callback(on_step, losses, validation_losses)],
    )
    trainer.remove_callback(PrinterCallback)  # the loss goes to on_step, not to stdout
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    tokens = sum(len(e.input_ids) for e in train_examples) * lora.epochs
    summary = TrainSummary(
        output_dir=output,
        steps=int(result.global_step),
        train_tokens=tokens,
        tokens_per_second=tokens / seconds if seconds > 0 else 0.0,
        final_train_loss=losses[-1] if losses else None,
        final_validation_loss=validation_losses[-1] if validation_losses else None,
        losses=losses,
        validation_losses=validation_losses,
    )
    _save(trainer, tokenizer, lora, summary, len(train_examples), len(valid_examples))
    return summary


def _save(
    trainer: Any, tokenizer: Any, lora: LoraSettings, summary: TrainSummary, n_train: int, n_valid: int
) -> None:
    output = summary.output_dir
    trainer.model.save_pretrained(str(output))
    tokenizer.save_pretrained(str(output))
    config = lora.model_dump(mode="json") | {"train_examples": n_train, "validation_examples": n_valid}
    (output / "training_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    metrics = {key: value for key, value in asdict(summary).items() if key != "output_dir"}
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
