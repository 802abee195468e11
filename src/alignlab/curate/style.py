"""Style-consistency ranking, after SCAR's idea — an approximation, not SCAR itself: there is no
trained ranker here. SCAR learns a reward model that scores responses by the consistency of
their *linguistic form* and their *instructional surprisal*; this step measures both facets
directly and ranks by how far a response sits from the dominant style of its group.

    form        length (chars, words), lines, paragraphs, share of list lines, markdown marks,
                words per sentence, punctuation, exclamations, questions, capitals, first and
                second person: the shape and tone of the text
    surprisal   mean negative log-likelihood per token of the response given the conversation
                before it, under a reference model (the student by default): how predictable
                the answer is from the instruction

Every feature is standardised robustly within the group (median, 1.4826 × MAD floored at a
smallest meaningful difference per feature; clipped at ±10), the form facet is the
root-mean-square of its z-scores, and the distance combines the two facets with equal weight:
sqrt((form² + z_surprisal²) / 2). The closest `keep_fraction` of each group is kept; the rest
are `style_outlier`. Groups (per leaf by default: a haiku skill and a knowledge Q&A rightly
differ in form) smaller than `min_group` are kept whole. Document chunks are exempt.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np

from alignlab.curate.config import StyleStep
from alignlab.curate.steps import KEEP, StepContext, Verdict, leaf_of, reject
from alignlab.curate.text import words
from alignlab.llm.types import Backend, ScoreRequest
from alignlab.records import Sample

FORM_FEATURES = ("log_chars", "log_words", "lines", "paragraphs", "list_share", "markdown",
                 "words_per_sentence", "punctuation", "exclamations", "questions", "capitals",
                 "first_person", "second_person")
# The smallest spread that counts as a difference, per feature: when a group is very uniform
# its MAD is tiny, and without a floor a trivial difference (one word more) would look huge.
FORM_FLOORS = np.array([0.1, 0.1, 0.2, 0.2, 0.05, 0.2, 2.0, 0.01, 0.05, 0.05, 0.02, 0.01, 0.01])
SURPRISAL_FLOOR = 0.1  # nats per token
_LIST_LINE = re.compile(r"^\s*(?:[-*•+]|\d+[.)])\s")
_MARKDOWN = re.compile(r"^#{1,6}\s|\*\*|__|`|^\s*>|\|", re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
_FIRST = {"i", "me", "my", "mine", "we", "us", "our"}
_SECOND = {"you", "your", "yours"}
Z_CLIP = 10.0


def form_features(text: str) -> list[float]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    toks = words(text)
    n_words = max(len(toks), 1)
    sentences = max(len(_SENTENCE_END.findall(text)), 1)
    letters = [c for c in text if c.isalpha()]
    return [
        math.log1p(len(text)),
        math.log1p(len(toks)),
        math.log1p(len(lines)),
        math.log1p(len([p for p in re.split(r"\n\s*\n", text) if p.strip()])),
        sum(bool(_LIST_LINE.match(ln)) for ln in lines) / max(len(lines), 1),
        math.log1p(len(_MARKDOWN.findall(text))),
        n_words / sentences,
        sum(not c.isalnum() and not c.isspace() for c in text) / max(len(text), 1),
        text.count("!") / sentences,
        text.count("?") / sentences,
        sum(c.isupper() for c in letters) / max(len(letters), 1),
        sum(t in _FIRST for t in toks) / n_words,
        sum(t in _SECOND for t in toks) / n_words,
    ]


def surprisal(samples: list[Sample], backend: Backend, advance: Callable[..., None] | None = None,
              chunk: int = 64) -> np.ndarray:
    """Mean NLL per response token given everything before the last assistant turn (NaN on failure)."""
    requests = []
    for s in samples:
        last = max((i for i, m in enumerate(s.messages) if m["role"] == "assistant"), default=len(s.messages))
        context = tuple(s.messages[:last]) or ({"role": "user", "content": ""},)
        requests.append(ScoreRequest(context=context, continuation=s.response))
    scores = []
    for start in range(0, len(requests), chunk):  # in chunks, so the progress bar moves
        scores += backend.loglikelihood(requests[start:start + chunk])
        if advance:
            advance(len(requests[start:start + chunk]))
    return np.array([-sc.logprob / sc.n_tokens if sc.error is None and sc.n_tokens else np.nan
                     for sc in scores], dtype=np.float64)


def robust_z(x: np.ndarray, floors: np.ndarray | float) -> np.ndarray:
    """Column-wise (x - median) / max(1.4826 · MAD, floor); missing values (NaN) count as
    typical (z = 0)."""
    if np.isnan(x).all(axis=0).any():
        x = np.where(np.isnan(x).all(axis=0), 0.0, x)
    median = np.nanmedian(x, axis=0)
    scale = np.maximum(1.4826 * np.nanmedian(np.abs(x - median), axis=0), floors)
    return np.nan_to_num(np.clip((x - median) / scale, -Z_CLIP, Z_CLIP), nan=0.0)


def style_distances(form: np.ndarray, surprisals: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Distance of each row to the group's robust centre, and the form z-scores."""
    z_form = robust_z(form, FORM_FLOORS)
    form_rms = np.sqrt((z_form ** 2).mean(axis=1))
    if surprisals is None:
        return form_rms, z_form
    z_s = robust_z(surprisals[:, None], SURPRISAL_FLOOR)[:, 0]
    return np.sqrt((form_rms ** 2 + z_s ** 2) / 2), z_form


def keep_count(n: int, fraction: float) -> int:
    return max(1, math.floor(n * fraction + 0.5))


def style(samples: list[Sample], settings: StyleStep, ctx: StepContext) -> list[Verdict]:
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        if not s.unmask:
            key = {"leaf": leaf_of(s), "leaf_kind": str(s.metadata.get("leaf_kind", "")), "all": ""}
            groups.setdefault(key[settings.group_by], []).append(i)
    ranked = [members for members in groups.values() if len(members) >= settings.min_group]
    todo = [i for members in ranked for i in members]
    verdicts: list[Verdict] = [KEEP] * len(samples)
    if not todo:
        return verdicts
    nll = np.full(len(samples), np.nan)
    if settings.surprisal:
        backend = ctx.backend(settings.models(ctx.cfg)["style"])
        nll[todo] = surprisal([samples[i] for i in todo], backend,
                              ctx.track("style: surprisal", total=len(todo)))
    for members in ranked:
        form = np.array([form_features(samples[i].response) for i in members])
        dist, z_form = style_distances(form, nll[members] if settings.surprisal else None)
        order = np.argsort(dist, kind="stable")
        keep = keep_count(len(members), settings.keep_fraction)
        for rank, k in enumerate(order[keep:], start=keep):
            worst = np.argsort(-np.abs(z_form[k]))[:3]
            verdicts[members[k]] = reject(
                "style_outlier", distance=round(float(dist[k]), 3), rank=rank + 1, of=len(members),
                features={FORM_FEATURES[f]: round(float(z_form[k, f]), 2) for f in worst},
                **({"surprisal": round(float(nll[members[k]]), 3)} if settings.surprisal else {}))
    return verdicts
