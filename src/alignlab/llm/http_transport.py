"""HTTP for the openai backend: one aiohttp session per batch, its pool sized to `max_in_flight`.

aiohttp's connection pool hands out an idle connection in constant time whatever the number of
requests in flight (httpx's pool rescans every queued request and connection on each change, so
its cost grew with concurrency and made the client the bottleneck of a fast server). Bodies go
out as bytes serialised once by the caller; answers come back whole as `HttpAnswer`, so the
backend decides what a status means (retry, give up) without knowing about aiohttp.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

JSON_HEADERS = {"Content-Type": "application/json"}


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
