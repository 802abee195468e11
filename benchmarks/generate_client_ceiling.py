"""The generating client's ceiling: `alignlab generate` against a server that answers instantly,
beside a plain aiohttp loop posting the same kind of request to the same server.

    PYTHONPATH=src .venv/bin/python benchmarks/generate_client_ceiling.py [--copies 40 400] [--in-flight 256]

The server (a raw asyncio HTTP/1.1 server answering with `scripted_reply`, so every step of
every generator gets a well-formed reply) runs in its own process, so only the client's work is
measured on the client's core. For each N, a fresh process builds a taxonomy of N copies of
every `examples/` leaf and runs the stage function the CLI calls (`sdg.stage.generate`, with
the real openai backend, request cache and progress bar); its requests/s and peak RSS are
printed beside the raw loop's requests/s, measured in the same run: over the whole stage, and
over its generation part alone (the stage's own `wall_seconds`, which starts once the taxonomy
is loaded and validated). With Ray installed,
`--ray` also runs the N=40 taxonomy with `--engine ray`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "taxonomy"


# ---------------------------------------------------------------- the instant server (own process)

def _answer(path: str, body: bytes) -> bytes:
    from alignlab.llm.scripted import scripted_reply

    if path.endswith("/models"):
        return json.dumps({"object": "list", "data": [{"id": "instant", "object": "model"}]}).encode()
    data = json.loads(body)
    chat = "messages" in data
    text, top = scripted_reply(data.get("messages"), data.get("prompt"), data.get("seed") or 0,
                               bool(data.get("logprobs")))
    logprobs = None
    if top and chat:
        logprobs = {"content": [{"token": text, "logprob": top[0][1],
                                 "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top]}]}
    elif top:
        logprobs = {"tokens": [text], "token_logprobs": [top[0][1]], "top_logprobs": [dict(top)]}
    choice = {"index": 0, "finish_reason": "stop", "logprobs": logprobs}
    choice |= {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
    return json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "instant",
                       "choices": [choice],
                       "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split())}}).encode()


class _Http(asyncio.Protocol):
    """Just enough HTTP/1.1 keep-alive for a client benchmark: Content-Length bodies only."""

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport, self.buffer = transport, b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            length = next((int(line.split(":", 1)[1]) for line in head[1:]
                           if line.lower().startswith("content-length:")), 0)
            if len(self.buffer) < end + 4 + length:
                return
            body, self.buffer = self.buffer[end + 4:end + 4 + length], self.buffer[end + 4 + length:]
            method, path, _ = head[0].split(" ", 2)
            if path.endswith("/tokenize"):
                status, payload = b"404 Not Found", b"{}"
            else:
                status, payload = b"200 OK", _answer(path, body)
            self.transport.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)


def serve(port: int) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Http, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()
    asyncio.run(main())


# ---------------------------------------------------------------- the two clients (own processes)

def build_taxonomy(root: Path, copies: int) -> None:
    leaves = [p.parent for p in EXAMPLES.rglob("qna.yaml")]
    for k in range(copies):
        for leaf in leaves:
            shutil.copytree(leaf, root / leaf.parent.relative_to(EXAMPLES) / f"{leaf.name}_{k:04d}")


def run_generate(url: str, copies: int, in_flight: int, engine: str) -> dict:
    from rich.console import Console

    from alignlab.config import load_config
    from alignlab.sdg.stage import generate, open_models
    from alignlab.sdg.traffic import distinct_models

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_taxonomy(root / "taxonomy", copies)
        config = {"name": "ceiling", "taxonomy": "taxonomy", "models": {"teacher": f"openai:{url}/v1#instant"},
                  "backend": {"max_in_flight": in_flight},
                  "generate": {"magpie": {"enabled": False}, "engine": engine}}
        (root / "alignlab.yaml").write_text(json.dumps(config))
        cfg = load_config(root / "alignlab.yaml")
        teacher, judge = open_models(cfg)
        console = Console(file=open(os.devnull, "w"), force_terminal=True)  # rendered, as in a terminal
        started = time.perf_counter()
        manifest = generate(cfg, console=console, models=(teacher, judge))
        wall = time.perf_counter() - started
        # Teacher and judge are one model here: each request counted once.
        sent = sum(m.stats.calls for m in distinct_models((teacher, judge)))
        if engine == "ray":  # the workers sent them: count the answers they cached
            from alignlab.llm.cache import RequestCache
            sent = len(RequestCache(cfg.request_cache().path))
    return {"requests": sent, "seconds": wall, "generating_seconds": manifest["counts"]["wall_seconds"],
            "candidates": manifest["counts"]["candidates"],
            "samples": manifest["counts"]["samples"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_raw(url: str, n: int, in_flight: int) -> dict:
    import aiohttp

    body = {"model": "instant", "messages": [{"role": "system", "content": "You write new tasks."},
                                             {"role": "user", "content": "Write one new task like these."}],
            "n": 1, "temperature": 0.8, "top_p": 0.95, "max_tokens": 64, "seed": 0}

    async def main() -> float:
        left = iter(range(n))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as session:
            async def worker() -> None:
                for i in left:
                    async with session.post(f"{url}/v1/chat/completions", json=body | {"seed": i}) as answer:
                        await answer.json()
            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(in_flight)))
            return time.perf_counter() - started
    return {"requests": n, "seconds": asyncio.run(main())}


def child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, nargs="+", default=[40, 400])
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--raw-requests", type=int, default=20000)
    parser.add_argument("--ray", action="store_true", help="also run --engine ray at the first N")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "serve":
            return serve(int(rest[0]))
        result = (run_raw(rest[0], int(rest[1]), int(rest[2])) if kind == "raw"
                  else run_generate(rest[0], int(rest[1]), int(rest[2]), rest[3]))
        print(json.dumps(result))
        return

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--child", "serve", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        print(f"instant server on {url}; max_in_flight {args.in_flight}; {os.cpu_count()} cores")
        raw = child(["--child", "raw", url, str(args.raw_requests), str(args.in_flight)])
        raw_rate = raw["requests"] / raw["seconds"]
        print(f"raw aiohttp loop: {raw['requests']} requests in {raw['seconds']:.1f} s = {raw_rate:,.0f} req/s")
        runs = [(n, "local") for n in args.copies] + ([(args.copies[0], "ray")] if args.ray else [])
        rss = {}
        for n, engine in runs:
            r = child(["--child", "generate", url, str(n), str(args.in_flight), engine])
            rate = r["requests"] / r["seconds"]
            sending = r["requests"] / r["generating_seconds"]
            rss[(n, engine)] = r["peak_rss_mb"]
            print(f"generate N={n:>4} engine={engine:<5}: {r['candidates']} candidates, {r['requests']} requests "
                  f"in {r['seconds']:.1f} s = {rate:,.0f} req/s ({rate / raw_rate:.2f} of raw), "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB; after loading the taxonomy "
                  f"({r['seconds'] - r['generating_seconds']:.1f} s): {sending:,.0f} req/s "
                  f"({sending / raw_rate:.2f} of raw)")
        local = [rss[(n, "local")] for n in args.copies]
        if len(local) > 1:
            print(f"peak RSS N={args.copies[-1]} / N={args.copies[0]}: x{local[-1] / local[0]:.2f}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
