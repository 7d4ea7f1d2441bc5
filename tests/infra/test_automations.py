"""Applying the automations file against a real Prefect server."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from uuid import uuid4

import pytest
import typer
import yaml
from typer.testing import CliRunner

from retrain.cli.automations import apply_automations, read_automation_file
from retrain.cli.ops import register
from retrain.config.services import S3Settings
from retrain.exceptions import ConfigError
from tests.infra.webhook_receiver import arrives_within, webhook_receiver

AUTOMATIONS = Path(__file__).resolve().parents[2] / "deployments" / "automations.yaml"
NAMES = [
    "retrain-nightly-failed",
    "retrain-alias-changed",
    "retrain-promotion-superseded",
    "retrain-approval-pending",
    "retrain-retirement-near",
]
WEBHOOK = "https://hooks.slack.example/services/T000/B000/not-a-real-token"


def _automations_named(name: str) -> list[Any]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_automations_by_name(name)


def test_file_names_its_block_and_its_automations() -> None:
    spec = read_automation_file(AUTOMATIONS)
    assert spec.notification_block == "retrain-alerts"
    assert [entry["name"] for entry in spec.automations] == NAMES


@pytest.mark.slow
def test_apply_twice_keeps_one_of_each_and_the_block(prefect_api_url: str) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    first = apply_automations(AUTOMATIONS, WEBHOOK)
    second = apply_automations(AUTOMATIONS, WEBHOOK + "-rotated")

    assert [(a.name, a.outcome) for a in second] == [(name, "updated") for name in NAMES]
    assert [a.id for a in second] == [a.id for a in first]
    for name in NAMES:
        [automation] = _automations_named(name)
        [action] = automation.actions
        block = cast(CustomWebhookNotificationBlock, CustomWebhookNotificationBlock.load("retrain-alerts"))
        assert action.block_document_id == block._block_document_id
    assert block.secrets.get_secret_value() == {"webhook_url": WEBHOOK + "-rotated"}
    assert WEBHOOK not in repr(block)


@pytest.mark.slow
def test_apply_collapses_duplicates_made_by_hand(prefect_api_url: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore

    apply_automations(AUTOMATIONS, WEBHOOK)
    [existing] = _automations_named(NAMES[0])
    with get_client(sync_client=True) as client:
        client.create_automation(AutomationCore.model_validate(existing.model_dump(exclude={"id"})))
    assert len(_automations_named(NAMES[0])) == 2

    apply_automations(AUTOMATIONS, WEBHOOK)

    assert len(_automations_named(NAMES[0])) == 1


@pytest.mark.slow
def test_cli_applies_without_printing_the_url(prefect_api_url: str) -> None:
    root = typer.Typer()
    root.callback()(lambda: None)
    register(root)
    result = CliRunner().invoke(
        root,
        ["automations", "apply", "--file", str(AUTOMATIONS)],
        env={"RETRAIN_ALERTS_WEBHOOK_URL": WEBHOOK},
    )
    assert result.exit_code == 0, result.output
    assert all(name in result.output for name in NAMES)
    assert "not-a-real-token" not in result.output


@pytest.mark.slow
def test_invalid_automation_is_a_config_error(prefect_api_url: str, tmp_path: Path) -> None:
    spec = yaml.safe_load(AUTOMATIONS.read_text())
    spec["automations"][0]["trigger"]["posture"] = "Sideways"
    broken = tmp_path / "automations.yaml"
    broken.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"retrain-nightly-failed.*trigger"):
        apply_automations(broken, WEBHOOK)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("automations: []\n", "notification_block"),
        ("notification_block: x\nautomations: [{trigger: {}}]\n", "'name'"),
        ("notification_block: x\nautomations: [{name: a}, {name: a}]\n", "repeats a name"),
        ("notification_block: [\n", "not valid YAML"),
    ],
)
def test_malformed_file_is_a_config_error(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "automations.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=problem):
        read_automation_file(path)


def test_webhook_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match="https://"):
        apply_automations(AUTOMATIONS, "hooks.slack.com/services/x")


@pytest.mark.slow
def test_alias_change_event_reaches_the_webhook(prefect_api_url: str) -> None:
    """Through the flows' own emitter, so the event contract and the templates stay in step."""
    from prefect.events.worker import EventsWorker

    from retrain.registry.registry import ModelRecord, RegistryEvent
    from tasks.registry import announce_alias_change

    model = f"ft:gpt-4o-mini:acme::{uuid4().hex[:8]}"
    event = RegistryEvent(
        seq=7,
        alias="production",
        action="promote",
        model=ModelRecord(model_id=model, provider="local", base_model="gpt-4o-mini"),
        previous_model_id="ft:old",
        actor="prefect:nightly-retrain/retrain-2026-11-25",
        reason="test",
    )
    with webhook_receiver() as (url, received):
        apply_automations(AUTOMATIONS, url)
        deadline = time.monotonic() + 120
        while not received and time.monotonic() < deadline:
            announce_alias_change(event)
            EventsWorker.drain_all()
            arrives_within(3, lambda: bool(received))
        assert received, "no notification reached the webhook within 120 s"
        text = received[0]["text"]
        assert f"alias production -> {model}" in text
        assert "from ft:old to " in text
        assert "(promote by prefect:nightly-retrain/retrain-2026-11-25, event 7)" in text
        assert "Reason: test" in text


