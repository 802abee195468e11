"""Chunking respects the token limit, covers the whole document, and prefers natural breaks."""

from __future__ import annotations

import random

import pytest

from alignlab.taxonomy.chunking import chunk_text


def words(text: str) -> int:
    return len(text.split())


def make_document(seed: int = 0) -> str:
    rng = random.Random(seed)
    vocab = ["alpha", "beta", "gamma", "delta", "harbour", "lantern", "river", "stone", "1871", "north"]
    parts = []
    for section in range(5):
        parts.append(f"## Section {section}")
        for _ in range(rng.randint(1, 4)):
            sentences = [" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 25))).capitalize() + "."
                         for _ in range(rng.randint(1, 6))]
            parts.append(" ".join(sentences))
    parts.append(" ".join(["unbroken"] * 120))  # one paragraph with no sentence end
    return "\n\n".join(parts)


@pytest.mark.parametrize("max_tokens, overlap", [(40, 0), (40, 10), (64, 16), (400, 32)])
def test_chunks_fit_the_limit_and_cover_every_word(max_tokens, overlap):
    doc = make_document()
    chunks = chunk_text(doc, "doc.md", words, max_tokens=max_tokens, overlap_tokens=overlap)
    assert all(c.tokens <= max_tokens for c in chunks)
    covered = [False] * len(doc)
    for c in chunks:
        assert doc[c.start:c.end] == c.text
        for k in range(c.start, c.end):
            covered[k] = True
    assert all(covered[k] for k, ch in enumerate(doc) if not ch.isspace())
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert len({c.id for c in chunks}) == len(chunks)


def test_overlap_repeats_the_previous_chunk_tail():
    doc = "\n\n".join(f"Paragraph {i} has exactly eight words in it." for i in range(12))
    chunks = chunk_text(doc, "d", words, max_tokens=24, overlap_tokens=8)
    assert len(chunks) > 2
    for a, b in zip(chunks, chunks[1:]):
        assert b.start < a.end  # the next chunk begins inside the previous one
        assert a.text.endswith(b.text[: b.text.index(".") + 1])


def test_boundaries_prefer_paragraphs_then_sentences():
    doc = ("# Title\n\nFirst paragraph is short.\n\nSecond one. It has two short sentences."
           "\n\nOne two three four five six. Seven eight nine ten eleven twelve.")
    chunks = chunk_text(doc, "d", words, max_tokens=9, overlap_tokens=0)
    assert [c.text for c in chunks] == [
        "# Title\n\nFirst paragraph is short.",  # the next paragraph would not fit whole
        "Second one. It has two short sentences.",  # kept whole: it fits
        "One two three four five six.",  # too long as a paragraph: split at the sentence
        "Seven eight nine ten eleven twelve.",
    ]


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("text", "d", words, max_tokens=10, overlap_tokens=10)
