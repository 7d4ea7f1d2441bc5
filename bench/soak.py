"""Chaos soak: many simulated nights on the local stack, with faults everywhere, then invariants.

Run with ``.venv/bin/python -m bench.soak --nights 30`` (needs the dev dependencies). The
parent process runs a moto S3 server, the local OpenAI-compatible server and a Prefect test
server; every night runs the real nightly flow in a child process
(``python -m bench.soak night ...``), so a kill is a real ``SIGKILL`` of a real run:

- **API faults**: before each night, random rules for the local server's injector (429s and
  500s on chat, files and jobs; slow chat; the next fine-tuning job failing);
- **S3 faults**: in the child, botocore event hooks on the default session answer a random
  share of S3 requests with a real ``503 SlowDown`` before sending them (botocore retries
  those), and drop the response of a smaller share *after* S3 applied the request (the
  caller sees a connection error although the write happened);
- **kills**: an attempt is killed with ``SIGKILL`` at a random moment, and the night is run
  again until it finishes.

Nights land new data under ``incoming/{night}/``, sometimes a resend of old examples, a bad
export (wrong answers) or a straggler written late under an old partition (found by the
reconciliation nights and the final sweep); an operator sometimes rolls ``production`` back.
Afterwards ``check_invariants`` verifies:

1. the registry log is one linear sequence (seq 1..n, no gaps) and its snapshots agree;
2. no dataset version was trained twice (the provider's jobs, by their metadata);
3. every line that landed in ``incoming/`` is in the curated set or in quarantine (a
   duplicate is quarantined with its reason), and every object was ingested exactly once;
4. ``production`` only moved on a recorded promotion decision or an operator rollback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

__all__ = ["Check", "SoakResult", "check_invariants", "main", "run_soak"]

_FIRST_NIGHT = date(2026, 1, 5)
_EVAL_ITEMS = 120


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class SoakResult:
    nights: int = 0
    attempts: int = 0
    kills: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    api_faults: Counter[str] = field(default_factory=Counter)
    s3_faults: Counter[str] = field(default_factory=Counter)
    rollbacks: list[dict[str, str]] = field(default_factory=list)
    landed: dict[str, int] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def summary(self) -> str:
        lines = [
            f"nights: {self.nights} ({self.attempts} attempts, {self.kills} killed with SIGKILL) "
            f"in {self.seconds:.0f} s",
            "outcomes: " + ", ".join(f"{name} {n}" for name, n in sorted(self.outcomes.items())),
            "API faults injected: "
            + (", ".join(f"{k} {n}" for k, n in sorted(self.api_faults.items())) or "none"),
            "S3 faults injected: "
            + (", ".join(f"{k} {n}" for k, n in sorted(self.s3_faults.items())) or "none"),
            f"objects landed: {len(self.landed)} ({sum(self.landed.values())} lines); "
            f"operator rollbacks: {len(self.rollbacks)}",
            "invariants:",
        ]
        lines += [f"  [{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}" for check in self.checks]
        return "\n".join(lines)


# -- the child: one night -------------------------------------------------------------


def _install_s3_faults(rate: float, lost_rate: float, seed: int, log_path: Path) -> None:
    """Real S3 errors through botocore's hooks on the default session (every client inherits them)."""
    import boto3
    from botocore.awsrequest import AWSResponse, HTTPHeaders
    from botocore.exceptions import ConnectionClosedError

    rng = random.Random(seed)
    lock = threading.Lock()

    def record(kind: str) -> None:
        with lock, log_path.open("a") as sink:
            sink.write(kind + "\n")

    class _Body:
        def __init__(self, data: bytes) -> None:
            self._data = data

        def stream(self, **_: object) -> Iterator[bytes]:
            yield self._data

    def before_send(request: Any, **_: object) -> AWSResponse | None:
        with lock:
            roll = rng.random()
        if roll >= rate:
            return None
        record("s3_503_slowdown")
        body = (
            b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate (soak).</Message></Error>"
        )
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/xml"
        return AWSResponse(request.url, 503, headers, _Body(body))

    def after_call(http_response: Any, **_: object) -> None:
        with lock:
            roll = rng.random()
        if roll < lost_rate and http_response.status_code < 300:
            record("s3_response_lost")
            raise ConnectionClosedError(endpoint_url=str(http_response.url))

    session = boto3._get_default_session()
    session.events.register("before-send.s3", before_send)  # type: ignore[arg-type]
    session.events.register("after-call.s3", after_call)


