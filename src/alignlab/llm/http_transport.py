"""HTTP for the openai backend: one aiohttp session per batch, its pool sized to `max_in_flight`.

aiohttp's connection pool hands out an idle connection in constant time whatever the number of
requests in flight (httpx's pool rescans every queued request and connection on each change, so
its cost grew with concurrency and made the client the bottleneck of a fast server). Bodies go
out as bytes serialised once by the caller; answers come back whole as `HttpAnswer`, so the
backend decides what a status means (retry, give up) without knowing about aiohttp.

`LoopThread` runs one event loop on its own thread for a backend's lifetime, so the pool and
its open connections outlive a batch: a pipeline step is one batch, and reconnecting
`max_in_flight` sockets at every step cost the client a good part of its time.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

JSON_HEADERS = {"Content-Type": "application/json"}
T = TypeVar("T")


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes
    headers: Mapping[str, str]
    reason_phrase: str = ""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not (json.JSONDecodeError is one)."""
        return json.loads(self.body)


class TransportError(Exception):
    """The request got no HTTP answer; `str(e)` says why (a retry may fix it)."""


class TransportTimeout(TransportError):
    pass


class ConnectFailed(TransportError):
    """Nothing accepted the connection: the server is down or the URL is wrong."""


class ConnectTimedOut(ConnectFailed, TransportTimeout):
    """No connection within the connect timeout: a timeout to a request, unreachable to a probe."""


def reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class HttpTransport:
    """Use as `async with HttpTransport(...) as http:` inside the event loop that sends."""

    def __init__(self, headers: Mapping[str, str], max_connections: int, timeout: float,
                 connect_timeout: float):
        self.headers = {**JSON_HEADERS, **headers}
        self.max_connections = max_connections
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpTransport:
        connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=self.max_connections,
                                         ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, headers=self.headers,
                                              timeout=self.timeout, raise_for_status=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, body: bytes, timeout: float | None = None) -> HttpAnswer:
        return await self._send("POST", url, body, timeout)

    async def get(self, url: str, timeout: float | None = None) -> HttpAnswer:
        return await self._send("GET", url, None, timeout)

    async def _send(self, method: str, url: str, body: bytes | None, timeout: float | None) -> HttpAnswer:
        assert self._session is not None, "HttpTransport used outside `async with`"
        limit = self.timeout if timeout is None else aiohttp.ClientTimeout(
            total=timeout, connect=min(timeout, self.timeout.connect or timeout))
        try:
            async with self._session.request(method, url, data=body, timeout=limit) as answer:
                return HttpAnswer(answer.status, await answer.read(), answer.headers, answer.reason or "")
        except aiohttp.ConnectionTimeoutError as e:
            raise ConnectTimedOut(reason(e)) from e
        except (TimeoutError, asyncio.TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise TransportTimeout(reason(e)) from e
        except aiohttp.ClientConnectorError as e:
            raise ConnectFailed(reason(e)) from e
        except aiohttp.ClientError as e:
            raise TransportError(reason(e)) from e


class LoopThread:
    """An event loop on a daemon thread; `run(coro)` from any thread (also from inside another
    running loop: a notebook, an async caller) blocks until the coroutine is done."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.transports: list[HttpTransport] = []  # closed by stop(), on this loop
        self._thread = threading.Thread(target=self.loop.run_forever, name="alignlab-http", daemon=True)
        self._thread.start()

    async def open(self, transport: HttpTransport) -> HttpTransport:
        """Open a transport on this loop, to stay open until stop()."""
        await transport.__aenter__()
        self.transports.append(transport)
        return transport

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError("LoopThread.run called from its own loop (an on_done callback?)")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        """Close the transports and end the thread (idempotent; also run at exit)."""
        if self.loop.is_closed():
            return

        async def close_all() -> None:
            for transport in self.transports:
                await transport.__aexit__(None, None, None)
            self.transports.clear()
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()
