"""``python -m local_inference --base-model NAME [--port N] [--cache-dir DIR]``: the CPU inference server."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvicorn

from local_inference.app import create_app
from local_inference.engine import Engine
from retrain.train.lora.base_models import choose_device, load_base_model, locate_base_model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="local_inference", description="CPU inference server with vLLM's OpenAI-compatible LoRA API."
    )
    parser.add_argument(
        "--base-model", required=True, help="As RETRAIN_LORA__BASE_MODEL: built-in, folder or HF id."
    )
    parser.add_argument(
        "--served-name", help="The id the base model is served under (default: --base-model)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(".retrain/inference"), help="Adapters from S3."
    )
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--batch-window", type=float, default=0.02, help="Seconds to gather a batch.")
    parser.add_argument("--max-batch", type=int, default=32)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    files = locate_base_model(args.base_model)
    model, tokenizer = load_base_model(files, choose_device(args.device))
    model.eval()
    engine = Engine(
        args.served_name or args.base_model, model, tokenizer, str(files.folder), args.max_model_len
    )
    app = create_app(engine, cache_dir=args.cache_dir, window=args.batch_window, max_batch=args.max_batch)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
