"""Fault tests run the real nightly flow on the pipeline stack: moto S3 server, local OpenAI, Prefect."""

from __future__ import annotations

from tests.pipeline.conftest import stack

__all__ = ["stack"]
