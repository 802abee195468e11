"""Which answer the source chunk supports: a verification signal that works at every scale.

A 135M judge cannot tell two fluent answers apart when asked, but its log-likelihoods still
carry the document. For a knowledge prompt with a known source chunk, the support of an answer
is how much reading the chunk raises the answer's likelihood under the judge, per token:

    support(a) = (log P(a | chunk, question) - log P(a | question)) / tokens(a)

(the pointwise mutual information of answer and chunk). Subtracting log P(a | question) takes
out what the judge thinks of the answer anyway (its fluency, its length), so what is left is
what the chunk adds. The evidence agrees with the ladder when support(chosen) > support(rejected).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from alignlab.llm.types import Backend, ScoreRequest
from alignlab.pairs.construct import answer_text
from alignlab.pairs.rungs import with_chunk
from alignlab.records import Pair


@dataclass(frozen=True)
class Support:
    chosen: float
    rejected: float

    @property
    def margin(self) -> float:
        """Positive when the chunk supports the chosen answer more than the rejected one."""
        return self.chosen - self.rejected


def chunk_of(pair: Pair, chunks: Mapping[str, str]) -> str | None:
    chunk_id = pair.metadata.get("chunk_id")
    return chunks.get(str(chunk_id)) if chunk_id is not None else None


def chunk_support(judge: Backend, pairs: Sequence[Pair], chunks: Mapping[str, str]) -> list[Support | None]:
    """Support of both answers of every pair that has a source chunk (None for the others, and
    where the judge could not score)."""
    requests: list[ScoreRequest] = []
    index: list[int] = []
    for k, pair in enumerate(pairs):
        chunk = chunk_of(pair, chunks)
        if not chunk:
            continue
        index.append(k)
        for side in (pair.chosen, pair.rejected):
            answer = answer_text(side)
            requests += [ScoreRequest(context=tuple(with_chunk(pair.prompt, chunk)), continuation=answer),
                         ScoreRequest(context=tuple(pair.prompt), continuation=answer)]
    scores = judge.loglikelihood(requests) if requests else []
    out: list[Support | None] = [None] * len(pairs)
    for j, k in enumerate(index):
        with_c, without_c, with_r, without_r = scores[4 * j:4 * j + 4]
        if any(s.error for s in (with_c, without_c, with_r, without_r)):
            continue
        out[k] = Support((with_c.logprob - without_c.logprob) / max(with_c.n_tokens, 1),
                         (with_r.logprob - without_r.logprob) / max(with_r.n_tokens, 1))
    return out
