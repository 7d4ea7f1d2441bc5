"""The model behind the server: one base model, any number of LoRA adapters, batched generation.

Adapters are loaded into one PEFT model under internal names (PEFT's adapter names cannot hold
``.`` or ``:``, the served names can), and a batch mixes them: each row of ``model.generate`` is
answered by its own adapter (PEFT's ``adapter_names``, ``__base__`` for the base model). Greedy
unless a request asks for a temperature; a row stops at the end-of-turn token, its ``max_tokens``
or the first of its ``stop`` strings, and says which (``finish_reason``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AdapterError", "Engine", "Generation", "GenerationRequest"]

_BASE = "__base__"


class AdapterError(Exception):
    """An adapter that cannot be loaded or unloaded; ``status`` is the HTTP status vLLM answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class GenerationRequest:
    model: str
    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()

    def sampling_key(self) -> tuple[float, float]:
        """Rows of one ``generate`` call share these."""
        return (self.temperature, self.top_p)


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@dataclass
class Engine:
    """The base model ``name`` (``model``, ``tokenizer`` from transformers) and the loaded adapters."""

    name: str
    model: Any
    tokenizer: Any
    root: str = ""
    max_model_len: int = 2048
    adapters: dict[str, str] = field(default_factory=dict)  # served name -> where it was loaded from
    _internal: dict[str, str] = field(default_factory=dict)
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def knows(self, model: str) -> bool:
        return model == self.name or model in self.adapters

    def load(self, served_name: str, folder: str, source: str) -> None:
        """Load the PEFT adapter in ``folder`` as ``served_name``; AdapterError if it cannot be."""
        with self._lock:
            if served_name in self.adapters:
                raise AdapterError(f"The lora adapter '{served_name}' has already been loaded.")
            self._counter += 1
            internal = f"adapter_{self._counter}"
            try:
                self._load(internal, folder)
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise AdapterError(f"Loading lora {served_name} failed: {exc}") from exc
            self.adapters[served_name] = source
            self._internal[served_name] = internal

    def _load(self, internal: str, folder: str) -> None:
        from peft import PeftModel

        if isinstance(self.model, PeftModel):
            self.model.load_adapter(folder, adapter_name=internal, is_trainable=False)
        else:
            self.model = PeftModel.from_pretrained(
                self.model, folder, adapter_name=internal, is_trainable=False
            )
        self.model.eval()

    def unload(self, served_name: str) -> None:
        with self._lock:
            if served_name not in self.adapters:
                raise AdapterError(f"The lora adapter '{served_name}' cannot be found.", status=404)
            internal = self._internal.pop(served_name)
            del self.adapters[served_name]
            if self._internal:
                self.model.delete_adapter(internal)
            else:
                self.model = self.model.unload()  # the last one: back to the bare base model

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        """Answer ``requests`` (same sampling settings) in one batched ``generate`` call."""
        import torch

        with self._lock:
            tokenizer, model = self.tokenizer, self.model
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            width = max(len(r.prompt_ids) for r in requests)
            input_ids = torch.tensor([[pad] * (width - len(r.prompt_ids)) + r.prompt_ids for r in requests])
            attention = torch.tensor(
                [[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in requests]
            )
            first = requests[0]
            options: dict[str, Any] = {
                "max_new_tokens": max(r.max_tokens for r in requests),
                "pad_token_id": pad,
                "do_sample": first.temperature > 0,
            }
            if first.temperature > 0:
                options |= {"temperature": first.temperature, "top_p": first.top_p}
            else:
                options |= {"temperature": None, "top_p": None, "top_k": None}
            if self._internal:
                options["adapter_names"] = [self._internal.get(r.model, _BASE) for r in requests]
            device = next(model.parameters()).device
            with torch.inference_mode():
                output = model.generate(
                    input_ids=input_ids.to(device), attention_mask=attention.to(device), **options
                )
            new_tokens = output[:, width:].tolist()
        return [self._finish(r, tokens) for r, tokens in zip(requests, new_tokens, strict=True)]

    def _finish(self, request: GenerationRequest, tokens: list[int]) -> Generation:
        ends = self._end_ids()
        kept: list[int] = []
        reason = "length"
        for token in tokens[: request.max_tokens]:
            if token in ends:
                reason = "stop"
                break
            kept.append(token)
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in request.stop if s) if i >= 0), default=-1)
        if cut >= 0:
            text, reason = text[:cut], "stop"
            kept = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        completion = len(kept) + (1 if reason == "stop" and cut < 0 else 0)
        return Generation(text, len(request.prompt_ids), completion, reason)

    def _end_ids(self) -> set[int]:
        config = getattr(self.model, "generation_config", None)
        eos = getattr(config, "eos_token_id", None)
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids
