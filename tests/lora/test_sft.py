"""The trainer (TRL SFTTrainer + PEFT) on the tiny random model: it learns, reports each step,
saves what it says it saves, repeats itself for the same seed and continues from an adapter."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from retrain.config.stage_settings import LoraSettings
from retrain.exceptions import DataError
from retrain.local.facts import fact_examples, facts
from retrain.train.lora.sft import TrainSummary, train_adapter


def _jsonl(examples: list[dict[str, object]]) -> bytes:
    return b"\n".join(orjson.dumps(example) for example in examples)


TRAIN = _jsonl(fact_examples(facts(4)))
VALIDATION = _jsonl(fact_examples(facts(4))[:4])


def _settings(tiny_model: Path, **overrides: object) -> LoraSettings:
    values = {"base_model": str(tiny_model), "epochs": 2, "batch_size": 4, "learning_rate": 5e-3, "seed": 7}
    return LoraSettings.model_validate(values | overrides)


@pytest.fixture(scope="module")
def trained(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainSummary, list[tuple[int, int]]]:
    steps: list[tuple[int, int]] = []
    output = tmp_path_factory.mktemp("sft") / "adapter"
    summary = train_adapter(
        _settings(tiny_model), TRAIN, VALIDATION, output, on_step=lambda s, t, *_: steps.append((s, t))
    )
    return summary, steps


def test_the_loss_falls_and_every_step_is_reported(
    trained: tuple[TrainSummary, list[tuple[int, int]]],
) -> None:
    summary, steps = trained
    examples = len(TRAIN.splitlines())
    assert summary.steps == 2 * -(-examples // 4)  # epochs x batches
    assert summary.losses[-1] < summary.losses[0]
    assert len(summary.validation_losses) == 2  # the validation split, once an epoch
    assert steps[-1] == (summary.steps, summary.steps)
    assert summary.train_tokens > 0 and summary.tokens_per_second > 0


def test_the_adapter_tokenizer_config_and_metrics_are_saved(
    trained: tuple[TrainSummary, list[tuple[int, int]]],
) -> None:
    summary, _ = trained
    saved = {path.name for path in summary.output_dir.iterdir()}
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "training_config.json",
        "metrics.json",
    } <= saved
    assert "tokenizer_config.json" in saved
    assert not any(name.startswith("checkpoint") for name in saved)  # scratch stays out of the adapter
    config = json.loads((summary.output_dir / "training_config.json").read_text())
    assert (
        config["epochs"] == 2 and config["seed"] == 7 and config["train_examples"] == len(TRAIN.splitlines())
    )
    metrics = json.loads((summary.output_dir / "metrics.json").read_text())
    assert metrics["steps"] == summary.steps and metrics["losses"] == summary.losses
    adapter = json.loads((summary.output_dir / "adapter_config.json").read_text())
    assert adapter["r"] == 16 and sorted(adapter["target_modules"]) == sorted(LoraSettings().target_modules)


def test_the_same_seed_trains_the_same_adapter(
    tiny_model: Path, tmp_path: Path, trained: tuple[TrainSummary, list[tuple[int, int]]]
) -> None:
    again = train_adapter(_settings(tiny_model), TRAIN, VALIDATION, tmp_path / "again")
    assert again.losses == trained[0].losses
    other = train_adapter(_settings(tiny_model, seed=8), TRAIN, VALIDATION, tmp_path / "other")
    assert other.losses != trained[0].losses


def test_training_continues_from_an_adapter(
    tiny_model: Path, tmp_path: Path, trained: tuple[TrainSummary, list[tuple[int, int]]]
) -> None:
    continued = train_adapter(
        _settings(tiny_model), TRAIN, VALIDATION, tmp_path / "continued", init_adapter=trained[0].output_dir
    )
    assert continued.losses[0] < trained[0].losses[0]  # it starts where the first run ended


def test_data_without_an_assistant_turn_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    only_user = _jsonl([{"messages": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(DataError, match="no example with an assistant turn"):
        train_adapter(_settings(tiny_model), only_user, b"", tmp_path / "none")