def night_main(args: argparse.Namespace) -> int:
    """Run one night's flow in this process and print its final state as one JSON line."""
    _install_s3_faults(args.s3_fault_rate, args.s3_lost_rate, args.seed, Path(args.fault_log))
    from flows.nightly import nightly_retrain

    state = nightly_retrain(night=date.fromisoformat(args.date), return_state=True)
    print(
        json.dumps({"state": state.name, "type": state.type.value, "message": state.message or ""}),
        flush=True,
    )
    return 0


# -- the parent: nights, faults, kills, invariants -------------------------------------


@dataclass
class SoakConfig:
    nights: int
    seed: int = 0
    kill_rate: float = 0.4
    s3_fault_rate: float = 0.03
    s3_lost_rate: float = 0.002
    reconcile_every: int = 5
    straggler_rate: float = 0.25
    max_attempts: int = 8


class _Soak:
    def __init__(self, config: SoakConfig, env: dict[str, str], api_root: str, workdir: Path) -> None:
        from retrain.config.settings import load_settings
        from retrain.storage.object_store import ObjectStore

        self.config = config
        self.env = env
        self.api_root = api_root
        self.workdir = workdir
        self.rng = random.Random(config.seed)
        # Kills draw from a stream of their own: whether a kill lands before the night ends depends
        # on how fast the machine is, and the attempts it adds must not change what lands next.
        self.kill_rng = random.Random(f"{config.seed}/kills")
        self.settings = load_settings(
            s3={
                "endpoint_url": env["RETRAIN_S3__ENDPOINT_URL"],
                "bucket": env["RETRAIN_S3__BUCKET"],
                "access_key_id": "testing",
                "secret_access_key": "testing",
            },
            provider={"base_url": env["RETRAIN_PROVIDER__BASE_URL"]},
        )
        self.store = ObjectStore.from_settings(self.settings.s3)
        self.result = SoakResult()
        self.night_seconds: list[float] = []  # of the attempts that finished
        self.fault_log = workdir / "s3-faults.log"

    # -- data ---------------------------------------------------------------------

    def land(self, index: int, night: date) -> None:
        from retrain.local import synthetic

        rng = self.rng
        for part in range(rng.randint(1, 3)):
            wrong = 0.9 if rng.random() < 0.1 else 0.0
            examples = synthetic.make_examples(
                rng.randint(60, 250), seed=index * 10 + part, wrong_answer_rate=wrong
            )
            lines = [orjson.dumps(example).decode() for example in examples]
            lines += synthetic.make_dirty_lines(rng.randint(0, 4), seed=index * 10 + part)
            if rng.random() < 0.2 and self.result.landed:
                lines += [orjson.dumps(example).decode() for example in synthetic.make_examples(20, seed=0)]
            self._put(f"incoming/{night.isoformat()}/producer-{part}.jsonl", lines)
        if index >= 1 and rng.random() < self.config.straggler_rate:
            late = night - timedelta(days=rng.randint(4, 6))
            examples = synthetic.make_examples(rng.randint(20, 60), seed=9000 + index)
            self._put(
                f"incoming/{late.isoformat()}/late-{index}.jsonl",
                [orjson.dumps(e).decode() for e in examples],
            )

    def _put(self, key: str, lines: list[str]) -> None:
        self.store.put_bytes(key, ("\n".join(lines) + "\n").encode())
        self.result.landed[key] = len(lines)

    # -- faults -------------------------------------------------------------------

    def configure_api_faults(self) -> None:
        rng = self.rng
        rules: list[dict[str, Any]] = []
        if rng.random() < 0.5:
            rules.append({"route": "chat", "kind": "429", "rate": 0.05, "retry_after": 0.05})
        if rng.random() < 0.3:
            rules.append({"route": "chat", "kind": "500", "rate": 0.03})
        if rng.random() < 0.3:
            rules.append({"route": "files", "kind": "500", "rate": 0.5, "count": 2})
        if rng.random() < 0.3:
            rules.append({"route": "jobs", "kind": "429", "rate": 0.3, "retry_after": 0.1, "count": 2})
        config: dict[str, Any] = {"rules": rules}
        if rng.random() < 0.15:
            config["next_job"] = "fail"
        if rng.random() < 0.2:
            config["chat_latency_seconds"] = 0.01
        httpx.post(f"{self.api_root}/admin/faults", json=config, timeout=30).raise_for_status()

    # -- nights -------------------------------------------------------------------

    def run_night(self, index: int, night: date) -> None:
        reconcile = self.config.reconcile_every > 0 and (index + 1) % self.config.reconcile_every == 0
        env = {**self.env, "RETRAIN_INGEST__RECONCILE": "true" if reconcile else "false"}
        for attempt in range(self.config.max_attempts):
            self.result.attempts += 1
            kill_at = None
            if attempt < 3 and self.kill_rng.random() < self.config.kill_rate / (attempt + 1):
                # Anywhere in a night as long as the longest so far (20 s before one has finished).
                kill_at = self.kill_rng.uniform(0.2, max(self.night_seconds, default=20.0) * 1.1)
            outcome = self._attempt(night, env, kill_at, seed=self.config.seed * 1000 + index * 10 + attempt)
            if outcome is not None:
                self.result.outcomes[outcome] += 1
                return
        raise RuntimeError(f"night {night} did not finish in {self.config.max_attempts} attempts")

    def _attempt(self, night: date, env: dict[str, str], kill_at: float | None, seed: int) -> str | None:
        command = [
            sys.executable,
            "-m",
            "bench.soak",
            "night",
            "--date",
            night.isoformat(),
            "--seed",
            str(seed),
            "--s3-fault-rate",
            str(self.config.s3_fault_rate),
            "--s3-lost-rate",
            str(self.config.s3_lost_rate),
            "--fault-log",
            str(self.fault_log),
        ]
        log = (self.workdir / f"night-{night.isoformat()}.log").open("ab")
        began = time.monotonic()
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=log, cwd=Path.cwd())
        try:
            out, _ = process.communicate(timeout=kill_at if kill_at is not None else 900)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.communicate()
            self.result.kills += 1
            log.write(f"\n=== soak: SIGKILL after {kill_at:.1f} s ===\n".encode())
            return None
        finally:
            log.close()
        if process.returncode != 0:
            return None
        self.night_seconds.append(time.monotonic() - began)
        last = [line for line in out.decode().splitlines() if line.startswith("{")][-1]
        state = json.loads(last)
        message = state["message"]
        for word in ("promoted", "rejected", "no new data", "too few", "only", "StillTraining", "failed"):
            if word in message or word == state["state"]:
                return f"{state['state']}: {word}"
        return f"{state['state']}"

    def operator_rollback(self, index: int) -> None:
        from retrain.registry.registry import Registry

        registry = Registry(self.store)
        if registry.get("production") is None or not registry.state().rollback_candidates("production"):
            return
        if self.rng.random() >= 0.12:
            return
        key = f"soak-rollback-{index}"
        event = registry.rollback(
            "production", actor="soak-operator", reason="soak: bad feedback", idempotency_key=key
        )
        self.result.rollbacks.append({"idempotency_key": key, "model": event.model.model_id})

    def collect_faults(self) -> None:
        stats = httpx.get(f"{self.api_root}/admin/stats", timeout=30).json()
        self.result.api_faults = Counter(
            {f"api_{k}": int(v) for k, v in stats.get("faults_injected", {}).items()}
        )
        if self.fault_log.exists():
            self.result.s3_faults = Counter(self.fault_log.read_text().split())


