"""Where an adapter's files are: a local folder as given, or an ``s3://bucket/prefix/`` copied
once into the server's cache (the bucket settings are retrain's: ``RETRAIN_S3__*``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from local_inference.engine import AdapterError
from retrain.config.settings import get_settings
from retrain.exceptions import RetrainError
from retrain.storage.object_store import ObjectStore, make_s3_client, split_s3_uri
from retrain.train.lora.runs import download_adapter

__all__ = ["local_folder"]


def local_folder(lora_path: str, cache_dir: Path) -> str:
    """A folder holding the adapter named by ``lora_path``; AdapterError (404) if there is none."""
    if not lora_path.startswith("s3://"):
        folder = Path(lora_path).expanduser()
        if not (folder / "adapter_config.json").is_file():
            raise AdapterError(f"No adapter found for {lora_path}: no adapter_config.json there", status=404)
        return str(folder)
    bucket, prefix = split_s3_uri(lora_path)
    store = ObjectStore(make_s3_client(get_settings().s3), bucket)
    destination = cache_dir / hashlib.sha256(lora_path.encode()).hexdigest()[:16]
    try:
        download_adapter(store, prefix.rstrip("/") + "/", destination)
    except RetrainError as exc:
        raise AdapterError(f"No adapter found for {lora_path}: {exc}", status=404) from exc
    if not (destination / "adapter_config.json").is_file():
        raise AdapterError(f"No adapter found for {lora_path}: no adapter_config.json there", status=404)
    return str(destination)
