"""``python -m local_openai --data-dir DIR --port N [--faults FILE] [--step-delay S]``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvicorn

from local_openai.app import create_app
from local_openai.faults import FaultConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="local_openai", description="Local OpenAI-compatible fine-tuning server."
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="Where jobs, files and models persist.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--faults", type=Path, help="JSON fault configuration (see /admin/faults).")
    parser.add_argument("--step-delay", type=float, default=0.01, help="Seconds per replayed training step.")
    parser.add_argument("--org", default="retrain-local", help="Organisation name used in model ids.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    faults = FaultConfig.from_file(args.faults) if args.faults else None
    app = create_app(args.data_dir, step_delay=args.step_delay, faults=faults, org=args.org)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
