"""Training throughput of the lora backend's trainer against a bare PEFT training loop: the
orchestration overhead of TRL's SFTTrainer as retrain drives it (``train_adapter``: rendering,
the trainer, its callbacks, saving). Target: within 1.15x of the bare loop.

Run with ``.venv/bin/python -m bench.lora_training [--facts 16] [--epochs 2]`` (needs the training
extra). Both train SmolLM2-135M-Instruct (fp32, CPU) with the same LoRA settings (the defaults of
RETRAIN_LORA__*: rank 16 on every linear projection, batch 8), the same rendered examples (the
lora demo's fact examples, loss on assistant tokens only), the same seed and number of steps.
Tokens/s counts every input token of every step; each side's time excludes loading the model.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from retrain.config.stage_settings import LoraSettings
from retrain.local.demo import FACTS
from retrain.local.facts import fact_examples
from retrain.train.lora.base_models import load_base_model, locate_base_model
from retrain.train.lora.rendering import IGNORE, RenderedExample
from retrain.train.lora.sft import _peft_model, render_jsonl, train_adapter


def _bare_loop(lora: LoraSettings, examples: list[RenderedExample]) -> tuple[float, int]:
    """Seconds and tokens of a plain PyTorch loop over the PEFT model (AdamW, linear decay)."""
    import torch
    from transformers import set_seed

    set_seed(lora.seed)
    model, tokenizer = load_base_model(locate_base_model(lora.base_model))
    model = _peft_model(model, lora, None)
    model.train()
    steps_per_epoch = -(-len(examples) // lora.batch_size)
    total = steps_per_epoch * lora.epochs
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lora.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / total)
    pad = tokenizer.pad_token_id
    tokens = 0
    started = time.perf_counter()
    for epoch in range(lora.epochs):
        order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(lora.seed + epoch))
        for start in range(0, len(examples), lora.batch_size):
            batch = [examples[int(i)] for i in order[start : start + lora.batch_size]]
            width = max(len(e.input_ids) for e in batch)
            ids = torch.tensor([e.input_ids + [pad] * (width - len(e.input_ids)) for e in batch])
            labels = torch.tensor([e.labels + [IGNORE] * (width - len(e.labels)) for e in batch])
            mask = torch.tensor([[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in batch])
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            tokens += sum(len(e.input_ids) for e in batch)
    return time.perf_counter() - started, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--facts", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    lora = LoraSettings(epochs=args.epochs)
    data = b"\n".join(orjson.dumps(e) for e in fact_examples(list(FACTS[: args.facts])))
    _, tokenizer = load_base_model(locate_base_model(lora.base_model))
    examples = render_jsonl(tokenizer, data, lora.max_length, "train.jsonl")
    bare_seconds, tokens = _bare_loop(lora, examples)
    with tempfile.TemporaryDirectory() as scratch:
        summary: Any = train_adapter(lora, data, b"", Path(scratch) / "adapter")
    ours = summary.train_tokens / summary.tokens_per_second
    print(f"{len(examples)} examples x {args.epochs} epochs, batch {lora.batch_size}, rank {lora.rank}")
    print(f"bare PEFT loop: {bare_seconds:.1f} s, {tokens / bare_seconds:.0f} tokens/s")
    print(f"train_adapter:  {ours:.1f} s, {summary.tokens_per_second:.0f} tokens/s ({summary.steps} steps)")
    print(f"overhead: {ours / bare_seconds:.2f}x (target <= 1.15x)")


if __name__ == "__main__":
    main()