def run_soak(config: SoakConfig, env: dict[str, str], api_root: str, workdir: Path) -> SoakResult:
    """The soak against running servers; env holds RETRAIN_* and PREFECT_* for the children."""
    from retrain.evaluate.eval_sets import put_eval_set
    from retrain.local.synthetic import make_eval_set

    began = time.monotonic()
    soak = _Soak(config, env, api_root, workdir)
    soak.store.ensure_bucket()
    put_eval_set(soak.store, "main", make_eval_set(_EVAL_ITEMS, seed=99))
    for index in range(config.nights):
        night = _FIRST_NIGHT + timedelta(days=index)
        soak.land(index, night)
        soak.configure_api_faults()
        soak.run_night(index, night)
        soak.result.nights += 1
        soak.operator_rollback(index)
        print(
            f"night {index + 1}/{config.nights} {night}: {soak.result.outcomes}", file=sys.stderr, flush=True
        )
    httpx.delete(f"{api_root}/admin/faults", timeout=30).raise_for_status()
    _final_sweep(soak)
    soak.collect_faults()
    soak.result.checks = check_invariants(soak.store, soak.settings, soak.result)
    soak.result.seconds = time.monotonic() - began
    return soak.result


def _final_sweep(soak: _Soak) -> None:
    """A reconciliation ingest without faults, so late stragglers are in before the checks."""
    from retrain.ingest.batches import ingest_objects
    from retrain.ingest.discovery import discover

    found = discover(soak.store, reconcile=True)
    if found.new:
        ingest_objects(soak.store, found.new, soak.settings, run_id="soak-final-sweep")


# -- invariants -----------------------------------------------------------------------


def check_invariants(store: Any, settings: Any, result: SoakResult) -> list[Check]:
    return [
        _registry_is_linear(store),
        _no_version_trained_twice(settings),
        _every_line_accounted(store, result),
        _alias_moves_are_recorded(store, result),
    ]


