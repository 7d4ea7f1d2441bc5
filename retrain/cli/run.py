"""`retrain run` (one nightly run) and `retrain demo` (the local story, night by night).

Prefect is imported only inside the commands: it is slow to import, and the rest of the
CLI does not need it. When `retrain local up --with-prefect` runs (and ``PREFECT_API_URL``
is not set), the flows report to that local server, so its UI shows them at once; with
``--via-deployment`` the night runs as a flow run of `nightly-retrain/retrain-now`, executed
by the stack's worker. Otherwise the flows run against Prefect's ephemeral server, whose
database lives under the local data directory.
"""

from __future__ import annotations

import logging
import os
from datetime import date
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.markup import escape

from retrain.cli.prefect_api import require_prefect_api
from retrain.config.migration import BACKENDS, Migration
from retrain.config.settings import Settings, get_settings
from retrain.exceptions import ConfigError, RetrainError
from retrain.storage.object_store import ObjectStore

__all__ = ["register"]

console = Console()


def _prepare_prefect(settings: Settings) -> None:
    home = settings.local.data_dir.resolve() / "prefect"
    os.environ.setdefault("PREFECT_HOME", str(home))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    from retrain.local.prefect_server import running_prefect_api_url

    local_api = running_prefect_api_url(settings)
    if local_api and "PREFECT_API_URL" not in os.environ:
        os.environ["PREFECT_API_URL"] = local_api
    if settings.training.backend == "lora" and "PREFECT_API_URL" not in os.environ:
        raise ConfigError(
            "the lora backend trains in the train-lora deployment, which needs a Prefect server with a "
            "worker: start `retrain local up --with-prefect` (or `retrain serve`) or set PREFECT_API_URL"
        )
    require_prefect_api()


