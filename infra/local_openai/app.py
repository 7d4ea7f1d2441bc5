"""The FastAPI application: the API under ``/v1`` and (for Azure clients) ``/openai``, Together AI's
under ``/together`` (``routes_together``), Azure's management API for deployments under
``/azure-management`` (``routes_azure``), plus admin routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response

from local_openai import (
    routes_admin,
    routes_azure,
    routes_chat,
    routes_files,
    routes_jobs,
    routes_models,
    routes_moderations,
    routes_together,
    routes_uploads,
)
from local_openai.errors import error_response, install_error_handlers
from local_openai.faults import RATE_LIMIT_KINDS, REFUSED_MESSAGE, FaultConfig, Faults, api_path, limit_error
from local_openai.state import ServerState
from local_openai.store import Store
from local_openai.worker import Worker

__all__ = ["create_app"]


def _api_router() -> APIRouter:
    router = APIRouter()
    for module in (routes_files, routes_uploads, routes_jobs, routes_models, routes_chat, routes_moderations):
        router.include_router(module.router)
    return router


def _presented_keys(request: Request) -> set[str]:
    bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    return {bearer, request.headers.get("api-key", "").strip()} - {""}


def create_app(
    data_dir: Path,
    *,
    step_delay: float = 0.01,
    faults: FaultConfig | None = None,
    org: str = "retrain-local",
    seed: int = 0,
    api_key: str | None = None,
) -> FastAPI:
    """The server over ``data_dir`` (created if missing); the training worker runs while the app is up.

    With ``api_key`` set, API requests must carry it (``Authorization: Bearer``, or Azure's
    ``api-key`` header) or get OpenAI's 401; without it, any key is accepted.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    state = ServerState(
        store=Store(data_dir), faults=Faults(faults, seed=seed), org=org, step_delay=step_delay
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker = Worker(state)
        app.state.worker = worker
        worker.start()
        try:
            yield
        finally:
            worker.stop()
            state.store.close()

    app = FastAPI(title="local-openai", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.server = state
    install_error_handlers(app)
    api = _api_router()
    app.include_router(api, prefix="/v1")
    app.include_router(api, prefix="/openai")
    app.include_router(routes_azure.router, prefix="/azure-management")
    app.include_router(routes_together.router, prefix="/together")
    app.include_router(routes_together.upload_router, prefix="/together")
    for module in (routes_chat, routes_models):  # Together's OpenAI-compatible inference
        app.include_router(module.router, prefix="/together/v1")
    app.include_router(routes_admin.router)
    app.include_router(routes_azure.admin_router)

    @app.middleware("http")
    async def faults_and_stats(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = api_path(request.url.path)
        if path is None:
            return await call_next(request)
        if request.url.path.startswith("/openai/") and "api-version" not in request.query_params:
            state.count_route(f"{request.method} {path} (no api-version)")
            return error_response(404, "Resource not found (Azure OpenAI needs ?api-version=...)", code="404")
        if api_key is not None and api_key not in _presented_keys(request):
            state.count_route(f"{request.method} {path} (401)")
            return error_response(401, "Incorrect API key provided (local server).", code="invalid_api_key")
        rule = state.faults.pick(path, request.method)
        if rule is not None and rule.kind == "slow":
            await asyncio.sleep(rule.delay)
        elif rule is not None and rule.kind in RATE_LIMIT_KINDS:
            state.count_route(f"{request.method} {path} (429 injected)")
            code, message = limit_error(rule)
            return error_response(429, message, code=code, headers={"Retry-After": f"{rule.retry_after:g}"})
        elif rule is not None and rule.kind == "403":
            state.count_route(f"{request.method} {path} (403 injected)")
            return error_response(403, REFUSED_MESSAGE, code="permission_denied")
        elif rule is not None:
            state.count_route(f"{request.method} {path} (500 injected)")
            return error_response(500, "The server had an error while processing your request (injected).")
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", path)
        state.count_route(f"{request.method} {api_path(template) or template}")
        return response

    return app