def _registry_is_linear(store: Any) -> Check:
    from retrain.registry.log import RegistryLog
    from retrain.registry.registry import Registry
    from retrain.registry.resolver import AliasReader
    from retrain.storage.layout import REGISTRY_LOG_PREFIX as LOG_PREFIX

    keys = [info.key for info in store.list(LOG_PREFIX)]
    seqs = [int(key.rsplit("/", 1)[-1].removesuffix(".json")) for key in keys]
    name = "registry history is one linear sequence"
    if seqs != list(range(1, len(seqs) + 1)):
        return Check(name, False, f"sequence numbers {seqs[:5]}... are not 1..{len(seqs)}")
    full = RegistryLog(store).replay(from_snapshot=False)
    if Registry(store).state().to_snapshot() != full.to_snapshot():
        return Check(name, False, "the snapshot-based state differs from a full replay")
    heads = AliasReader(store).heads()
    if heads.to_snapshot() != full.heads().to_snapshot():
        return Check(name, False, "the read path (heads) differs from a full replay")
    return Check(
        name, True, f"{len(seqs)} events, seq 1..{len(seqs)}, snapshots and heads agree with a replay"
    )


def _no_version_trained_twice(settings: Any) -> Check:
    from retrain.providers.clients import make_client

    client = make_client(settings.provider, max_retries=5)
    jobs = list(client.fine_tuning.jobs.list(limit=100))
    live: Counter[tuple[str, str]] = Counter()
    for job in jobs:
        metadata = job.metadata or {}
        if job.status not in ("failed", "cancelled"):
            live[(metadata.get("dataset_version", "?"), metadata.get("config_hash", "?"))] += 1
    twice = [version for version, n in live.items() if n > 1]
    failed = sum(1 for job in jobs if job.status in ("failed", "cancelled"))
    return Check(
        "no dataset version was trained twice",
        not twice,
        f"{len(jobs)} jobs ({failed} failed/cancelled and retried), {len(live)} versions trained"
        + (f"; TWICE: {twice}" if twice else ""),
    )


def _every_line_accounted(store: Any, result: SoakResult) -> Check:
    from retrain.curate.dataset import latest_version
    from retrain.ingest.discovery import processed_etags
    from retrain.storage.layout import BATCH_PREFIX

    name = "every landed line is curated or quarantined, every object ingested once"
    manifests = [store.get_json(info.key) for info in store.list(BATCH_PREFIX)]
    seen: Counter[tuple[str, str]] = Counter()
    problems: list[str] = []
    latest = latest_version(store)
    curated_shards = {shard.key for shard in (latest.shards if latest is not None else ())}
    accepted_total = quarantined_total = duplicates = 0
    for manifest in manifests:
        shard_rows: Counter[str] = Counter()
        shard_key = f"curated/shards/{manifest['batch_id']}.jsonl"
        if manifest["accepted"]:
            if shard_key not in curated_shards:
                problems.append(f"shard of {manifest['batch_id']} is not in the latest dataset version")
            shard_rows = Counter(
                orjson.loads(line)["source"] for line in store.iter_lines(shard_key) if line.strip()
            )
        quarantine_rows: Counter[str] = Counter()
        if manifest["quarantine_key"]:
            for line in store.iter_lines(manifest["quarantine_key"]):
                if line.strip():
                    row = orjson.loads(line)
                    quarantine_rows[row["source"]] += 1
                    duplicates += any(reason["code"] == "duplicate" for reason in row["reasons"])
        for item in manifest["objects"]:
            seen[(item["key"], item["etag"])] += 1
            expected = result.landed.get(item["key"])
            if expected is not None and item["lines_read"] != expected:
                problems.append(f"{item['key']}: {item['lines_read']} lines read, {expected} landed")
            if item["lines_read"] != item["accepted"] + item["quarantined"]:
                problems.append(f"{item['key']}: lines read != accepted + quarantined")
            if (
                shard_rows[item["key"]] != item["accepted"]
                or quarantine_rows[item["key"]] != item["quarantined"]
            ):
                problems.append(f"{item['key']}: shard/quarantine rows differ from the manifest")
            accepted_total += item["accepted"]
            quarantined_total += item["quarantined"]
    for key in result.landed:
        info = store.head(key)
        if seen[(key, info.etag)] != 1:
            problems.append(f"{key} was ingested {seen[(key, info.etag)]} times")
    processed = processed_etags(store, {key.split("/")[1] for key in result.landed})
    unprocessed = [key for key in result.landed if key not in processed]
    if unprocessed:
        problems.append(f"not in the processed index: {unprocessed[:3]}")
    lines = sum(result.landed.values())
    if accepted_total + quarantined_total != lines:
        problems.append(f"{accepted_total} accepted + {quarantined_total} quarantined != {lines} landed")
    detail = (
        f"{lines} lines in {len(result.landed)} objects = {accepted_total} curated + {quarantined_total} "
        f"quarantined ({duplicates} as duplicates), {len(manifests)} batches"
    )
    return Check(name, not problems, detail + ("; " + "; ".join(problems[:5]) if problems else ""))


