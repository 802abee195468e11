"""How much keeping requests in flight buys the openai backend against a slow server.

A local server answers every /v1/completions request after a fixed delay (as a remote model's
latency would); the same N requests are sent with max_in_flight = 1, 8 and 32, and the wall
times are printed side by side with the speed-up over one at a time.

    .venv/bin/python benchmarks/openai_inflight.py [--requests 64] [--delay 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from fastapi import FastAPI

from alignlab.llm.config import BackendSettings
from alignlab.llm.openai_backend import OpenAIBackend
from alignlab.llm.serve import running_server
from alignlab.llm.types import GenerationParams, Request


def slow_app(delay: float) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": []}

    @app.post("/v1/completions")
    async def complete(body: dict) -> dict:
        await asyncio.sleep(delay)
        return {"id": "cmpl", "object": "text_completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "text": "ok", "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--delay", type=float, default=0.2, help="server seconds per request")
    args = parser.parse_args()
    requests = [Request(prompt=f"q{i}", params=GenerationParams(max_tokens=1)) for i in range(args.requests)]
    print(f"{args.requests} requests, server delay {args.delay:g} s each")
    with running_server(slow_app(args.delay)) as url:
        times = {}
        for in_flight in (1, 8, 32):
            backend = OpenAIBackend(f"openai:{url}/v1#slow", BackendSettings(max_in_flight=in_flight))
            started = time.perf_counter()
            responses = backend.generate(requests)
            times[in_flight] = time.perf_counter() - started
            assert all(r.ok for r in responses), [r.error for r in responses if not r.ok][:3]
            print(f"max_in_flight={in_flight:>2}: {times[in_flight]:6.2f} s  "
                  f"speed-up x{times[1] / times[in_flight]:5.1f}  "
                  f"(ideal x{min(in_flight, args.requests):.0f})")


if __name__ == "__main__":
    main()
