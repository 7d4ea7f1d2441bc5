"""The pipeline's `stack` fixture (moto S3 server, local OpenAI server, Prefect) for the Dask test."""

from tests.pipeline.conftest import stack

__all__ = ["stack"]
