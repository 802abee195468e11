"""Decontamination: drop every sample sharing an n-gram (default 13 words, normalised) with an
evaluation question, so a score measured later is not a score on training data.

The evaluation questions are the config's `eval_sets` (JSONL in messages format — the user
turns count — or MCQ format `{"question", "choices", "answer"}`) plus every knowledge leaf's
held-out `heldout_mcq.jsonl`, found by globbing the taxonomy, and the skill prompts the
evaluation judges answers to. A question shorter than n words
has no n-gram; it matches when its whole normalised text occurs in a sample at word boundaries.
Every text of a sample is checked, document chunks included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alignlab.config import Config
from alignlab.curate.config import DecontaminateStep
from alignlab.curate.steps import KEEP, StepContext, Verdict, reject
from alignlab.curate.text import WordHasher, conversation_text, ngram_hashes, normalize, words
from alignlab.errors import ConfigError
from alignlab.records import Sample
from alignlab.store import read_jsonl

HELDOUT_GLOB = "**/heldout_mcq.jsonl"


@dataclass(frozen=True)
class EvalQuestion:
    source: str  # eval set file, relative to the config or taxonomy folder when possible
    id: str
    text: str


def eval_set_paths(cfg: Config, settings: DecontaminateStep, keys: tuple = ("curate", "steps")) -> list[Path]:
    """The step's eval files; a missing one is a config error at the line that names it
    (`keys`: where the step sits in alignlab.yaml)."""
    paths = []
    for k, name in enumerate(settings.eval_sets):
        path = cfg.path(name)
        if not path.is_file():
            raise ConfigError(f"{cfg.where((*keys, 'eval_sets', k))}: eval set {name} not found "
                              f"(looked for {path})")
        paths.append(path)
    if settings.taxonomy_heldout and cfg.taxonomy_path.is_dir():
        paths += sorted(cfg.taxonomy_path.glob(HELDOUT_GLOB))
    return paths


def _shown(path: Path, cfg: Config) -> str:
    base = cfg.base_dir.resolve()
    path = path.resolve()
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def read_eval_questions(path: Path, shown: str) -> list[EvalQuestion]:
    out = []
    for lineno, row in enumerate(read_jsonl(path), 1):
        item_id = str(row.get("id", lineno))
        if isinstance(row.get("question"), str):
            out.append(EvalQuestion(shown, item_id, row["question"]))
        elif isinstance(row.get("messages"), list):
            out += [EvalQuestion(shown, item_id, m["content"]) for m in row["messages"]
                    if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str)]
        else:
            raise ConfigError(f"{path}:{lineno}: an eval row needs 'question' (MCQ format) "
                              f"or 'messages' (chat format)")
    return out


@dataclass
class EvalIndex:
    """Every eval question's n-gram hashes, and the short questions matched as phrases."""

    n: int
    hasher: WordHasher = field(default_factory=WordHasher)
    hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    owners: dict[int, tuple[EvalQuestion, int]] = field(default_factory=dict)  # hash -> (question, word offset)
    short: dict[str, EvalQuestion] = field(default_factory=dict)  # normalised text -> question
    short_pattern: re.Pattern | None = None

    @classmethod
    def build(cls, questions: list[EvalQuestion], n: int) -> EvalIndex:
        index = cls(n)
        long_qs = [q for q in questions if len(words(q.text)) >= n]
        for q in questions:
            if 0 < len(words(q.text)) < n:
                index.short.setdefault(normalize(q.text), q)
        hashes, offsets = ngram_hashes(*index.hasher.corpus([words(q.text) for q in long_qs]), n)
        for k, q in enumerate(long_qs):
            for pos, h in enumerate(hashes[offsets[k]:offsets[k + 1]].tolist()):
                index.owners.setdefault(h, (q, pos))
        index.hashes = np.unique(hashes)
        if index.short:
            # Longest first so the reported match is the most specific question.
            alternatives = "|".join(re.escape(t) for t in sorted(index.short, key=len, reverse=True))
            index.short_pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
        return index

    def __len__(self) -> int:
        return len(self.hashes) + len(self.short)

    def matches(self, texts: list[str]) -> list[tuple[EvalQuestion, str] | None]:
        """For each text, the first eval question it shares an n-gram (or a short question) with."""
        tokens = [words(t) for t in texts]
        out: list[tuple[EvalQuestion, str] | None] = [None] * len(texts)
        if len(self.hashes):
            hashes, offsets = ngram_hashes(*self.hasher.corpus(tokens), self.n)
            hits = np.flatnonzero(np.isin(hashes, self.hashes))
            docs = np.searchsorted(offsets, hits, side="right") - 1
            docs, first = np.unique(docs, return_index=True)  # each document's first shared n-gram
            for doc, pos in zip(docs.tolist(), hits[first].tolist()):
                question, at = self.owners[int(hashes[pos])]
                out[doc] = (question, " ".join(words(question.text)[at:at + self.n]))
        if self.short_pattern is not None:
            for i, toks in enumerate(tokens):
                if out[i] is None:
                    found = self.short_pattern.search(" ".join(toks))
                    if found:
                        out[i] = (self.short[found.group(0)], found.group(0))
        return out


def judged_prompts(cfg: Config) -> list[EvalQuestion]:
    """The skill prompts the evaluation judges answers to (the skill leaves' seed examples)."""
    from alignlab.evaluate.judged import skill_prompts, user_message

    return [EvalQuestion(f"{p['leaf']} (judged prompt)", str(k), user_message(p))
            for k, p in enumerate(skill_prompts(cfg.taxonomy_path, cfg.eval.judged.max_prompts_per_leaf))]


def decontaminate(samples: list[Sample], settings: DecontaminateStep, ctx: StepContext) -> list[Verdict]:
    questions = [q for path in eval_set_paths(ctx.cfg, settings)
                 for q in read_eval_questions(path, _shown(path, ctx.cfg))]
    if settings.taxonomy_heldout and any(ctx.cfg.taxonomy_path.glob("**/qna.yaml")):
        questions += judged_prompts(ctx.cfg)
    index = EvalIndex.build(questions, settings.ngram)
    if not len(index) or not samples:
        return [KEEP] * len(samples)
    advance = ctx.track("decontaminate", total=len(samples))
    found = index.matches([conversation_text(s) for s in samples])
    advance(len(samples))
    return [KEEP if f is None else reject("contaminated", eval_set=f[0].source, eval_id=f[0].id, ngram=f[1])
            for f in found]
