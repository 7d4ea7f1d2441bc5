"""The FastAPI application: the endpoints of vLLM's OpenAI-compatible server that retrain uses.

- ``GET /v1/models``: the base model and every loaded adapter (``parent``: the base model);
- ``POST /v1/chat/completions``: answered by the base model or the adapter ``model`` names,
  batched with concurrent requests; OpenAI's response shape with ``usage``;
- ``POST /v1/load_lora_adapter`` ``{"lora_name", "lora_path"}`` and ``POST /v1/unload_lora_adapter``
  ``{"lora_name"}``: vLLM's runtime adapter API (``VLLM_ALLOW_RUNTIME_LORA_UPDATING``), with its
  messages and status codes; ``lora_path`` is a local folder or an ``s3://`` prefix;
- ``GET /health`` and ``GET /admin/stats`` (how requests were batched).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from local_inference.adapters import local_folder
from local_inference.batcher import Batcher
from local_inference.engine import AdapterError, Engine, GenerationRequest
from retrain.train.lora.rendering import prompt_ids

__all__ = ["create_app"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # vLLM accepts (and ignores) what it does not use

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    tools: list[dict[str, Any]] | None = None


class LoadRequest(BaseModel):
    lora_name: str = ""
    lora_path: str = ""


class UnloadRequest(BaseModel):
    lora_name: str = ""


def _error(status: int, message: str, kind: str = "BadRequestError") -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": status}}, status_code=status
    )


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if part.get("type") == "text")
    return content or ""


def _model_routes(engine: Engine) -> APIRouter:
    router = APIRouter()
    created = int(time.time())

    def card(model_id: str, root: str, parent: str | None) -> dict[str, Any]:
        return {
            "id": model_id,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": root,
            "parent": parent,
            "max_model_len": engine.max_model_len if parent is None else None,
            "permission": [],
        }

    @router.get("/models")
    async def models() -> dict[str, Any]:
        cards = [card(engine.name, engine.root or engine.name, None)]
        cards += [card(name, source, engine.name) for name, source in engine.adapters.items()]
        return {"object": "list", "data": cards}

    return router


def _adapter_routes(engine: Engine, cache_dir: Path) -> APIRouter:
    router = APIRouter()

    @router.post("/load_lora_adapter", response_model=None)
    async def load(body: LoadRequest) -> PlainTextResponse | JSONResponse:
        if not body.lora_name or not body.lora_path:
            return _error(400, "Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput")
        if body.lora_name in engine.adapters:
            return _error(
                400, f"The lora adapter '{body.lora_name}' has already been loaded.", "InvalidUserInput"
            )
        try:
            folder = await asyncio.to_thread(local_folder, body.lora_path, cache_dir)
            await asyncio.to_thread(engine.load, body.lora_name, folder, body.lora_path)
        except AdapterError as exc:
            return _error(exc.status, str(exc), "NotFoundError" if exc.status == 404 else "BadRequestError")
        return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' added successfully.")

    @router.post("/unload_lora_adapter", response_model=None)
    async def unload(body: UnloadRequest) -> PlainTextResponse | JSONResponse:
        if not body.lora_name:
            return _error(
                400, "either 'lora_name' and 'lora_int_id' needs to be provided.", "InvalidUserInput"
            )
        try:
            await asyncio.to_thread(engine.unload, body.lora_name)
        except AdapterError as exc:
            return _error(exc.status, str(exc), "NotFoundError")
        return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' removed successfully.")

    return router


def _chat_routes(engine: Engine, batcher: Batcher) -> APIRouter:
    router = APIRouter()

    @router.post("/chat/completions", response_model=None)
    async def chat(body: ChatRequest) -> dict[str, Any] | JSONResponse:
        if not engine.knows(body.model):
            return _error(404, f"The model `{body.model}` does not exist.", "NotFoundError")
        if body.n != 1:
            return _error(400, "n > 1 is not supported by this server; send n separate requests")
        messages = [m.model_dump(exclude_none=True) | {"content": _text(m.content)} for m in body.messages]
        ids = prompt_ids(engine.tokenizer, messages, body.tools)
        limit = body.max_completion_tokens or body.max_tokens or max(16, engine.max_model_len - len(ids))
        if len(ids) + limit > engine.max_model_len:
            return _error(
                400,
                f"This model's maximum context length is {engine.max_model_len} tokens. However, you "
                f"requested {len(ids) + limit} tokens ({len(ids)} in the messages, {limit} in the "
                "completion).",
            )
        stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
        answer = await batcher.submit(
            GenerationRequest(body.model, ids, limit, body.temperature, body.top_p, stop)
        )
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text, "tool_calls": []},
                    "logprobs": None,
                    "finish_reason": answer.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
                "total_tokens": answer.prompt_tokens + answer.completion_tokens,
            },
        }

    return router


def create_app(engine: Engine, *, cache_dir: Path, window: float = 0.02, max_batch: int = 32) -> FastAPI:
    """The server of ``engine``; adapters copied from S3 go under ``cache_dir``."""
    batcher = Batcher(engine, window=window, max_batch=max_batch)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="local-inference", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"] if part != "body")
        return _error(400, f"{where or 'body'}: {first['msg']}")

    @app.get("/health")
    async def health() -> PlainTextResponse:
        return PlainTextResponse("")

    @app.get("/admin/stats")
    async def stats() -> dict[str, Any]:
        return {
            "requests": batcher.stats.requests,
            "batches": batcher.stats.batches,
            "largest_batch": batcher.stats.largest,
        }

    for router in (_model_routes(engine), _adapter_routes(engine, cache_dir), _chat_routes(engine, batcher)):
        app.include_router(router, prefix="/v1")
    return app
