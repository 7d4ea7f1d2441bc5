"""The embedded local stack: a local S3 server, the local OpenAI-compatible server, the CPU
inference server of the lora backend (``local_inference``: when RETRAIN_TRAINING__BACKEND is
``lora``; it needs the training extra) and, with ``with_prefect``, a Prefect server and process workers
(``retrain.local.prefect_server``).

``up`` starts each service as a background process (``retrain.local.processes``), waits until
it answers and creates the configured bucket; ``down`` stops the process groups it started;
``status`` reports what runs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

from retrain.config.services import S3Settings
from retrain.config.settings import Settings
from retrain.exceptions import ProviderUnavailable, StorageUnavailable
from retrain.local.prefect_server import deploy, prefect_api_url, prefect_services
from retrain.local.processes import Service, healthy, our_pid, service_files, service_started, start, stop
from retrain.storage.object_store import ObjectStore
from retrain.train.lora.base_models import require_training_extra

__all__ = [
    "ServiceStatus",
    "StackStatus",
    "down",
    "local_s3_settings",
    "settings_off_the_stack",
    "status",
    "up",
]

_PREFECT_SERVICES = ("prefect", "worker", "training-worker")


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    url: str
    running: bool
    pid: int | None
    log: Path


@dataclass(frozen=True)
class StackStatus:
    services: list[ServiceStatus]
    env: dict[str, str]
    already_running: bool = False
    together_url: str = ""

    @property
    def running(self) -> bool:
        return all(service.running for service in self.services)


def _services(settings: Settings, with_prefect: bool = False) -> list[Service]:
    local = settings.local
    data = local.data_dir.resolve()
    s3_url = f"http://{local.host}:{local.s3_port}"
    openai_root = f"http://{local.host}:{local.openai_port}"
    services = [
        Service(
            "s3",
            local.s3_port,
            s3_url,
            f"{s3_url}/",
            [
                sys.executable,
                "-m",
                "local_s3",
                str(data / "s3"),
                "--host",
                local.host,
                "--port",
                str(local.s3_port),
            ],
            "local_s3",
            StorageUnavailable,
        ),
        Service(
            "openai",
            local.openai_port,
            f"{openai_root}/v1",
            f"{openai_root}/health",
            [
                sys.executable,
                "-m",
                "local_openai",
                "--data-dir",
                str(data / "openai"),
                "--host",
                local.host,
                "--port",
                str(local.openai_port),
                "--step-delay",
                str(local.openai_step_delay),
            ],
            "local_openai",
            ProviderUnavailable,
        ),
    ]
    if serves_adapters(settings):
        services.append(_inference(settings))
    return services + prefect_services(settings, _env(settings)) if with_prefect else services


def serves_adapters(settings: Settings) -> bool:
    """The stack runs the inference server: the lora backend trains (its extra is checked here, so
    `retrain local up` fails in one line without it)."""
    if settings.training.backend != "lora":
        return False
    require_training_extra()
    return True


def _inference(settings: Settings) -> Service:
    """The vLLM-compatible CPU server for the base model of RETRAIN_LORA__BASE_MODEL and its adapters."""
    local = settings.local
    root = f"http://{local.host}:{local.inference_port}"
    command = [
        sys.executable,
        "-m",
        "local_inference",
        "--base-model",
        settings.lora.base_model,
        "--host",
        local.host,
        "--port",
        str(local.inference_port),
        "--device",
        settings.lora.device,
        "--cache-dir",
        str(local.data_dir.resolve() / "inference"),
    ]
    env = {key: value for key, value in _env(settings).items() if key.startswith("RETRAIN_S3__")}
    return Service(
        "inference",
        local.inference_port,
        f"{root}/v1",
        f"{root}/health",
        command,
        "local_inference",
        ProviderUnavailable,
        env=env,
        start_timeout=180.0,
    )


def settings_off_the_stack(settings: Settings) -> list[str]:
    """The settings that point retrain somewhere other than the local stack (empty if none do)."""
    local = _env(settings)
    off = []
    if settings.s3.endpoint_url != local["RETRAIN_S3__ENDPOINT_URL"]:
        off.append(f"RETRAIN_S3__ENDPOINT_URL={settings.s3.endpoint_url or '(AWS)'}")
    if settings.provider.kind != "compatible":
        off.append(f"RETRAIN_PROVIDER__KIND={settings.provider.kind}")
    elif settings.provider.base_url != local["RETRAIN_PROVIDER__BASE_URL"]:
        off.append(f"RETRAIN_PROVIDER__BASE_URL={settings.provider.base_url}")
    if (
        settings.training.backend == "lora"
        and settings.lora.serving_url != local["RETRAIN_LORA__SERVING_URL"]
    ):
        off.append(f"RETRAIN_LORA__SERVING_URL={settings.lora.serving_url}")
    return off


def local_s3_settings(settings: Settings) -> S3Settings:
    """The S3 settings with the endpoint moved to the local S3 server."""
    return settings.s3.model_copy(
        update={"endpoint_url": f"http://{settings.local.host}:{settings.local.s3_port}"}
    )


def _env(settings: Settings) -> dict[str, str]:
    local = settings.local
    return {
        "RETRAIN_S3__ENDPOINT_URL": f"http://{local.host}:{local.s3_port}",
        "RETRAIN_S3__BUCKET": settings.s3.bucket,
        "RETRAIN_PROVIDER__KIND": "compatible",
        "RETRAIN_PROVIDER__BASE_URL": f"http://{local.host}:{local.openai_port}/v1",
        "RETRAIN_LOCAL__DATA_DIR": str(local.data_dir),
    } | (
        {"RETRAIN_LORA__SERVING_URL": f"http://{local.host}:{local.inference_port}/v1"}
        if settings.training.backend == "lora"
        else {}
    )


def status(settings: Settings, with_prefect: bool = False) -> StackStatus:
    """What runs now, with the environment variables that point retrain at it.

    The Prefect server and worker are listed when asked for or when `up` started them.
    """
    services = []
    for service in _services(settings, with_prefect=True):
        if service.name in _PREFECT_SERVICES and not (with_prefect or service_started(settings, service)):
            continue
        pid_file, log_file = service_files(settings, service)
        pid = our_pid(pid_file, service)
        services.append(
            ServiceStatus(service.name, service.url, pid is not None and healthy(service), pid, log_file)
        )
    env = _env(settings)
    if any(service.name == "prefect" for service in services):
        env["PREFECT_API_URL"] = prefect_api_url(settings)
    together = f"http://{settings.local.host}:{settings.local.openai_port}/together/v1"
    return StackStatus(services, env, together_url=together)


def up(settings: Settings, with_prefect: bool = False) -> StackStatus:
    """Start whatever is not running yet, create the bucket and return the status (idempotent).

    With ``with_prefect``, also the Prefect server; then the work pool is created, the
    deployments of ``deployments/prefect.yaml`` are applied and a process worker starts.
    """
    started = False
    for service in _services(settings, with_prefect=with_prefect):
        pid_file, _ = service_files(settings, service)
        if our_pid(pid_file, service) is not None and healthy(service):
            continue
        pid_file.unlink(missing_ok=True)
        if service.name == "worker":
            deploy(settings)
        start(settings, service)
        started = True
    ObjectStore.from_settings(local_s3_settings(settings)).ensure_bucket()
    current = status(settings, with_prefect=with_prefect)
    return replace(current, already_running=not started)


def down(settings: Settings) -> None:
    """Stop the services this stack started (by their pid files); others are left alone."""
    for service in reversed(_services(settings, with_prefect=True)):
        stop(settings, service)
