"""The model side of `alignlab serve`: one model, one caller at a time, requests merged into batches.

A local model is not thread-safe, and it is much faster on a batch than on the same requests
one by one. So every model call runs on a worker thread under one lock, and generation requests
that arrive while the model is busy (or within a few milliseconds of each other) are queued and
answered together by a single `backend.generate` call.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from alignlab.llm.serve_schema import PromptToken
from alignlab.llm.types import Backend, Request, Response

T = TypeVar("T")


class ModelWorker:
    def __init__(self, backend: Backend, *, window: float = 0.005, max_requests: int = 256):
        self.backend = backend
        self.window = window  # how long a new batch waits for company before it starts
        self.max_requests = max_requests
        self.lock = threading.Lock()
        self.batches = 0
        self.largest_batch = 0  # most HTTP requests answered by one backend call
        self.waiting = 0  # HTTP requests submitted and not answered yet
        self._queue: asyncio.Queue[tuple[list[Request], asyncio.Future[list[Response]]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self.lock:
            return fn(*args)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on a worker thread, alone with the model."""
        return await asyncio.to_thread(self._locked, fn, *args)

    async def generate(self, requests: list[Request]) -> list[Response]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            # Started lazily on the serving loop (uvicorn's, or a test client's).
            self._loop, self._queue = loop, asyncio.Queue()
            self._task = loop.create_task(self._run())
        assert self._queue is not None
        done: asyncio.Future[list[Response]] = loop.create_future()
        self._queue.put_nowait((requests, done))
        self.waiting += 1
        try:
            return await done
        finally:
            self.waiting -= 1

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            items = [await queue.get()]
            await asyncio.sleep(self.window)
            size = len(items[0][0])
            while not queue.empty() and size < self.max_requests:
                items.append(queue.get_nowait())
                size += len(items[-1][0])
            flat = [r for requests, _ in items for r in requests]
            self.batches += 1
            self.largest_batch = max(self.largest_batch, len(items))
            try:
                responses = await self.call(self.backend.generate, flat)
            except Exception as e:  # the callers report it; the worker keeps serving
                for _, done in items:
                    if not done.done():
                        done.set_exception(e)
                continue
            at = 0
            for requests, done in items:
                if not done.done():  # the client may have gone away
                    done.set_result(responses[at:at + len(requests)])
                at += len(requests)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


def score_prompt_tokens(backend: Any, prompt: str, top_k: int) -> list[PromptToken]:
    """Each prompt token's log-prob given the tokens before it, in one forward pass (for
    `echo`: scoring a text through /completions). The prompt is tokenised as the local backend
    tokenises a scoring context, so the sums match its `loglikelihood`."""
    import torch

    tokenizer, model = backend.tokenizer, backend.model
    encoded = tokenizer(prompt, return_offsets_mapping=True)
    ids = list(encoded.input_ids)
    if not ids:
        return []
    limit = getattr(backend, "context_limit", None)
    if limit is not None and len(ids) > limit:
        raise ValueError(f"context length exceeded: {len(ids)} prompt tokens > {limit}")
    # Each token starts where the previous one ended, so a leading space that a tokenizer's
    # offsets leave out ("trimmed" offsets) still belongs to the token that carries it.
    starts = [0] + [end for _, end in encoded.offset_mapping[:-1]]
    with torch.inference_mode():
        logprobs = model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
    tokens = [PromptToken(tokenizer.decode([ids[0]]), starts[0], None)]
    for t in range(1, len(ids)):
        row = logprobs[t - 1]
        top = torch.topk(row, max(top_k, 1))
        tokens.append(PromptToken(
            tokenizer.decode([ids[t]]), starts[t], float(row[ids[t]]),
            [(tokenizer.decode([int(i)]), float(v)) for v, i in zip(top.values, top.indices)]))
    return tokens
