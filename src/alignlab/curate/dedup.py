"""Exact and near-duplicate removal; the first occurrence is kept.

Exact: two texts are duplicates when their normalised forms (lowercase, punctuation and
spacing collapsed) are equal. Near: MinHash over word n-gram shingles, indexed in datasketch's
`MinHashLSH`; a candidate the index returns is a near duplicate when the signatures' estimated
Jaccard similarity reaches the threshold. The signatures are datasketch's `affine32` scheme
(MurmurHash3 pre-mix, then `a·h + b` mod 2³² per permutation, with datasketch's own
permutation parameters) computed for the whole corpus in a few numpy passes rather than one
`MinHash.update` per shingle: 100k samples take seconds to sign; the LSH lookups dominate.

Both the instruction alone and the whole conversation are compared (`fields`). Document chunks
(`unmask: true`) are compared on their whole text only: their instruction is a fixed wrapper
that says nothing about the chunk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from alignlab.curate.config import DedupStep
from alignlab.curate.steps import KEEP, StepContext, Verdict, reject
from alignlab.curate.text import WordHasher, field_text, fmix32, ngram_hashes, words
from alignlab.records import Sample

MINHASH_SEED = 1  # datasketch's default: the permutations are the same in every run
_CHUNK_SHINGLES = 1 << 15  # shingles permuted at once: 32k x 128 perms x 4 bytes = 16 MB
_CHUNK_TEXTS = 4096  # texts tokenised at once


@dataclass(frozen=True)
class Duplicate:
    of: int  # index of the earlier text it duplicates
    kind: str  # "duplicate" | "near_duplicate"
    jaccard: float


def minhash_signatures(hashes: np.ndarray, offsets: np.ndarray, num_perm: int,
                       seed: int = MINHASH_SEED) -> np.ndarray:
    """(documents, num_perm) uint32 MinHash signatures; document i owns hashes[offsets[i]:offsets[i+1]].

    Equal to `datasketch.MinHash(num_perm, seed, scheme="affine32")` updated with the low 32
    bits of each shingle hash (a test checks this)."""
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    a, b = a.astype(np.uint32), b.astype(np.uint32)
    with np.errstate(over="ignore"):
        hv = fmix32((hashes & np.uint64(0xFFFFFFFF)).astype(np.uint32))
    n_docs = len(offsets) - 1
    sig = np.full((n_docs, num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    counts = np.diff(offsets)
    d0 = 0
    while d0 < n_docs:
        d1 = max(int(np.searchsorted(offsets, offsets[d0] + _CHUNK_SHINGLES, side="right")) - 1, d0 + 1)
        d1 = min(d1, n_docs)
        start, end = offsets[d0], offsets[d1]
        if end > start:
            with np.errstate(over="ignore"):
                permuted = hv[start:end, None] * a[None, :] + b[None, :]
            nonempty = np.flatnonzero(counts[d0:d1]) + d0
            sig[nonempty] = np.minimum.reduceat(permuted, offsets[nonempty] - start, axis=0)
        d0 = d1
    return sig


def sign_texts(texts: Sequence[str], num_perm: int, ngram: int) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """Per text: a digest of its normalised form (the exact-duplicate key), its MinHash
    signature, and whether it has any word. Texts are tokenised a chunk at a time, so only the
    digests and signatures stay in memory, never every word of the corpus."""
    hasher = WordHasher()
    keys: list[bytes] = []
    sigs = np.empty((len(texts), num_perm), dtype=np.uint32)
    nonempty = np.zeros(len(texts), dtype=bool)
    for start in range(0, len(texts), _CHUNK_TEXTS):
        tokens = [words(t) for t in texts[start:start + _CHUNK_TEXTS]]
        keys += [hashlib.blake2b(" ".join(t).encode(), digest_size=16).digest() for t in tokens]
        flat, lengths = hasher.corpus(tokens)
        sigs[start:start + len(tokens)] = minhash_signatures(*ngram_hashes(flat, lengths, ngram), num_perm)
        nonempty[start:start + len(tokens)] = lengths > 0
    return keys, sigs, nonempty


def find_duplicates(texts: Sequence[str], *, jaccard: float, num_perm: int = 128, ngram: int = 5,
                    advance: Callable[..., None] | None = None) -> list[Duplicate | None]:
    """For each text, the earlier text it duplicates (exactly or nearly), or None."""
    keys, sigs, nonempty = sign_texts(texts, num_perm, ngram)
    out: list[Duplicate | None] = [None] * len(texts)
    first_seen: dict[bytes, int] = {}
    for i, key in enumerate(keys):
        j = first_seen.setdefault(key, i)
        if j != i:
            out[i] = Duplicate(j, "duplicate", 1.0)
    # Exact duplicates and empty texts are settled; the rest are looked up in the index.
    unique = [i for i in range(len(texts)) if out[i] is None and nonempty[i]]
    if advance:
        advance(len(texts) - len(unique))
    lsh = MinHashLSH(threshold=jaccard, num_perm=num_perm)
    for k, i in enumerate(unique):
        sketch = LeanMinHash(seed=MINHASH_SEED, hashvalues=sigs[i], scheme="affine32")
        best, best_j = -1, -1.0
        for cand in lsh.query(sketch):
            est = float(np.count_nonzero(sigs[cand] == sigs[i])) / num_perm
            if est > best_j or (est == best_j and cand < best):
                best, best_j = cand, est
        if best >= 0 and best_j >= jaccard:
            out[i] = Duplicate(best, "near_duplicate", round(best_j, 4))
        else:
            lsh.insert(i, sketch, check_duplication=False)
        if advance and (k + 1) % 1000 == 0:
            advance(1000)
    if advance:
        advance(len(unique) % 1000)
    return out


def dedup(samples: list[Sample], settings: DedupStep, ctx: StepContext) -> list[Verdict]:
    verdicts: list[Verdict] = [KEEP] * len(samples)
    for field in settings.fields:
        live = [i for i, s in enumerate(samples)
                if verdicts[i].keep and not (field == "instruction" and s.unmask)]
        advance = ctx.track(f"dedup ({field})", total=len(live))
        found = find_duplicates([field_text(samples[i], field) for i in live], jaccard=settings.jaccard,
                                num_perm=settings.num_perm, ngram=settings.ngram, advance=advance)
        for k, dup in enumerate(found):
            if dup is not None:
                verdicts[live[k]] = reject(dup.kind, of=samples[live[dup.of]].id, field=field,
                                           jaccard=dup.jaccard)
    return verdicts
