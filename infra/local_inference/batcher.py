"""Batching across concurrent requests: requests that arrive while a batch is being answered, or
within ``window`` seconds of the first, are answered together by one ``generate`` call per
sampling setting (up to ``max_batch`` rows), the way a serving engine batches."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass, field

from local_inference.engine import Engine, Generation, GenerationRequest

__all__ = ["Batcher", "BatchStats"]


@dataclass
class BatchStats:
    """How requests were grouped (``GET /admin/stats``)."""

    requests: int = 0
    batches: int = 0
    largest: int = 0
    sizes: list[int] = field(default_factory=list)


class Batcher:
    def __init__(self, engine: Engine, *, window: float = 0.02, max_batch: int = 32) -> None:
        self.engine = engine
        self.window = window
        self.max_batch = max_batch
        self.stats = BatchStats()
        self._queue: asyncio.Queue[tuple[GenerationRequest, asyncio.Future[Generation]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, request: GenerationRequest) -> Generation:
        future: asyncio.Future[Generation] = asyncio.get_running_loop().create_future()
        await self._queue.put((request, future))
        return await future

    async def _collect(self) -> list[tuple[GenerationRequest, asyncio.Future[Generation]]]:
        pending = [await self._queue.get()]
        deadline = asyncio.get_running_loop().time() + self.window
        while len(pending) < self.max_batch:
            left = deadline - asyncio.get_running_loop().time()
            try:
                pending.append(
                    self._queue.get_nowait() if left <= 0 else await asyncio.wait_for(self._queue.get(), left)
                )
            except (TimeoutError, asyncio.QueueEmpty):
                break
        return pending

    async def _run(self) -> None:
        while True:
            pending = await self._collect()
            groups: dict[tuple[float, float], list[tuple[GenerationRequest, asyncio.Future[Generation]]]]
            groups = defaultdict(list)
            for item in pending:
                groups[item[0].sampling_key()].append(item)
            for group in groups.values():
                await self._answer(group)

    async def _answer(self, group: list[tuple[GenerationRequest, asyncio.Future[Generation]]]) -> None:
        self.stats.requests += len(group)
        self.stats.batches += 1
        self.stats.largest = max(self.stats.largest, len(group))
        self.stats.sizes.append(len(group))
        try:
            answers = await asyncio.to_thread(self.engine.generate, [request for request, _ in group])
        except Exception as exc:  # every waiting request gets the error, the loop goes on
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), answer in zip(group, answers, strict=True):
            if not future.done():
                future.set_result(answer)
