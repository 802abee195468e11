"""Settings of how models are reached: batching for local models, concurrency for servers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """Base of every config section: an unknown key is an error, never a silent default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# fp32, or matmuls in bfloat16 under autocast: for the local backend and for training.
Precision = Literal["fp32", "bf16"]
# Where local models run; `auto` is the accelerator when torch sees one (llm.hf.resolve_device).
Device = Literal["auto", "cpu", "cuda", "mps"]


class ServerFindings(Section):
    """What an OpenAI-compatible server can do. Left unset, each is probed once and cached
    (see llm/probe.py); set, it is believed without asking."""

    continues_final_message: bool | None = Field(
        None, description="continues a trailing assistant message (vLLM's continue_final_message)")
    chat_logprobs: bool | None = Field(None, description="returns log-probabilities on /chat/completions")
    top_logprobs: int | None = Field(None, ge=0, description="most top log-probabilities per token on chat")
    completions: bool | None = Field(None, description="serves /completions (plain text prompts)")
    echo: bool | None = Field(None, description="/completions echoes the prompt with its log-probabilities")
    completion_top_logprobs: int | None = Field(None, ge=0, description="most top log-probabilities on /completions")
    json_schema: bool | None = Field(None, description="accepts response_format with a JSON schema")
    context_length: int | None = Field(None, ge=1, description="the model's context length in tokens")


class BackendSettings(Section):
    max_batch_size: int = Field(16, ge=1, description="local: rows per forward pass")
    max_batch_tokens: int = Field(16384, ge=64, description="local: padded tokens per batch")
    precision: Precision = Field(
        "fp32", description="local: bf16 runs matmuls in bfloat16 (autocast; weights stay fp32): 2-3x faster "
                            "on CPUs with AVX512-BF16 or AMX, results shift slightly with batch shape")
    device: Device = Field("auto", description="local models (generation, judging, eval, lm-eval): auto = "
                                               "cuda or mps when torch sees one, else cpu; on cuda, bf16 "
                                               "loads the weights in bfloat16")
    max_in_flight: int = Field(32, ge=1, description="openai: most requests in flight at once; fewer after "
                                                     "429, 5xx and timeouts, growing back on success")
    timeout: float = Field(120.0, gt=0, description="openai: seconds per request")
    max_retries: int = Field(5, ge=0, description="openai: retries on connection errors, 429, 5xx")
    backoff: float = Field(1.0, gt=0, description="openai: first retry delay in seconds, doubling")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key")
    cache: str | None = Field(None, description="request cache file; default <run>/requests.sqlite")
    requests_per_minute: float | None = Field(None, gt=0, description="openai: cap on requests sent per minute")
    tokens_per_minute: float | None = Field(None, gt=0, description="openai: cap on prompt + completion tokens per minute")
    price_per_million_tokens: float | None = Field(
        None, ge=0, description="teacher and judge price per million tokens (prompt + completion): the cost "
                                "in `generate --dry-run` and the generate summary; unset, no cost is shown")
    server: ServerFindings = ServerFindings()