class _WithoutOurTracebacks(logging.Formatter):
    """Prefect's console format, minus the traceback of an error retrain raises on purpose: its
    message says what is wrong and what to do. The run's log in the UI keeps the traceback, and
    `retrain --debug` shows it here too."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        if not (record.exc_info and isinstance(record.exc_info[1], RetrainError)):
            return self._inner.format(record)
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return self._inner.format(record)
        finally:
            record.exc_info, record.exc_text = saved


def _one_line_errors_on_the_console() -> None:
    from prefect.logging.handlers import PrefectConsoleHandler

    from retrain.cli.debug import debugging

    if debugging():
        return
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        wrapped = isinstance(formatter, _WithoutOurTracebacks)
        if isinstance(handler, PrefectConsoleHandler) and formatter is not None and not wrapped:
            handler.setFormatter(_WithoutOurTracebacks(formatter))


_VIA_DEPLOYMENT = Annotated[
    bool,
    typer.Option(
        "--via-deployment",
        help="Run through the nightly-retrain/retrain-now deployment and its worker "
        "(needs `retrain local up --with-prefect` or PREFECT_API_URL).",
    ),
]
_DEPLOYMENT = "nightly-retrain/retrain-now"


def _run_night(night: date | None, via_deployment: bool = False, migration: Migration | None = None) -> Any:
    if via_deployment:
        from prefect.client.schemas.objects import FlowRun
        from prefect.deployments import run_deployment

        if "PREFECT_API_URL" not in os.environ:
            raise ConfigError(
                "--via-deployment needs a Prefect server: start `retrain local up --with-prefect` "
                "or set PREFECT_API_URL"
            )
        parameters: dict[str, Any] = {"night": night.isoformat() if night else None}
        if migration is not None:
            parameters["migration"] = migration.model_dump(mode="json")
        flow_run = cast(
            "FlowRun", run_deployment(_DEPLOYMENT, parameters=parameters, timeout=None, poll_interval=2)
        )
        console.print(
            f"flow run {flow_run.name} ({flow_run.id}) of {_DEPLOYMENT}", highlight=False, soft_wrap=True
        )
        return flow_run.state
    from flows.nightly import nightly_retrain

    _one_line_errors_on_the_console()
    return nightly_retrain(night=night, migration=migration, return_state=True)


_NIGHT = Annotated[str | None, typer.Option(help="The night to run, as YYYY-MM-DD (default: today, UTC).")]


def _night_option(night: str | None) -> date | None:
    if not night:
        return None
    try:
        return date.fromisoformat(night)
    except ValueError:
        raise typer.BadParameter(f"{night!r} is not a date: use YYYY-MM-DD", param_hint="--night") from None


def _run_and_report(night: str | None, via_deployment: bool, migration: Migration | None = None) -> Any:
    settings = get_settings()
    if not via_deployment:  # the worker has its own settings
        ObjectStore.from_settings(settings.s3).check_bucket()
    _prepare_prefect(settings)
    state = _run_night(_night_option(night), via_deployment, migration)
    console.print(f"[bold]{state.name}[/]: {escape(state.message or '')}", highlight=False)
    if state.is_failed() or state.is_crashed():
        raise typer.Exit(code=1)
    return state


def run(night: _NIGHT = None, via_deployment: _VIA_DEPLOYMENT = False) -> None:
    """Run the nightly retraining flow once, now."""
    _run_and_report(night, via_deployment)


def migrate(
    to: Annotated[
        str,
        typer.Option(
            "--to", help=f"The backend production moves to: {', '.join(BACKENDS)}.", show_default=False
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option("--model", help="Its base model (default: that backend's BASE_MODEL setting)."),
    ] = None,
    margin: Annotated[
        float | None,
        typer.Option(
            "--margin",
            help="How much worse (in score points, 0-1) the candidate may be; default: "
            "RETRAIN_EVALUATION__MARGIN.",
        ),
    ] = None,
    night: _NIGHT = None,
    via_deployment: _VIA_DEPLOYMENT = False,
) -> None:
    """Move production to a model trained on another backend, if it is not worse than production.

    One night trains the newest dataset version on BACKEND, evaluates it against production on the
    same items (each on its own provider) and promotes it in the non-inferiority gate mode.
    """
    if to not in BACKENDS:
        raise typer.BadParameter(
            f"{to!r} is not a backend: use one of {', '.join(BACKENDS)}", param_hint="--to"
        )
    if margin is not None and not 0 < margin < 1:
        raise typer.BadParameter(
            f"{margin:g} is not a margin: use a number between 0 and 1", param_hint="--margin"
        )
    migration = Migration(to=to, base_model=model, margin=margin)
    state = _run_and_report(night, via_deployment, migration)
    if state.name == "Promoted":
        console.print(
            f"production now runs on {to}. So the next nights train there too, set "
            f"{migration.setting_to_keep} (README, 'Move production to another backend').",
            highlight=False,
            soft_wrap=True,
        )


_TRAINER = Annotated[
    str,
    typer.Option(
        "--trainer",
        help="openai_api: the fast retrieval story on the local OpenAI server; lora: real LoRA training "
        "of SmolLM2-135M on made-up facts (needs `make training`; about 10 minutes).",
    ),
]


def demo(via_deployment: _VIA_DEPLOYMENT = False, trainer: _TRAINER = "openai_api") -> None:
    """Start the local stack and tell the story of several nights (no credentials, no internet).

    The demo starts over each time: it empties the local bucket first. It runs only on the local
    stack, since it lands synthetic examples and moves `production`.
    """
    from retrain.cli.alias import print_history
    from retrain.local import stack as local_stack
    from retrain.local.demo import FACT_NIGHTS, NIGHTS, land_night, seed_eval_set, start_over
    from retrain.registry.registry import Registry
    from retrain.storage.object_store import ObjectStore
    from retrain.train.lora.serving import serve_record

    lora = _use_trainer(trainer)
    settings = get_settings()
    off = local_stack.settings_off_the_stack(settings)
    if off:
        raise ConfigError(
            f"retrain demo lands synthetic examples and moves `production`, so it runs on the local stack "
            f"only, but {', '.join(off)}: unset {'them' if len(off) > 1 else 'it'} (or run the demo from a "
            "checkout without that .env)"
        )
    console.rule("retrain demo: the local stack")
    local_stack.up(settings, with_prefect=via_deployment or lora)
    _prepare_prefect(settings)
    store = ObjectStore.from_settings(settings.s3)
    cleared = start_over(store)
    if cleared:
        console.print(f"starting over: deleted {cleared} object(s) a previous demo left in {store.uri('')}")
    seeded = seed_eval_set(store, settings.evaluation.eval_set, facts=lora)
    if seeded:
        console.print(f"seeded the held-out eval set: {seeded} items under {store.uri('eval/')}")

    outcomes = []
    decided = None
    for night in FACT_NIGHTS if lora else NIGHTS:
        console.rule(f"night {night.night}: {night.story}")
        key = land_night(store, night)
        if key:
            console.print(f"landed {store.uri(key)}")
        state = _run_night(night.night, via_deployment)
        outcomes.append((night, state))
        console.print(f"[bold]{state.name}[/]: {escape(state.message or '')}", highlight=False)
        decided = _print_new_decision(store, decided)

    console.rule("rollback: production goes back one step")
    registry = Registry(store)
    event = registry.rollback("production", steps=1, actor="demo", reason="demo: roll back one step")
    serve_record(settings, event.model)
    console.print(f"production -> {event.model.model_id}")
    print_history("production", registry.history("production"))
    _print_where_to_look(settings, store)
    if any(state.is_failed() or state.is_crashed() for _, state in outcomes):
        raise typer.Exit(code=1)


def _use_trainer(trainer: str) -> bool:
    """Whether the demo trains with lora; if so, its settings go into this process's environment
    (the nightly flow and the stack's services read them there), unless set already."""
    from retrain.local.demo import LORA_DEMO_ENV

    if trainer not in ("openai_api", "lora"):
        raise typer.BadParameter(
            f"{trainer!r} is not a trainer: use openai_api or lora", param_hint="--trainer"
        )
    if trainer == "lora":
        os.environ.update({name: os.environ.get(name, value) for name, value in LORA_DEMO_ENV.items()})
        os.environ["RETRAIN_TRAINING__BACKEND"] = "lora"
        get_settings.cache_clear()
    return trainer == "lora"


def _print_new_decision(store: ObjectStore, decided: str | None) -> str | None:
    """The held-out scores of tonight's decision, if the night decided one; the version decided last."""
    from retrain.promote.decision import last_decided_version, load_decision

    version = last_decided_version(store)
    decision = load_decision(store, version) if version and version != decided else None
    if decision is not None:
        console.print(
            f"held-out score: candidate {decision.candidate_score:.2f}, "
            f"production {decision.production_score:.2f}",
            highlight=False,
        )
    return version


def _print_where_to_look(settings: Settings, store: Any) -> None:
    console.rule("where to look")
    api_url = os.environ.get("PREFECT_API_URL")
    ui = (
        f"Prefect UI with these runs: {api_url.removesuffix('/api')}"
        if api_url
        else "Prefect UI with these runs: .venv/bin/retrain local up --with-prefect (same database)"
    )
    console.print(
        f"{ui}\n"
        f"Bucket folders: {store.uri('incoming/')} {store.uri('curated/')} {store.uri('quarantine/')} "
        f"{store.uri('evals/')} {store.uri('registry/')} {store.uri('state/')}\n"
        f"On disk: {settings.local.data_dir.resolve() / 's3'}\n"
        "Aliases: .venv/bin/retrain alias list\n"
        "Batches and their quarantined lines: .venv/bin/retrain batches list\n"
        "Dataset versions and what came of them: .venv/bin/retrain data list\n"
        "Fine-tuning cost: .venv/bin/retrain spend\n"
        "Stop the stack: .venv/bin/retrain local down",
        highlight=False,
    )


def register(root: typer.Typer) -> None:
    root.command("run")(run)
    root.command("migrate")(migrate)
    root.command("demo")(demo)
