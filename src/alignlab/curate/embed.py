"""Embedders for diversity selection: anything with `embed(texts) -> (n, d) float32 array` whose
rows are L2-normalised, so a dot product is a cosine similarity.

`HashedEmbedder` needs no model: word unigrams and bigrams hashed into `dim` signed buckets
(the hashing trick; the sign bit makes colliding features cancel on average instead of piling
up). It sees wording, not meaning: it separates paraphrases a model would join, and is the
default where no model should be loaded. `ModelEmbedder` mean-pools the last hidden states of
a local causal LM (e.g. the embedded model), batched by length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from alignlab.curate.text import WordHasher, ngram_hashes, words
from alignlab.llm.specs import ModelSpec


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms == 0, 1.0, norms)).astype(np.float32, copy=False)


class HashedEmbedder:
    def __init__(self, dim: int = 512):
        self.dim = dim
        self.name = f"hashed:{dim}"
        self.hasher = WordHasher()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        flat, lengths = self.hasher.corpus([words(t) for t in texts])
        features = []
        for n in (1, 2):
            hashes, offsets = ngram_hashes(flat, lengths, n)
            features.append((hashes, np.repeat(np.arange(len(texts)), np.diff(offsets))))
        hashes = np.concatenate([h for h, _ in features])
        docs = np.concatenate([d for _, d in features])
        buckets = (hashes % np.uint64(self.dim)).astype(np.int64)
        signs = np.where(hashes >> np.uint64(63), -1.0, 1.0)
        matrix = np.bincount(docs * self.dim + buckets, weights=signs,
                             minlength=len(texts) * self.dim).reshape(len(texts), self.dim)
        return l2_normalise(matrix)


class ModelEmbedder:
    """Mean of the last hidden states over the text's tokens, for a local model spec."""

    def __init__(self, spec: ModelSpec | str, batch_size: int = 16, max_tokens: int = 512):
        self.name = f"model:{spec}"
        self.spec, self.batch_size, self.max_tokens = spec, batch_size, max_tokens
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        from alignlab.llm.hf import load_causal_lm, load_tokenizer

        if self._model is None:
            self._model, self._tokenizer = load_causal_lm(self.spec), load_tokenizer(self.spec)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        self._load()
        tok = self._tokenizer
        encoded = [tok(t, add_special_tokens=False, truncation=True, max_length=self.max_tokens).input_ids
                   or [tok.eos_token_id] for t in texts]
        out = np.zeros((len(texts), self._model.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))  # similar lengths pad little
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            width = max(len(encoded[i]) for i in batch)
            ids = torch.tensor([encoded[i] + [tok.pad_token_id] * (width - len(encoded[i])) for i in batch])
            mask = torch.tensor([[1] * len(encoded[i]) + [0] * (width - len(encoded[i])) for i in batch])
            with torch.inference_mode():
                hidden = self._model(input_ids=ids, attention_mask=mask,
                                     output_hidden_states=True).hidden_states[-1].float()
            pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
            out[batch] = pooled.numpy()
        return l2_normalise(out)


def make_embedder(kind: str, *, dim: int = 512, model: ModelSpec | str = "", batch_size: int = 16,
                  max_tokens: int = 512) -> Embedder:
    if kind == "hashed":
        return HashedEmbedder(dim)
    return ModelEmbedder(model, batch_size=batch_size, max_tokens=max_tokens)
