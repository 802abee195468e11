"""Judges: a model grades a candidate on a small integer scale, and the grade is read from the
probabilities of the score tokens rather than from the text.

Asking "reply with a score from 1 to 5" and taking the *expected* score under the model's
next-token distribution gives a continuous, much less noisy grade than the single sampled digit
(and works even for a small model that writes a digit only some of the time). Where a server
returns no log-probabilities, the score is parsed from the text instead; a reply with neither
is `unparseable`.

Every judgement says how it was read (`method`): `prefix-logprobs` (the model continued the
template's "Score:" prefix: in-process, or a server that continues a message),
`completion-logprobs` (the template rendered here and continued through /completions),
`first-token-logprobs` (a fresh reply with no prefix, read at its first token), `json` (a
structured reply), or `text`. The backend says which applies (`judge_method`, llm/render.py). Pairwise comparison reads P("A") vs P("B") the same way, in both orders, so
a judge's preference for the first position cancels out.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from alignlab.llm.types import Backend, Choice, GenerationParams, OnDone, Request
from alignlab.sdg.templates import load_template

# The score must carry at least this much probability at the position read, else the model
# was saying something else there (e.g. "The answer...") and we look further or parse text.
MIN_LABEL_MASS = 0.05
METHODS = ("prefix-logprobs", "completion-logprobs", "first-token-logprobs", "json", "text")
IN_PROCESS = "prefix-logprobs"
REPAIR = 'Reply with the JSON object only, for example {"score": 3}.'
TOP_K = 20
# The templates end in a prefill ("Score:", "Response"), so the label is the first or, after a
# space token, the second generated token: two tokens are all a verdict needs.


@dataclass
class Judgement:
    score: float | None  # expected score on the scale; None when unreadable
    method: str  # one of METHODS, "unparseable" or "failed"
    probs: dict[str, float] = field(default_factory=dict)
    raw: str = ""

    def lineage(self, model: str, template_hash: str) -> dict[str, Any]:
        return {"score": None if self.score is None else round(self.score, 4), "method": self.method,
                "model": model, "template": template_hash}


def label_distribution(choice: Choice, labels: Sequence[str]) -> dict[str, float] | None:
    """P(label) at the first generated position where the labels carry real probability,
    renormalised over the labels (" 4" and "4" count as the same label)."""
    for position in choice.logprobs or []:
        mass: dict[str, float] = {}
        for token, logprob in position.top:
            key = token.strip()
            if key in labels:
                mass[key] = mass.get(key, 0.0) + math.exp(logprob)
        total = sum(mass.values())
        if total >= MIN_LABEL_MASS:
            return {label: mass.get(label, 0.0) / total for label in labels}
        if position.token.strip():  # the model committed to some other word: stop looking
            return None
    return None


def parse_label(text: str, labels: Sequence[str]) -> str | None:
    """The first label standing alone as a word in the text."""
    for word in re.findall(r"[A-Za-z0-9]+", text):
        if word in labels:
            return word
    return None


def backend_judge_method(backend: Backend) -> str:
    """How this backend's judge replies are read when their log-probs come (see module doc)."""
    return getattr(backend, "judge_method", IN_PROCESS)


def read_score(choice: Choice, scale: tuple[int, int], method: str = IN_PROCESS) -> Judgement:
    labels = [str(s) for s in range(scale[0], scale[1] + 1)]
    dist = label_distribution(choice, labels)
    if dist is not None:
        return Judgement(sum(int(k) * p for k, p in dist.items()), method, dist, choice.text)
    parsed = parse_label(choice.text, labels)
    if parsed is not None:
        return Judgement(float(parsed), "text", {parsed: 1.0}, choice.text)
    return Judgement(None, "unparseable", {}, choice.text)


@dataclass(frozen=True)
class JudgeSpec:
    name: str  # e.g. "faithfulness"; the key in metadata["judges"]
    template: str  # prompt template file name
    scale: tuple[int, int] = (1, 5)


def score_schema(scale: tuple[int, int]) -> str:
    return json.dumps({"type": "object", "required": ["score"], "properties": {
        "score": {"type": "integer", "minimum": scale[0], "maximum": scale[1]}}})


def read_json_score(text: str, scale: tuple[int, int]) -> Judgement | None:
    """{"score": n} with n on the scale, or None."""
    try:
        value = json.loads(text.strip())
        score = value["score"] if isinstance(value, dict) else None
    except ValueError:
        return None
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not scale[0] <= score <= scale[1]:
        return None
    return Judgement(float(score), "json", {str(int(score)): 1.0}, text)


