"""The fine-tuning job state machine, run by one background thread.

validating_files -> queued -> running -> succeeded | failed | cancelled, with paused jobs
set aside until resumed. Training itself takes well under a second; its steps are then
replayed at ``step_delay`` seconds each, emitting metrics events and checkpoints, so a job
can be watched, paused and cancelled. Progress is stored after each step: after a restart an
unfinished job is trained again (deterministically, by its seed) and continues at its step.
Injected job faults (``local_openai.faults``) act here: a job fails, hangs, is cancelled,
is blocked by its safety checks after training, succeeds without a model, or is held.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from local_openai.learner import EpochMetrics, Learner, Pair, StepMetrics
from local_openai.state import ServerState
from local_openai.store import Document, new_id
from local_openai.training_files import InvalidFile, read_pairs

__all__ = ["ACTIVE", "TERMINAL", "Worker", "add_event"]

logger = logging.getLogger(__name__)

TERMINAL = {"succeeded", "failed", "cancelled"}
ACTIVE = {"validating_files", "queued", "running"}
_MAX_CHECKPOINTS = 3


def add_event(
    state: ServerState,
    job_id: str,
    message: str,
    *,
    level: str = "info",
    kind: Literal["message", "metrics"] = "message",
    data: dict[str, Any] | None = None,
    stage: str | None = None,
) -> None:
    """Record a job event; ``stage`` is its Together event type, for the jobs of ``routes_together``."""
    event = {
        "object": "fine_tuning.job.event",
        "id": new_id("ftevent"),
        "created_at": int(time.time()),
        "level": level,
        "message": message,
        "type": kind,
        "data": data or {},
        "_stage": stage,
    }
    state.store.insert("event", event, parent=job_id)


@dataclass(frozen=True)
class _Plan:
    learner: Learner
    steps: list[StepMetrics]
    epochs: list[EpochMetrics]
    trained_tokens: int


class _Stop(Exception):
    """The job left the running state (paused or cancelled) while it was being worked on."""


class Worker(threading.Thread):
    def __init__(self, state: ServerState) -> None:
        super().__init__(name="local-openai-worker", daemon=True)
        self.state = state
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._recover()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self.join(timeout=10)

    def run(self) -> None:
        while not self._stopping.is_set():
            job = self._next_job()
            if job is None:
                self._wake.wait(timeout=0.5)
                self._wake.clear()
                continue
            try:
                self._process(job["id"])
            except _Stop:
                continue
            except Exception as exc:
                logger.exception("job %s crashed", job["id"])
                self._fail(job["id"], "server_error", f"Internal error while training: {type(exc).__name__}")

    def _recover(self) -> None:
        """Jobs a previous server process left unfinished continue; injected job faults do not outlive it."""
        for job in self.state.store.list("job"):
            if job["status"] not in ACTIVE:
                continue
            self._update(job["id"], lambda doc: {**doc, "_fault": None, "_hung": False})
            add_event(
                self.state,
                job["id"],
                f"Server restarted; the job continues from step {job['_step']}.",
                stage="job_restarted",
            )

    def _next_job(self) -> Document | None:
        holding = self.state.faults.holding_jobs()
        for job in self.state.store.list("job"):
            if job["status"] in ACTIVE and not job.get("_hung"):
                if holding and job["status"] == "running":
                    continue
                return job
        return None

    def _update(self, job_id: str, change: Any, *, expect: set[str] | None = None) -> Document:
        """Change the job, if its status is still one of ``expect``; else raise _Stop."""
        refused = []

        def guarded(doc: Document) -> Document | None:
            if expect is not None and doc["status"] not in expect:
                refused.append(doc["status"])
                return None
            new: Document = change(doc)
            return new

        doc = self.state.store.update("job", job_id, guarded)
        if doc is None or refused:
            raise _Stop
        return doc

    def _fail(self, job_id: str, code: str, message: str, param: str | None = None) -> None:
        error = {"code": code, "message": message, "param": param}
        try:
            self._update(
                job_id,
                lambda d: {
                    **d,
                    "status": "failed",
                    "error": error,
                    "finished_at": int(time.time()),
                    "estimated_finish": None,
                },
                expect=ACTIVE,
            )
        except _Stop:
            return
        add_event(self.state, job_id, f"The job failed: {message}", level="error", stage="job_error")

    def _process(self, job_id: str) -> None:
        job = self.state.store.get("job", job_id)
        assert job is not None
        if job["status"] == "validating_files":
            try:
                if job.get("_fault") == "invalid_file":
                    raise InvalidFile("the file's examples are not in the chat format (injected fault)")
                self._read(job)
            except InvalidFile as exc:
                param = getattr(exc, "param", "training_file")
                self._fail(job_id, "invalid_training_file", f"Invalid file format: {exc}", param)
                return
            job = self._update(job_id, lambda d: {**d, "status": "queued"}, expect={"validating_files"})
            add_event(self.state, job_id, "Files validated, moving job to queued state", stage="job_pending")
        if job["status"] == "queued":
            job = self._update(job_id, lambda d: {**d, "status": "running"}, expect={"queued"})
            add_event(self.state, job_id, "Fine-tuning job started", stage="job_start")
        if job.get("_fault") == "hang":
            self._update(job_id, lambda d: {**d, "_hung": True}, expect={"running"})
            return
        if self.state.faults.holding_jobs():
            return
        plan = self._train(job)
        job = self._update(
            job_id,
            lambda d: {**d, "hyperparameters": job["hyperparameters"], "method": job["method"]},
            expect={"running"},
        )
        self._replay(job, plan)

    def _read(self, job: Document) -> tuple[list[Pair], list[Pair], int]:
        method = job["method"]["type"]
        train, tokens = read_pairs(self.state.store.blob_path(job["training_file"]), method=method)
        valid: list[Pair] = []
        if job["validation_file"]:
            try:
                valid, _ = read_pairs(self.state.store.blob_path(job["validation_file"]), method=method)
            except InvalidFile as exc:
                error = InvalidFile(f"validation file: {exc}")
                error.param = "validation_file"  # type: ignore[attr-defined]
                raise error from exc
        return train, valid, tokens

    def _train(self, job: Document) -> _Plan:
        train, valid, tokens = self._read(job)
        if job.get("_fault") == "degraded":  # learns each question with another question's answer
            answers = [pair.answer for pair in train]
            random.Random(job["seed"]).shuffle(answers)
            train = [Pair(pair.question, answer) for pair, answer in zip(train, answers, strict=True)]
        method = job["method"]["type"]
        hyper = job["method"][method]["hyperparameters"]
        n_epochs = (
            hyper["n_epochs"] if hyper["n_epochs"] != "auto" else max(1, min(3, round(3000 / len(train))))
        )
        batch = (
            hyper["batch_size"]
            if hyper["batch_size"] != "auto"
            else max(1, min(256, math.ceil(len(train) / 50)))
        )
        lr = hyper["learning_rate_multiplier"] if hyper["learning_rate_multiplier"] != "auto" else 1.8
        hyper.update(n_epochs=n_epochs, batch_size=batch, learning_rate_multiplier=lr)
        job["hyperparameters"] = {"n_epochs": n_epochs, "batch_size": batch, "learning_rate_multiplier": lr}
        steps: list[StepMetrics] = []
        epochs: list[EpochMetrics] = []
        learner = Learner.fit(
            train,
            valid,
            n_epochs=n_epochs,
            batch_size=batch,
            seed=job["seed"],
            on_step=steps.append,
            on_epoch=epochs.append,
        )
        return _Plan(learner, steps, epochs, tokens * n_epochs)

    def _replay(self, job: Document, plan: _Plan) -> None:
        job_id = job["id"]
        total = len(plan.steps)
        epoch_ends = {e.step: e for e in plan.epochs}
        checkpoint_steps = sorted(epoch_ends)[-_MAX_CHECKPOINTS:]
        halfway = max(1, total // 2)
        fault = job.get("_fault")
        for metrics in plan.steps[job.get("_step", 0) :]:
            time.sleep(self.state.step_delay)
            if self._stopping.is_set() or self.state.faults.holding_jobs():
                raise _Stop
            if metrics.step == halfway and fault == "fail":
                self._fail(
                    job_id, "server_error", f"Training failed at step {metrics.step} (injected fault)."
                )
                return
            if metrics.step == halfway and fault == "cancel":
                self._cancel(job_id)
                return
            data: dict[str, Any] = {
                "step": metrics.step,
                "train_loss": metrics.train_loss,
                "train_mean_token_accuracy": metrics.train_mean_token_accuracy,
                "total_steps": total,
            }
            epoch = epoch_ends.get(metrics.step)
            if epoch is not None and epoch.valid_loss is not None:
                data.update(
                    valid_loss=epoch.valid_loss, valid_mean_token_accuracy=epoch.valid_mean_token_accuracy
                )
            remaining = (total - metrics.step) * self.state.step_delay
            self._update(
                job_id,
                lambda d, s=metrics.step, r=remaining: {
                    **d,
                    "_step": s,
                    "estimated_finish": int(time.time() + r) + 1,
                },
                expect={"running"},
            )
            add_event(
                self.state,
                job_id,
                f"Step {metrics.step}/{total}: training loss={metrics.train_loss:.4f}",
                kind="metrics",
                data=data,
            )
            if metrics.step in checkpoint_steps:
                self._checkpoint(job, metrics.step, data, plan.learner)
        if fault == "blocked":
            self._fail(
                job_id,
                "safety_check_failed",
                f"Error while running moderation eval refusals_v3 for snapshot {self._model_name(job)}: "
                "the fine-tuned model failed the post-training safety checks (injected fault).",
            )
            return
        self._finish(job, plan, with_model=fault != "no_model")

    def _model_name(self, job: Document) -> str:
        suffix = job.get("user_provided_suffix") or ""
        if job.get("_output_name"):  # named when created (Together's jobs)
            return str(job["_output_name"])
        base = job["model"].split(":")[1] if job["model"].startswith("ft:") else job["model"]
        return f"ft:{base}:{self.state.org}:{suffix}:{job['id'].removeprefix('ftjob-')[:8]}"

    def _register_model(self, name: str, job: Document, learner: Learner, *, checkpoint: bool) -> None:
        key = name.replace(":", "_").replace("/", "_")
        learner.save(self.state.store.learner_path(key))
        if self.state.store.get("model", name) is None:
            self.state.store.insert(
                "model",
                {
                    "id": name,
                    "object": "model",
                    "created": int(time.time()),
                    "owned_by": self.state.org,
                    "_learner": key,
                    "_job": job["id"],
                    "_checkpoint": checkpoint,
                },
            )

    def _checkpoint(self, job: Document, step: int, data: dict[str, Any], learner: Learner) -> None:
        name = f"{self._model_name(job)}:ckpt-step-{step}"
        self._register_model(name, job, learner, checkpoint=True)
        metrics = {k: float(v) for k, v in data.items() if k != "total_steps"}
        checkpoint = {
            "object": "fine_tuning.job.checkpoint",
            "id": new_id("ftckpt", "_"),
            "created_at": int(time.time()),
            "fine_tuned_model_checkpoint": name,
            "step_number": step,
            "metrics": metrics,
            "fine_tuning_job_id": job["id"],
        }
        existing = {c["step_number"] for c in self.state.store.list("checkpoint", parent=job["id"])}
        if step not in existing:
            self.state.store.insert("checkpoint", checkpoint, parent=job["id"])
            add_event(
                self.state,
                job["id"],
                f"Checkpoint created at step {step}",
                stage="checkpoint_save",
                data={"step": step, "total_steps": data["total_steps"]},
            )

    def _results_file(self, job: Document, plan: _Plan) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"])
        epoch_ends = {e.step: e for e in plan.epochs}
        for m in plan.steps:
            epoch = epoch_ends.get(m.step)
            writer.writerow(
                [
                    m.step,
                    f"{m.train_loss:.5f}",
                    f"{m.train_mean_token_accuracy:.5f}",
                    "" if epoch is None or epoch.valid_loss is None else f"{epoch.valid_loss:.5f}",
                    ""
                    if epoch is None or epoch.valid_mean_token_accuracy is None
                    else f"{epoch.valid_mean_token_accuracy:.5f}",
                ]
            )
        content = out.getvalue().encode()
        file_id = new_id("file")
        self.state.store.blob_path(file_id).write_bytes(content)
        self.state.store.insert(
            "file",
            {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "created_at": int(time.time()),
                "filename": "step_metrics.csv",
                "purpose": "fine-tune-results",
                "status": "processed",
            },
        )
        return file_id

    def _cancel(self, job_id: str) -> None:
        """Cancel a running job the way an operator's ``jobs.cancel`` would."""
        self._update(
            job_id,
            lambda d: {**d, "status": "cancelled", "finished_at": int(time.time()), "estimated_finish": None},
            expect={"running"},
        )
        add_event(self.state, job_id, "Fine-tuning job cancelled", stage="job_stopped")

    def _package(self, job: Document) -> None:
        """Together's last stages, before the job completes: the model is compressed, then uploaded."""
        for phase, message in (
            ("compressing", "Compressing output model"),
            ("uploading", "Uploading output model"),
        ):
            self._update(job["id"], lambda d, p=phase: {**d, "_phase": p}, expect={"running"})
            add_event(self.state, job["id"], message, stage=f"model_{phase}")
            time.sleep(self.state.step_delay)
            if self._stopping.is_set():
                raise _Stop
        self._update(job["id"], lambda d: {**d, "_phase": None}, expect={"running"})

    def _finish(self, job: Document, plan: _Plan, *, with_model: bool = True) -> None:
        if job.get("_api") == "together":
            self._package(job)
        name: str | None = self._model_name(job) if with_model else None
        if name is not None:
            self._register_model(name, job, plan.learner, checkpoint=False)
        results = self._results_file(job, plan)
        if name is not None:
            add_event(
                self.state, job["id"], f"New fine-tuned model created: {name}", stage="model_upload_complete"
            )
        # Recorded before the status changes, so a client that sees the job finished sees its events.
        add_event(self.state, job["id"], "The job has successfully completed", stage="job_complete")
        self._update(
            job["id"],
            lambda d: {
                **d,
                "status": "succeeded",
                "fine_tuned_model": name,
                "finished_at": int(time.time()),
                "trained_tokens": plan.trained_tokens,
                "result_files": [results],
                "estimated_finish": None,
            },
            expect={"running"},
        )
