"""Dynamic batching: the conversations of concurrent requests scored in one call.

Each request queues its conversations and waits. One task takes the first waiting request and
every other one already waiting, then, while it holds fewer than ``score.batch_size``
conversations, waits up to ``serve.max_batch_wait`` for more; it scores them all in one call
of the recipe's scorers (:class:`rmkit.scoring.scorer_set.ScorerSet`) on one worker thread: the
reward models in length-sorted forwards of ``score.batch_size``, the verifiers in their
processes meanwhile, exactly as ``rmkit score`` does. While a call runs the next one gathers,
so under load calls fill without waiting. A call takes at most ``serve.max_batch_conversations``
(it stops taking requests there): the more conversations sorted together, the less padding
in each forward (docs/benchmarks.md). ``serve.batching: false`` scores each request on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rmkit.conversation import Conversation

Score = Callable[[list[Conversation], list[dict]], list[dict]]  # a ScorerSet
Observe = Callable[[int, int, float], None]  # (requests, conversations, seconds) of each scoring call


@dataclass
class Waiting:
    conversations: list[Conversation]
    records: list[dict]
    future: asyncio.Future


class Batcher:
    """Call :meth:`start` in the server's event loop, then ``await score(...)`` from any request."""

    def __init__(
        self,
        score: Score,
        batch_size: int,
        max_wait: float,
        batching: bool = True,
        observe: Observe | None = None,
        most: int = 256,
    ):
        self.score_all, self.batch_size, self.max_wait, self.batching, self.most = score, batch_size, max_wait, batching, most
        self.observe = observe or (lambda requests, conversations, seconds: None)
        self.queue: asyncio.Queue[Waiting] | None = None
        self.task: asyncio.Task | None = None
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="rmkit-score")  # the models run in one thread, one batch at a time

    def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.worker.shutdown(wait=True)

    async def score(self, conversations: list[Conversation], records: list[dict]) -> list[dict]:
        """The scorers' results for these conversations, scored in a batch with other requests'."""
        waiting = Waiting(conversations, records, asyncio.get_running_loop().create_future())
        self.queue.put_nowait(waiting)
        return await waiting.future

    async def _gather(self) -> list[Waiting]:
        """The first waiting request and, with batching, those waiting with it or joining in time."""
        group = [await self.queue.get()]
        size = len(group[0].conversations)
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while self.batching and size < self.most:
            try:
                waiting = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - asyncio.get_running_loop().time()
                if size >= self.batch_size or left <= 0:
                    break
                try:
                    waiting = await asyncio.wait_for(self.queue.get(), left)
                except asyncio.TimeoutError:
                    break
            group.append(waiting)
            size += len(waiting.conversations)
        return group

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [waiting for waiting in await self._gather() if not waiting.future.done()]  # done: the client went away
            if not group:
                continue
            conversations = [c for waiting in group for c in waiting.conversations]
            records = [r for waiting in group for r in waiting.records]
            began = time.perf_counter()
            try:
                results = await loop.run_in_executor(self.worker, self.score_all, conversations, records)
            except Exception as err:  # a bug or out of memory: these requests fail, the server goes on
                for waiting in group:
                    if not waiting.future.done():
                        waiting.future.set_exception(err)
                continue
            self.observe(len(group), len(conversations), time.perf_counter() - began)
            start = 0
            for waiting in group:
                end = start + len(waiting.conversations)
                if not waiting.future.done():
                    waiting.future.set_result(results[start:end])
                start = end