@pytest.mark.slow
def test_a_manual_rollback_from_the_cli_reaches_the_webhook(prefect_api_url: str, s3_env: S3Settings) -> None:
    """`retrain alias rollback` sends the flows' event itself: the alert fires with no flow run."""
    from retrain.cli.main import app
    from retrain.registry.registry import ModelRecord, Registry
    from retrain.storage.object_store import ObjectStore

    registry = Registry(ObjectStore.from_settings(s3_env))
    good, bad = (f"ft:gpt-4o-mini:acme::{name}-{uuid4().hex[:6]}" for name in ("good", "bad"))
    for model in (good, bad):
        record = ModelRecord(model_id=model, provider="local", base_model="gpt-4o-mini")
        registry.set("production", record, actor="test", reason="test")
    with webhook_receiver() as (url, received):
        apply_automations(AUTOMATIONS, url)
        deadline = time.monotonic() + 120
        target = good
        while not received and time.monotonic() < deadline:
            result = CliRunner().invoke(app, ["alias", "rollback", "production", "--to", target])
            assert result.exit_code == 0, result.output
            assert "sent retrain.alias.changed for production" in result.output
            arrives_within(3, lambda: bool(received))
            target = bad if target == good else good
        assert received, "no notification reached the webhook within 120 s"
        text = received[0]["text"]
        assert f"alias production -> {good}" in text
        assert f"from {bad} to " in text
        assert "(rollback by cli:" in text


def _first_notice_of(night: Callable[..., Any]) -> str:
    """Run ``night`` (a flow) until the applied automations post about it; the first text posted."""
    with webhook_receiver() as (url, received):
        apply_automations(AUTOMATIONS, url)
        deadline = time.monotonic() + 120
        while not received and time.monotonic() < deadline:
            night(return_state=True)
            arrives_within(3, lambda: bool(received))
        assert received, "no notification reached the webhook within 120 s"
        return str(received[0]["text"])


@pytest.mark.slow
def test_failed_nightly_run_reaches_the_webhook(prefect_api_url: str) -> None:
    from prefect import flow

    @flow(name="nightly-retrain")
    def failing_night() -> None:
        raise RuntimeError("provider down")

    text = _first_notice_of(failing_night)
    assert "is Failed" in text and "provider down" in text


@pytest.mark.slow
def test_a_superseded_promotion_reaches_the_webhook(prefect_api_url: str) -> None:
    from prefect import flow
    from prefect.states import Completed

    @flow(name="nightly-retrain")
    def superseded_night() -> Any:
        return Completed(name="Superseded", message="superseded: production moved to ft:known-good")

    text = _first_notice_of(superseded_night)
    assert "was superseded" in text and "production moved to ft:known-good" in text


