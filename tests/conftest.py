"""Shared fixtures: tiny random-initialised models with the embedded model's tokenizer.

The tokenizer comes from the embedded model's safetensors copy (converted once per machine
under $ALIGNLAB_HOME); the weights are random, so tests run in seconds and need no download.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def build_tiny_model(out: Path, *, layers: int = 2, hidden: int = 64, seed: int = 0,
                     init_range: float = 0.02) -> Path:
    """A tiny Llama with the embedded tokenizer, saved as a Hugging Face directory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from alignlab.llm.embedded import ensure_converted

    tokenizer = AutoTokenizer.from_pretrained(ensure_converted())
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=2048, tie_word_embeddings=True, initializer_range=init_range,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    # A wider init than usual makes the random model's next-token distribution peaked, so
    # greedy choices are not near-ties that float noise between batch shapes could flip.
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", init_range=0.5)


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_dir):
    from alignlab.llm.config import BackendSettings
    from alignlab.llm.local import LocalBackend

    return LocalBackend.from_spec(str(tiny_model_dir), BackendSettings(max_batch_size=8))
