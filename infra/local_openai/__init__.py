"""A local OpenAI-compatible fine-tuning server: files, jobs, models, chat, moderation over HTTP.

Start it with ``python -m local_openai --data-dir DIR --port N`` or, in tests,
``with serve_in_thread(tmp_path) as server: OpenAI(base_url=server.base_url, ...)``.
"""

from local_openai.app import create_app
from local_openai.faults import FaultConfig, FaultRule
from local_openai.learner import FALLBACK_REPLY
from local_openai.server import ServerHandle, serve_in_thread
from local_openai.state import BASE_MODELS

__all__ = [
    "BASE_MODELS",
    "FALLBACK_REPLY",
    "FaultConfig",
    "FaultRule",
    "ServerHandle",
    "create_app",
    "serve_in_thread",
]