@pytest.mark.slow
def test_a_night_waiting_for_approval_reaches_the_webhook(prefect_api_url: str) -> None:
    """Through the approval task's own emitter, from a nightly flow run as when it pauses."""
    from prefect import flow

    from retrain.promote.decision import Decision
    from retrain.registry.registry import ModelRecord
    from tasks.approval import announce_approval_pending

    candidate = f"ft:gpt-4o-mini:acme::{uuid4().hex[:8]}"
    waiting = Decision(
        dataset_version="ds-20261201-abc",
        run_id="retrain-2026-12-01",
        job_id="ftjob-1",
        candidate=ModelRecord(model_id=candidate, provider="local", base_model="gpt-4o-mini"),
        production=ModelRecord(model_id="ft:old", provider="local", base_model="gpt-4o-mini"),
        promote=True,
        reason="gate passed",
        candidate_score=0.8,
        production_score=0.6,
        report_markdown="## Gate",
    )

    @flow(name="nightly-retrain", flow_run_name="retrain-2026-12-01")
    def waiting_night() -> None:
        announce_approval_pending(waiting, 28800)

    text = _first_notice_of(waiting_night)
    assert f"approve {candidate} for production?" in text
    assert "Nightly run retrain-2026-12-01 waits up to 28800 s" in text
    assert f"promote {candidate} (score 0.8) over ft:old (score 0.6), dataset ds-20261201-abc" in text


@pytest.mark.slow
def test_a_retiring_base_model_reaches_the_webhook(
    prefect_api_url: str, s3_env: S3Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the nightly task's own emitter, while production's base model retires within the window."""
    from datetime import UTC, datetime, timedelta

    from prefect import flow

    from retrain.config.settings import get_settings
    from retrain.registry.registry import ModelRecord, Registry
    from retrain.storage.object_store import ObjectStore
    from tasks.retirement import warn_of_retirement

    base = f"acme-base-{uuid4().hex[:6]}"
    retires = datetime.now(UTC).date() + timedelta(days=10)
    monkeypatch.setenv("RETRAIN_RETIREMENT__CALENDAR", f'{{"{base}": "{retires}"}}')
    get_settings.cache_clear()
    record = ModelRecord(model_id=f"ft:{base}:acme::x", provider="local", base_model=base)
    Registry(ObjectStore.from_settings(s3_env)).set("production", record, actor="test", reason="test")

    @flow(name="nightly-retrain")
    def night() -> None:
        assert len(warn_of_retirement()) == 1

    text = _first_notice_of(night)
    assert f"production's base model {base} (of ft:{base}:acme::x) stops on {retires} (10 days)" in text
    assert "retrain migrate --to BACKEND" in text and "RETRAIN_RETIREMENT__CALENDAR" in text


@pytest.mark.slow
def test_other_flows_failing_do_not_notify(prefect_api_url: str) -> None:
    from prefect import flow
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    @flow(name="evaluate")
    def failing_eval() -> None:
        raise RuntimeError("not the nightly flow")

    with webhook_receiver() as (url, received):
        apply_automations(AUTOMATIONS, url)
        failing_eval(return_state=True)
        model = f"ft:marker:{uuid4().hex[:8]}"
        deadline = time.monotonic() + 120
        while not any(model in body["text"] for body in received) and time.monotonic() < deadline:
            emit_event(
                event="retrain.alias.changed",
                resource={"prefect.resource.id": "retrain.alias.staging", "prefect.resource.name": "staging"},
                payload={"alias": "staging", "from_model": None, "to_model": model, "reason": "marker"},
            )
            EventsWorker.drain_all()
            time.sleep(3)
        texts = [body["text"] for body in received]
        assert any(model in text for text in texts), texts
        assert not any("not the nightly flow" in text for text in texts), texts
