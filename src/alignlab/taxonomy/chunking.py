"""Split documents into chunks sized in tokens of the teacher's tokenizer, with overlap.

Chunks end on the most natural boundary that fits: a heading or paragraph break first, then a
sentence end, and only then a word. Each chunk carries its character span in the document, so
coverage can be checked and every generated sample traced back to the exact text it grew from.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from alignlab.records import stable_id

TokenCounter = Callable[[str], int]

_BLOCK = re.compile(r"\n[ \t]*\n+|\n(?=#{1,6} )")  # blank lines, or a line break before a heading
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\s+")


@dataclass(frozen=True)
class Chunk:
    id: str
    source: str  # the document's path as named in the leaf
    index: int
    text: str
    start: int  # character span in the document
    end: int
    tokens: int


def _spans(text: str, start: int, end: int, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    """Split text[start:end] at `pattern`, as (start, end) spans with whitespace trimmed."""
    out, pos = [], start
    for m in pattern.finditer(text, start, end):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, end))
    trimmed = []
    for s, e in out:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            trimmed.append((s, e))
    return trimmed


def _pieces(text: str, count: TokenCounter, max_tokens: int) -> list[tuple[int, int, int]]:
    """Spans no longer than max_tokens: blocks, else their sentences, else runs of words."""
    out: list[tuple[int, int, int]] = []

    def split(s: int, e: int, level: int) -> None:
        n = count(text[s:e])
        if n <= max_tokens or level == 3:
            out.append((s, e, n))
            return
        pattern = (_BLOCK, _SENTENCE, _WORD)[level]
        parts = _spans(text, s, e, pattern)
        if len(parts) == 1 and level < 2:
            split(s, e, level + 1)
            return
        if level == 2:  # words: pack greedily, a word longer than the limit stands alone
            _pack_words(text, parts, count, max_tokens, out)
            return
        for ps, pe in parts:
            split(ps, pe, level + 1)

    for s, e in _spans(text, 0, len(text), _BLOCK):
        split(s, e, 1)
    return out


def _pack_words(text: str, words: list[tuple[int, int]], count: TokenCounter, max_tokens: int,
                out: list[tuple[int, int, int]]) -> None:
    start = end = words[0][0]
    for ws, we in words:
        if end > start and count(text[start:we]) > max_tokens:
            out.append((start, end, count(text[start:end])))
            start = ws
        end = we
    out.append((start, end, count(text[start:end])))


def chunk_text(text: str, source: str, count: TokenCounter, max_tokens: int = 384,
               overlap_tokens: int = 48) -> list[Chunk]:
    """Greedily pack pieces into chunks of at most `max_tokens`, each new chunk starting with
    the previous chunk's last pieces (up to `overlap_tokens`) so no fact is cut in half."""
    if max_tokens < 8:
        raise ValueError(f"chunk size must be at least 8 tokens, got {max_tokens}")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(f"overlap must be in [0, {max_tokens}), got {overlap_tokens}")
    pieces = _pieces(text, count, max_tokens)
    chunks: list[Chunk] = []
    current: list[tuple[int, int, int]] = []

    def emit() -> None:
        s, e = current[0][0], current[-1][1]
        body = text[s:e]
        chunks.append(Chunk(id=stable_id(source, s, e, body), source=source, index=len(chunks),
                            text=body, start=s, end=e, tokens=count(body)))

    i = 0
    while i < len(pieces):
        piece = pieces[i]
        candidate = current + [piece]
        if current and count(text[candidate[0][0]:piece[1]]) > max_tokens:
            emit()
            # carry the tail of this chunk into the next one, within the overlap budget
            tail: list[tuple[int, int, int]] = []
            for p in reversed(current):
                if p[2] + sum(t[2] for t in tail) > overlap_tokens:
                    break
                tail.insert(0, p)
            if tail and count(text[tail[0][0]:piece[1]]) > max_tokens:
                tail = []
            current = tail
            continue
        current = candidate
        i += 1
    if current:  # the last piece is never emitted inside the loop
        emit()
    return chunks
