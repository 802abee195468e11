"""`alignlab serve`: an OpenAI-compatible HTTP API over one model (usually a local one).

    alignlab serve --model embedded:smollm2-135m --port 8000
    curl localhost:8000/v1/chat/completions -d '{"messages": [{"role": "user", "content": "hi"}]}'

Endpoints: GET /v1/models, POST /v1/chat/completions, POST /v1/completions (with `echo` and
`logprobs`, so a prompt's own tokens can be scored: the `openai` backend's `loglikelihood` uses
it), POST /tokenize (vLLM's, for exact token counts). Supported fields: n, temperature, top_p,
max_tokens, stop, seed, logprobs/top_logprobs, echo, continue_final_message. Streaming is not.

Binds to loopback by default. With an API key every request needs `Authorization: Bearer <key>`.
A malformed request is a 400 with an OpenAI-style JSON error naming the field, never a 500.
Concurrent requests are batched by `ModelWorker` (serve_worker.py).
"""

from __future__ import annotations

import hmac
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Request as HTTPRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from alignlab.llm.serve_schema import (
    ChatBody, CompletionBody, TokenizeBody, chat_response, completion_response, error_body,
)
from alignlab.llm.serve_worker import ModelWorker, score_prompt_tokens
from alignlab.llm.types import Backend, Request, Response

B = TypeVar("B", bound=BaseModel)


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.param = status, message, kind, param


def _check(response: Response, param: str) -> None:
    """A request the model could not answer: too long is the client's fault (400), else ours."""
    if response.error:
        if "context length" in response.error:
            raise ApiError(400, response.error, param=param)
        raise ApiError(500, response.error, "server_error")


def _invalid(errors: Sequence[Any]) -> ApiError:
    """One 400 naming every offending field (pydantic's errors, as FastAPI or we collect them)."""
    problems = []
    for err in errors:
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "")
            return ApiError(400, f"the body is not valid JSON ({reason})", param="body")
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return ApiError(400, "invalid request: " + "; ".join(problems),
                    param=problems[0].split(":")[0] if problems else None)


def _parse(schema: type[B], raw: bytes) -> B:
    """The body as JSON whatever its content type (`curl -d` sends form-encoded), validated."""
    try:
        return schema.model_validate_json(raw or b"{}")
    except ValidationError as e:
        raise _invalid(e.errors()) from None


def _no_stream(stream: bool) -> None:
    if stream:
        raise ApiError(400, "streaming is not supported by this server; send stream=false", param="stream")


def create_app(backend: Backend, model_name: str, api_key: str | None = None) -> FastAPI:
    app = FastAPI(title="alignlab serve", docs_url=None, redoc_url=None)
    worker = ModelWorker(backend)
    app.state.worker = worker
    can_echo = hasattr(backend, "model") and hasattr(backend, "tokenizer")

    @app.middleware("http")
    async def require_key(request: HTTPRequest, call_next: Any) -> Any:
        if api_key is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return JSONResponse(error_body(
                    "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                    "authentication_error", code="invalid_api_key"), status_code=401)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: HTTPRequest, e: RequestValidationError) -> JSONResponse:
        error = _invalid(e.errors())
        return JSONResponse(error_body(error.message, param=error.param), status_code=400)

    @app.exception_handler(ApiError)
    async def api_error(_: HTTPRequest, e: ApiError) -> JSONResponse:
        return JSONResponse(error_body(e.message, e.kind, e.param), status_code=e.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: HTTPRequest, e: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(e.detail), kind), status_code=e.status_code)

    @app.exception_handler(Exception)
    async def internal_error(_: HTTPRequest, e: Exception) -> JSONResponse:
        # Starlette re-raises after this answer is sent, so the traceback lands in the server log.
        return JSONResponse(error_body(f"internal error ({type(e).__name__}); see the server log",
                                       "server_error"), status_code=500)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [
            {"id": model_name, "object": "model", "created": int(time.time()), "owned_by": "alignlab"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: HTTPRequest) -> dict[str, Any]:
        body = _parse(ChatBody, await request.body())
        _no_stream(body.stream)
        messages = tuple(m.as_message() for m in body.messages)
        [response] = await worker.generate([Request(messages=messages, params=body.generation_params())])
        _check(response, "messages")
        return chat_response(model_name, response, body.top_logprobs if body.logprobs else None)

    @app.post("/v1/completions")
    async def completions(request: HTTPRequest) -> dict[str, Any]:
        body = _parse(CompletionBody, await request.body())
        _no_stream(body.stream)
        prompts, params = body.prompts, body.generation_params()
        if not prompts:
            raise ApiError(400, "prompt: give at least one prompt", param="prompt")
        echoed = None
        if body.echo and body.logprobs is None:
            echoed = [[] for _ in prompts]  # the prompt goes back as text only: nothing to score
        elif body.echo:
            if not can_echo:
                raise ApiError(400, "echo needs a local model; this server proxies a remote one", param="echo")
            try:
                echoed = [await worker.call(score_prompt_tokens, backend, p, body.logprobs) for p in prompts]
            except ValueError as e:
                raise ApiError(400, str(e), param="prompt") from e
        responses = await worker.generate([Request(prompt=p, params=params) for p in prompts])
        for response in responses:
            _check(response, "prompt")
        return completion_response(model_name, prompts, responses, echoed, body.logprobs)

    @app.post("/tokenize")
    async def tokenize(request: HTTPRequest) -> dict[str, Any]:
        body = _parse(TokenizeBody, await request.body())
        count = await worker.call(backend.count_tokens, body.prompt)
        return {"count": count, "max_model_len": getattr(backend, "context_limit", None)}

    return app


@contextmanager
def running_server(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` with uvicorn on a background thread; yields the base URL (no /v1).
    Port 0 picks a free port."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError(f"the server on {host}:{sock.getsockname()[1]} did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def serve(spec: str, host: str = "127.0.0.1", port: int = 8000, api_key_env: str | None = None) -> None:
    """Load the model and serve it until interrupted (the `alignlab serve` command)."""
    import os

    import uvicorn
    from rich.console import Console

    from alignlab.llm import open_backend

    console = Console(stderr=True)
    api_key = (os.environ.get(api_key_env) or None) if api_key_env else None
    if api_key_env and api_key is None:
        console.print(f"[yellow]warning:[/] ${api_key_env} is not set: serving without an API key")
    if host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        console.print(f"[yellow]warning:[/] listening on {host} without an API key: anyone who can "
                      f"reach this port can use the model")
    console.print(f"loading {spec} ...")
    backend = open_backend(spec)
    console.print(f"serving [bold]{spec}[/] at http://{host}:{port}/v1 "
                  f"({'API key required' if api_key else 'no API key'}); Ctrl-C stops")
    uvicorn.run(create_app(backend, spec, api_key), host=host, port=port, log_level="info")
