"""The pipeline's `stack` fixture (moto S3 server, local OpenAI server, Prefect) for end-to-end gate tests."""

from tests.pipeline.conftest import stack

__all__ = ["stack"]
