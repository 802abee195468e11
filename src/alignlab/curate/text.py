"""Text as numbers, for every step that compares texts: normalised words, stable word hashes,
and hashes of every word n-gram of a whole corpus computed at once with numpy.

Normalising (lowercase, any run of punctuation or whitespace becomes one space) makes
"Write a haiku!" and "write a  haiku" the same text. Word hashes come from blake2b, so they are
the same on every run and machine; n-gram hashes are a polynomial over the word hashes
(wrapping uint64 arithmetic), computed for all documents in one vectorised pass instead of one
Python call per shingle, which is what lets 100k samples be shingled in seconds.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from alignlab.records import Sample

_WORD = re.compile(r"\w+")
_PRIME = 0x100000001B3  # FNV-64 prime: odd, so multiplying by its powers loses no bits
_MASK64 = (1 << 64) - 1


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def normalize(text: str) -> str:
    """Lowercase words separated by single spaces; punctuation and spacing do not count."""
    return " ".join(words(text))


def conversation_text(sample: Sample) -> str:
    """Every message's content: what a document chunk (unmask) is compared on, too."""
    return "\n".join(m["content"] for m in sample.messages)


def field_text(sample: Sample, field: str) -> str:
    return sample.instruction if field == "instruction" else conversation_text(sample)


class WordHasher:
    """Stable 64-bit hashes of words, memoised (a corpus has far fewer distinct words than words)."""

    def __init__(self) -> None:
        self._memo: dict[str, int] = {}

    def ids(self, tokens: Sequence[str]) -> np.ndarray:
        memo = self._memo
        for word in set(tokens).difference(memo):
            memo[word] = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        # map() over a bound method iterates in C: this is the hot loop for 100k samples.
        return np.fromiter(map(memo.__getitem__, tokens), dtype=np.uint64, count=len(tokens))

    def corpus(self, docs: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Word hashes of every document, flat, with each document's length."""
        flat: list[str] = []
        for doc in docs:
            flat.extend(doc)
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
        return self.ids(flat), lengths


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's finaliser: spreads every input bit over the output (wrapping arithmetic)."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser (the pre-mix datasketch's affine32 MinHash applies)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def ngram_hashes(flat: np.ndarray, lengths: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every n-word window of every document, as one flat array plus offsets.

    `flat` holds the documents' word hashes end to end, `lengths` each document's word count.
    Document i's n-gram hashes are `hashes[offsets[i]:offsets[i+1]]`. A document shorter than
    n words gets one hash of all its words; an empty document gets none.
    """
    flat = flat.astype(np.uint64, copy=False)
    starts = np.cumsum(lengths) - lengths
    # h(window at i) = sum_k flat[i+k] * P^k, evaluated for every i at once.
    acc = np.zeros(max(len(flat) - n + 1, 0), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            if len(acc):
                acc += flat[k:k + len(acc)] * np.uint64(pow(_PRIME, k, 1 << 64))
    windows = np.where(lengths >= n, lengths - n + 1, (lengths > 0).astype(np.int64))
    offsets = np.concatenate([[0], np.cumsum(windows)]).astype(np.int64)
    out = np.empty(int(offsets[-1]), dtype=np.uint64)
    full = lengths >= n
    if full.any():
        counts = windows[full]
        doc_of_window = np.repeat(np.flatnonzero(full), counts)
        rank = np.arange(len(doc_of_window)) - np.repeat(np.cumsum(counts) - counts, counts)
        out[offsets[doc_of_window] + rank] = acc[starts[doc_of_window] + rank]
    for i in np.flatnonzero((lengths > 0) & ~full):  # short documents: one hash each, in Python
        h = 0
        for k, w in enumerate(flat[starts[i]:starts[i] + lengths[i]]):
            h = (h + int(w) * pow(_PRIME, k, 1 << 64)) & _MASK64
        out[offsets[i]] = h
    with np.errstate(over="ignore"):
        return fmix64(out), offsets


def corpus_ngrams(texts: Sequence[str], n: int, hasher: WordHasher | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """`ngram_hashes` of raw texts."""
    return ngram_hashes(*(hasher or WordHasher()).corpus([words(t) for t in texts]), n)