def _alias_moves_are_recorded(store: Any, result: SoakResult) -> Check:
    from retrain.promote.decision import load_decision
    from retrain.registry.registry import Registry

    name = "production moved only on a recorded promotion or rollback"
    registry = Registry(store)
    if registry.get("production") is None:
        return Check(name, True, "production never moved")
    rollbacks = {item["idempotency_key"]: item["model"] for item in result.rollbacks}
    problems: list[str] = []
    actions: Counter[str] = Counter()
    for event in registry.history("production"):
        actions[event.action] += 1
        if event.action == "promote":
            decision = load_decision(store, event.model.dataset_version or "")
            if (
                decision is None
                or not decision.promote
                or decision.candidate.model_id != event.model.model_id
            ):
                problems.append(f"event {event.seq}: promotion of {event.model.model_id} without a decision")
        elif event.action == "rollback":
            if rollbacks.get(event.idempotency_key or "") != event.model.model_id:
                problems.append(f"event {event.seq}: rollback nobody asked for")
        else:
            problems.append(f"event {event.seq}: production moved by {event.action!r}")
    promotions = actions["promote"]
    if len(rollbacks) != actions["rollback"]:
        problems.append(f"{len(rollbacks)} rollbacks asked, {actions['rollback']} in the log")
    detail = f"{promotions} promotions (each with its decision), {actions['rollback']} operator rollbacks"
    return Check(name, not problems, detail + ("; " + "; ".join(problems[:5]) if problems else ""))


# -- the stack ------------------------------------------------------------------------


@contextmanager
def local_stack(workdir: Path, prefect_api_url: str | None = None) -> Iterator[tuple[dict[str, str], str]]:
    """moto server + local OpenAI server (+ a Prefect test server unless one is given)."""
    from local_openai import serve_in_thread

    from tests.s3_servers import moto_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with moto_server() as s3, serve_in_thread(workdir / "openai", step_delay=0.002) as api:
        env = {
            **os.environ,
            "RETRAIN_S3__ENDPOINT_URL": str(s3.endpoint_url),
            "RETRAIN_S3__BUCKET": s3.bucket,
            "RETRAIN_S3__ACCESS_KEY_ID": "testing",
            "RETRAIN_S3__SECRET_ACCESS_KEY": "testing",
            "RETRAIN_PROVIDER__BASE_URL": api.base_url,
            "RETRAIN_TRAINING__POLL_INTERVAL_SECONDS": "0.1",
            "RETRAIN_TRAINING__MAX_POLL_INTERVAL_SECONDS": "0.5",
            "RETRAIN_EVALUATION__CONCURRENCY": "8",
            "RETRAIN_LOCAL__DATA_DIR": str(workdir / "data"),
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
        if prefect_api_url:
            yield {**env, "PREFECT_API_URL": prefect_api_url}, api.root_url
            return
        from prefect.settings import PREFECT_API_URL
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=120):
            yield {**env, "PREFECT_API_URL": str(PREFECT_API_URL.value())}, api.root_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    night = sub.add_parser("night", help="(internal) run one night in this process")
    night.add_argument("--date", required=True)
    night.add_argument("--seed", type=int, default=0)
    night.add_argument("--s3-fault-rate", type=float, default=0.0)
    night.add_argument("--s3-lost-rate", type=float, default=0.0)
    night.add_argument("--fault-log", required=True)
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kill-rate", type=float, default=0.4)
    parser.add_argument("--s3-fault-rate", type=float, default=0.03)
    parser.add_argument("--s3-lost-rate", type=float, default=0.002)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.command == "night":
        return night_main(args)

    import tempfile

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT", "false")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="retrain-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(workdir / "prefect"))
    config = SoakConfig(
        nights=args.nights,
        seed=args.seed,
        kill_rate=args.kill_rate,
        s3_fault_rate=args.s3_fault_rate,
        s3_lost_rate=args.s3_lost_rate,
    )
    with local_stack(workdir) as (env, api_root):
        result = run_soak(config, env, api_root, workdir)
    print(result.summary())
    print(f"(logs of every night under {workdir})")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