def judge_requests(spec: JudgeSpec, items: Sequence[dict[str, Any]],
                   override_dir: str | None = None, method: str = IN_PROCESS) -> list[Request]:
    template = load_template(spec.template, override_dir)
    if method == "json":  # no log-probs to read: a structured reply instead
        params = GenerationParams(max_tokens=16, temperature=0.0, json_schema=score_schema(spec.scale))
    else:
        params = GenerationParams(max_tokens=2, temperature=0.0, logprobs=TOP_K)
    return [Request(messages=tuple(template.messages(**item, scale=spec.scale)), params=params)
            for item in items]


def run_judge(backend: Backend, spec: JudgeSpec, items: Sequence[dict[str, Any]],
              override_dir: str | None = None, on_done: OnDone | None = None) -> list[Judgement]:
    """Grade every item (a dict of the template's variables) in one batch."""
    method = backend_judge_method(backend)
    requests = judge_requests(spec, items, override_dir, method)
    responses = backend.generate(requests, on_done=on_done)
    if method == "json":
        return _json_verdicts(backend, spec, requests, responses)
    return [read_score(r.choices[0], spec.scale, method) if r.ok else Judgement(None, "failed", raw=r.error or "")
            for r in responses]


def _json_verdicts(backend: Backend, spec: JudgeSpec, requests: Sequence[Request],
                   responses: Sequence[Any]) -> list[Judgement]:
    """JSON scores, with one repair request for a reply that does not parse (the reply shown
    back, asked again for the JSON alone); the text is the last resort."""
    verdicts: list[Judgement | None] = [
        read_json_score(r.text, spec.scale) if r.ok else Judgement(None, "failed", raw=r.error or "")
        for r in responses]
    broken = [i for i, v in enumerate(verdicts) if v is None]
    if broken:
        repair = [Request(messages=(*requests[i].messages, {"role": "assistant", "content": responses[i].text},
                                    {"role": "user", "content": REPAIR}), params=requests[i].params)
                  for i in broken]
        for i, answer in zip(broken, backend.generate(repair)):
            text = answer.text if answer.ok else responses[i].text
            verdicts[i] = read_json_score(text, spec.scale) or read_score(Choice(text), spec.scale, "text")
    return verdicts  # type: ignore[return-value]


@dataclass
class Comparison:
    p_first: float | None  # P(answer `a` is better), averaged over both presentation orders
    p_a_shown_first: float | None
    p_a_shown_second: float | None
    method: str


def compare(backend: Backend, prompts: Sequence[str], answers_a: Sequence[str],
            answers_b: Sequence[str], template: str = "judge_pairwise",
            override_dir: str | None = None) -> list[Comparison]:
    """For each prompt, how likely the judge prefers `a` over `b`, judged in both orders."""
    tpl = load_template(template, override_dir)
    params = GenerationParams(max_tokens=2, temperature=0.0, logprobs=TOP_K)
    requests = []
    for prompt, a, b in zip(prompts, answers_a, answers_b, strict=True):
        requests.append(Request(messages=tuple(tpl.messages(prompt=prompt, first=a, second=b)), params=params))
        requests.append(Request(messages=tuple(tpl.messages(prompt=prompt, first=b, second=a)), params=params))
    responses = backend.generate(requests)
    read_as = backend_judge_method(backend)
    out = []
    for k in range(0, len(responses), 2):
        ab = _p_first(responses[k].choices[0], read_as) if responses[k].ok else (None, "failed")
        ba = _p_first(responses[k + 1].choices[0], read_as) if responses[k + 1].ok else (None, "failed")
        if ab[0] is None or ba[0] is None:
            out.append(Comparison(None, ab[0], None if ba[0] is None else 1 - ba[0], "unparseable"))
        else:
            method = read_as if ab[1] == ba[1] == read_as else "text"
            out.append(Comparison((ab[0] + (1 - ba[0])) / 2, ab[0], 1 - ba[0], method))
    return out


def _p_first(choice: Choice, method: str) -> tuple[float | None, str]:
    """P(the first-shown answer is better), and how it was read."""
    dist = label_distribution(choice, ("A", "B"))
    if dist is not None:
        return dist["A"], method
    parsed = parse_label(choice.text, ("A", "B"))
    return (None, "unparseable") if parsed is None else (float(parsed == "A"), "text")
