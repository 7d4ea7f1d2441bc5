"""`retrain check`: is this configuration ready for a night? Every dependency, one row each.

It runs what a night would need, without changing anything: the settings, the bucket, the
training provider (its key, and that it knows the base model), the provider and model behind
`production`, the eval sets, the expectation suite and the Prefect API. A failed check shows the
same one-line error the night would stop with.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import typer
from rich.text import Text

from retrain.cli.output import Rows, plain_console
from retrain.config.settings import Settings
from retrain.exceptions import RetrainError

__all__ = ["register"]

_console = plain_console()


def _prefect_api(settings: Settings) -> str:
    """The Prefect API in use: the configured one answers, or none is set (and whether a local one runs)."""
    from prefect.settings import PREFECT_API_URL

    from retrain.cli.prefect_api import require_prefect_api
    from retrain.local.prefect_server import running_prefect_api_url

    require_prefect_api()
    url = PREFECT_API_URL.value()
    if url:
        return f"{url} answers"
    local = running_prefect_api_url(settings)
    if local:
        return (
            f"none set, so runs use a temporary server and are not seen in the local Prefect server's UI "
            f"that answers at {local}: export PREFECT_API_URL={local}"
        )
    return "none set: runs use a temporary local server"


class Warned(str):
    """A check's detail that says something stops soon: shown as a warning, not a failure."""


def _checks() -> list[tuple[str, Callable[[], str]]]:
    from retrain.cli.credentials import with_credentials
    from retrain.config.settings import get_settings
    from retrain.evaluate.eval_sets import load_eval_set
    from retrain.providers.clients import provider_named, require_model
    from retrain.registry.registry import Registry
    from retrain.registry.retirement import notices_for
    from retrain.storage.object_store import ObjectStore
    from retrain.validate.gx_chunks import load_suite
    from retrain.validate.moderation import moderator_for

    settings = get_settings()  # invalid settings stop here, with their own one-line error
    store = ObjectStore.from_settings(settings.s3)

    def bucket() -> str:
        store.check_bucket()
        return store.uri("")

    def training_provider() -> str:
        provider = with_credentials(settings.training_provider())
        base = (
            settings.together.base_model
            if settings.training.backend == "together"
            else settings.training.base_model
        )
        require_model(provider, base)
        return f"{provider.name} ({provider.kind}) knows {base}"

    def production() -> str:
        record = Registry(store).get("production")
        if record is None:
            return "no production model yet: the first night compares with the base model"
        require_model(with_credentials(provider_named(settings, record.provider)), record.model_id)
        return f"{record.model_id} on {record.provider}"

    def eval_sets() -> str:
        names = dict.fromkeys([settings.evaluation.eval_set, *settings.evaluation.guardrails])
        return ", ".join(f"{name}: {len(load_eval_set(store, name).items)} items" for name in names)

    def suite() -> str:
        runner, _ = load_suite(settings.validation)
        rows, gates = len(runner.expectations("row")), len(runner.expectations("batch"))
        return f"{runner.path} ({rows} row expectations, {gates} batch gates)"

    def retirement() -> str:
        notices = notices_for(settings, Registry(store).get("production"), datetime.now(UTC).date())
        if notices:
            return Warned("; ".join(notice.line for notice in notices))
        return f"nothing stops within {settings.retirement.warn_days} days (RETRAIN_RETIREMENT__WARN_DAYS)"

    def moderation() -> str:
        moderator = moderator_for(settings.validation, lambda: with_credentials(settings.provider))
        if moderator is None:
            return "off (RETRAIN_VALIDATION__MODERATION)"
        moderator.flagged([("retrain-check", b'{"messages": [{"role": "user", "content": "hello"}]}', 1)])
        return f"{settings.validation.moderation_model} answers on {moderator.provider.name}"

    return [
        ("bucket", bucket),
        ("training provider", training_provider),
        ("production", production),
        ("retirement", retirement),
        ("eval sets", eval_sets),
        ("expectation suite", suite),
        ("moderation pre-check", moderation),
        ("Prefect API", lambda: _prefect_api(settings)),
    ]


def check() -> None:
    """Check that a night could run with this configuration (nothing is changed)."""
    table = Rows("retrain check", ("check", "result", "detail"))
    failed = 0
    for name, run in _checks():
        try:
            detail = run()
            result = (
                Text("warning", style="bold yellow")
                if isinstance(detail, Warned)
                else Text("ok", style="green")
            )
        except RetrainError as exc:
            detail, result = str(exc), Text("failed", style="bold red")
            failed += 1
        table.add_row(name, result, detail)
    table.print(_console)
    if failed:
        _console.print(f"{failed} check(s) failed: fix them before the next night")
        raise typer.Exit(code=1)


def register(root: typer.Typer) -> None:
    root.command("check")(check)
