"""The local backend: a transformers causal LM in this process, batched.

Generation is our own small loop rather than `model.generate`, because the protocol needs
things `generate` does not give per row: a seed per sample (so a sample does not depend on the
batch it landed in), stop strings, top-k log-probabilities of each generated token, and rows
leaving the batch as soon as they finish. Prompts are sorted by length and packed into batches
under a token budget, left-padded so every row's next token sits in the last column.

Scoring (`loglikelihood`) runs each distinct context once and reads its key/value cache for
every continuation of it: the four options of a multiple-choice item cost one context and four
short continuations, not four copies of the question.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from alignlab.chat_format import render_chat
from alignlab.llm.types import (
    BackendStats, Choice, GenerationParams, OnDone, Request, Response, Score, ScoreRequest,
    TokenLogprob,
)


@dataclass
class _Row:
    """One sample being generated: request `req` of the caller's batch, sample `sample`."""

    req: int
    sample: int
    prompt_ids: list[int]
    params: GenerationParams
    generator: torch.Generator | None
    ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    text: str = ""
    finish: str | None = None


class LocalBackend:
    def __init__(self, model: Any, tokenizer: Any, model_id: str, *,
                 max_batch_size: int = 16, max_batch_tokens: int = 16384, precision: str = "fp32",
                 device: str = "cpu"):
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.tokenizer = tokenizer
        # Answers depend on the precision and the device's kernels, so the cache must tell them apart.
        self.model_id = model_id + (f"|{precision}" if precision != "fp32" else "") + (
            f"|{self.device.type}" if self.device.type != "cpu" else "")
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.autocast = precision == "bf16"
        self.stats = BackendStats()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.eos_ids = _eos_ids(model, tokenizer)
        self.context_limit = getattr(model.config, "max_position_embeddings", None) or 1 << 30

    @property
    def parallel_width(self) -> int:
        return self.max_batch_size

    @classmethod
    def from_spec(cls, spec: Any, settings: Any = None) -> LocalBackend:
        """Load the model a spec names, batching as `settings` (BackendSettings) says."""
        from alignlab.llm.config import BackendSettings
        from alignlab.llm.hf import as_spec, load_causal_lm, load_tokenizer, model_id, resolve_device, weights_dtype

        s = settings or BackendSettings()
        spec = as_spec(spec)
        device = resolve_device(s.device)
        return cls(load_causal_lm(spec, weights_dtype(device, s.precision)), load_tokenizer(spec), model_id(spec),
                   max_batch_size=s.max_batch_size, max_batch_tokens=s.max_batch_tokens, precision=s.precision,
                   device=device)

    @contextmanager
    def _inference(self) -> Iterator[None]:
        """No gradients, and under bf16 one autocast context around all of a call's forward
        passes: autocast keeps the bfloat16 copy of each weight until its outermost context
        exits, so the weights are cast once per batch rather than once per generated token (the
        cast was half of a decode step's time on the CPU). The cache works under `no_grad` but
        not under `inference_mode`, hence `no_grad`. The casts are the same, so are the outputs."""
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            yield

    def _forward(self, **inputs: Any) -> Any:
        """The model on its device; inputs are built on the CPU and moved here, in one place."""
        inputs = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        return self.model(**inputs)

    # ------------------------------------------------------------ encoding

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """The chat template applied; a final assistant message is left open to be continued."""
        return render_chat(self.tokenizer, messages)

    def _encode_prompt(self, request: Request) -> list[int]:
        if request.is_chat:
            # The rendered template already carries any BOS the model expects.
            return self.tokenizer(self.render_chat(request.messages), add_special_tokens=False).input_ids
        return self.tokenizer(request.prompt).input_ids

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    # ------------------------------------------------------------ generation

    def generate(self, requests: Sequence[Request], on_done: OnDone | None = None) -> list[Response]:
        responses = [Response() for _ in requests]
        pending = [r.params.n for r in requests]
        rows: list[_Row] = []
        for i, request in enumerate(requests):
            prompt_ids = self._encode_prompt(request)
            responses[i].prompt_tokens = len(prompt_ids)
            if len(prompt_ids) + request.params.max_tokens > self.context_limit:
                responses[i].error = (f"context length exceeded: {len(prompt_ids)} prompt tokens + "
                                      f"{request.params.max_tokens} max_tokens > {self.context_limit}")
                self.stats.failures += 1
                pending[i] = 0
                continue
            responses[i].choices = [Choice("", finish_reason="length") for _ in range(request.params.n)]
            if request.params.max_tokens == 0:
                pending[i] = 0
                continue
            for j, sample in enumerate(request.samples()):
                p = sample.params
                gen = torch.Generator().manual_seed(p.seed) if p.temperature > 0 else None
                rows.append(_Row(i, j, prompt_ids, p, gen))
        for i, left in enumerate(pending):
            if left == 0 and on_done:
                on_done(i, responses[i])
        self.stats.requests += len(requests)
        for batch in self._batches(rows):
            self._generate_batch(batch)
            for row in batch:
                responses[row.req].choices[row.sample] = Choice(
                    text=row.text, finish_reason=row.finish or "length",
                    logprobs=row.logprobs if row.params.logprobs else None,
                    completion_tokens=len(row.ids))
                pending[row.req] -= 1
                if pending[row.req] == 0 and on_done:
                    on_done(row.req, responses[row.req])
        return responses

    def _batches(self, rows: list[_Row]) -> list[list[_Row]]:
        """Length-sorted batches whose padded size (prompt + new tokens) fits the budget."""
        batches: list[list[_Row]] = []
        current: list[_Row] = []
        longest = 0
        for row in sorted(rows, key=lambda r: (len(r.prompt_ids), r.params.max_tokens)):
            size = len(row.prompt_ids) + row.params.max_tokens
            widest = max(longest, size)
            if current and (len(current) >= self.max_batch_size
                            or widest * (len(current) + 1) > self.max_batch_tokens):
                batches.append(current)
                current, widest = [], size
            current.append(row)
            longest = widest
        if current:
            batches.append(current)
        return batches

    def _generate_batch(self, rows: list[_Row]) -> None:
        with self._inference():
            self._decode(rows)

    def _decode(self, rows: list[_Row]) -> None:
        from transformers import DynamicCache

        # Rows with the same prompt (samples of one request, candidates sharing a chunk) are
        # prefilled once; their key/value cache is then copied to every row that needs it.
        unique: dict[tuple[int, ...], int] = {}
        owner = torch.tensor([unique.setdefault(tuple(r.prompt_ids), len(unique)) for r in rows])
        prompts = [list(p) for p in unique]
        input_ids, mask, positions = self._left_padded(prompts)
        cache = DynamicCache()
        active = list(rows)
        self.stats.calls += 1
        self.stats.prompt_tokens += int(mask.sum())
        with self.stats.timer():
            # Only the last position's logits are needed: the vocabulary projection of the whole
            # prompt would cost a fifth of the prefill and gigabytes of memory.
            out = self._forward(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                                past_key_values=cache, use_cache=True, logits_to_keep=1)
            cache, logits = out.past_key_values, out.logits[:, -1, :]
            if len(prompts) < len(rows):
                cache.batch_select_indices(owner)
                logits, mask, positions = logits[owner], mask[owner], positions[owner]
            while True:
                # Sampling reads the CPU copy: every row's seeded generator lives there, so a
                # sample is the same whichever device computed its logits.
                logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
                chosen = _choose_tokens(logprobs, active)
                next_ids = [self._record(row, token, logprobs[k])
                            for k, (row, token) in enumerate(zip(active, chosen))]
                self.stats.completion_tokens += len(active)
                still = [k for k, row in enumerate(active) if row.finish is None]
                if not still:
                    break
                if len(still) < len(active):  # finished rows leave the batch
                    index = torch.tensor(still)
                    cache.batch_select_indices(index)
                    mask, positions = mask[index], positions[index]
                    active = [active[k] for k in still]
                    next_ids = [next_ids[k] for k in still]
                mask = torch.cat([mask, torch.ones(len(active), 1, dtype=mask.dtype)], dim=-1)
                positions = positions[:, -1:] + 1
                out = self._forward(input_ids=torch.tensor(next_ids).unsqueeze(-1), attention_mask=mask,
                                    position_ids=positions, past_key_values=cache, use_cache=True)
                cache, logits = out.past_key_values, out.logits[:, -1, :]

    def _left_padded(self, seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token ids, attention mask and positions of `seqs` left-padded to the longest, so
        every row's last token sits in the last column (prefill for decoding and scoring)."""
        pad = self.tokenizer.pad_token_id
        width = max(len(s) for s in seqs)
        ids = torch.tensor([[pad] * (width - len(s)) + list(s) for s in seqs])
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
        return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)

    def _record(self, row: _Row, token: int, logprobs: torch.Tensor) -> int:
        """Append the chosen token to the row and decide whether the row is finished."""
        p = row.params
        if p.logprobs:
            top = torch.topk(logprobs, p.logprobs)
            row.logprobs.append(TokenLogprob(
                token=self.tokenizer.decode([token]), logprob=float(logprobs[token]),
                top=[(self.tokenizer.decode([int(t)]), float(v)) for v, t in zip(top.values, top.indices)]))
        if token in self.eos_ids:
            row.finish = "stop"
            return token
        row.ids.append(token)
        row.text = self.tokenizer.decode(row.ids, skip_special_tokens=True)
        for stop in p.stop:
            at = row.text.find(stop)
            if at >= 0:
                row.text = row.text[:at]
                row.finish = "stop"
                return token
        if len(row.ids) >= p.max_tokens:
            row.finish = "length"
        return token

    # ------------------------------------------------------------ scoring

    def _encode_context(self, context: str | Sequence[dict[str, str]]) -> list[int]:
        if isinstance(context, str):
            ids = self.tokenizer(context).input_ids if context else []
        else:
            ids = self.tokenizer(self.render_chat(context), add_special_tokens=False).input_ids
        # The first continuation token needs something to be predicted from.
        return ids or [self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None
                       else self.tokenizer.eos_token_id]

    def _split(self, request: ScoreRequest) -> tuple[list[int], list[int]]:
        context, continuation = request.context, request.continuation
        # Tokenisers fold a space into the following word, so " Paris" is one token but " " +
        # "Paris" is two: move trailing whitespace of a text context onto the continuation.
        if isinstance(context, str):
            stripped = context.rstrip(" ")
            continuation = context[len(stripped):] + continuation
            context = stripped
        ctx = self._encode_context(context)
        cont = self.tokenizer(continuation, add_special_tokens=False).input_ids
        return ctx, cont

    def loglikelihood(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        with self._inference():
            return self._loglikelihood(requests)

    def _loglikelihood(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        encoded = [self._split(r) for r in requests]
        scores: list[Score | None] = [None] * len(requests)
        self.stats.requests += len(requests)
        # Requests sharing a context (the options of one multiple-choice item) are scored
        # together: the context is run once and its key/value cache serves every continuation.
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (ctx, cont) in enumerate(encoded):
            total = len(ctx) + len(cont)
            if not cont:
                scores[i] = Score(0.0, 0, True)
            elif total > self.context_limit:
                scores[i] = Score(float("-inf"), len(cont), False,
                                  error=f"context length exceeded: {total} tokens > {self.context_limit}")
                self.stats.failures += 1
            else:
                groups.setdefault(tuple(ctx), []).append(i)
        # Longest context first, so the batch's first context sets its padded width.
        batch: list[tuple[int, ...]] = []
        rows = longest = 0  # continuations in the batch, and the longest of them
        for ctx in sorted(groups, key=len, reverse=True):
            mine = max(len(encoded[i][1]) for i in groups[ctx])
            widest = len(batch[0]) if batch else len(ctx)
            if batch and (len(batch) >= self.max_batch_size
                          or widest * (len(batch) + 1) > self.max_batch_tokens
                          or (rows + len(groups[ctx])) * (widest + max(longest, mine)) > 4 * self.max_batch_tokens):
                self._score_batch(batch, groups, encoded, scores)
                batch, rows, longest = [], 0, 0
            batch.append(ctx)
            rows, longest = rows + len(groups[ctx]), max(longest, mine)
        if batch:
            self._score_batch(batch, groups, encoded, scores)
        return [s for s in scores if s is not None]

    def _score_batch(self, contexts: list[tuple[int, ...]], groups: dict[tuple[int, ...], list[int]],
                     encoded: list[tuple[list[int], list[int]]], scores: list[Score | None]) -> None:
        """Two passes: the contexts (left-padded, so each ends in the last column) give the
        first token of every continuation; then all but the last token of each continuation
        (right-padded), reading its context's cache, give the rest."""
        from transformers import DynamicCache

        pad = self.tokenizer.pad_token_id
        ids, ctx_mask, positions = self._left_padded(contexts)
        members = [(k, i) for k, c in enumerate(contexts) for i in groups[c]]
        owner = torch.tensor([k for k, _ in members])
        conts = [encoded[i][1] for _, i in members]
        self.stats.calls += 1
        with self.stats.timer():
            cache = DynamicCache()
            out = self._forward(input_ids=ids, attention_mask=ctx_mask, position_ids=positions,
                                past_key_values=cache, use_cache=True, logits_to_keep=1)
            first = out.logits[:, -1, :].float().log_softmax(-1).cpu()[owner]
            rest = None
            longest = max(len(c) for c in conts) - 1
            if longest > 0:
                cache = out.past_key_values
                cache.batch_select_indices(owner)
                tail = torch.tensor([c[:-1] + [pad] * (longest - len(c) + 1) for c in conts])
                tail_mask = torch.tensor([[1] * (len(c) - 1) + [0] * (longest - len(c) + 1) for c in conts])
                mask = torch.cat([ctx_mask[owner], tail_mask], dim=-1)
                tail_positions = positions[owner, -1:] + 1 + torch.arange(longest)
                rest = self._forward(input_ids=tail, attention_mask=mask, position_ids=tail_positions,
                                     past_key_values=cache, use_cache=True).logits.cpu()
        for row, ((_, i), cont) in enumerate(zip(members, conts)):
            # Logits at position t predict token t+1: the context's last gives the first token.
            span = first[row:row + 1]
            if len(cont) > 1:
                span = torch.cat([span, rest[row, :len(cont) - 1].float().log_softmax(-1)])
            target = torch.tensor(cont)
            token_lp = span.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            greedy = bool((span.argmax(-1) == target).all())
            scores[i] = Score(float(token_lp.sum()), len(cont), greedy)
            self.stats.scored_tokens += len(cont)

    def close(self) -> None:
        self.model = None


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    return ids


def _choose_tokens(logprobs: torch.Tensor, rows: list[_Row]) -> list[int]:
    """Next token of every row: argmax for greedy rows; for sampled rows, temperature and
    nucleus filtering done for the whole batch at once (one sort, not one per row), then a
    draw from each row's own seeded generator."""
    chosen = logprobs.argmax(-1)
    sampled = [k for k, r in enumerate(rows) if r.params.temperature > 0]
    if sampled:
        index = torch.tensor(sampled)
        temperature = torch.tensor([rows[k].params.temperature for k in sampled]).unsqueeze(-1)
        top_p = torch.tensor([rows[k].params.top_p for k in sampled]).unsqueeze(-1)
        probs = torch.softmax(logprobs[index] / temperature, dim=-1)
        if bool((top_p < 1.0).any()):
            probs = _top_p_filter(probs, top_p)
        for j, k in enumerate(sampled):
            chosen[k] = torch.multinomial(probs[j], 1, generator=rows[k].generator)[0]
    return chosen.tolist()


def _top_p_filter(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Nucleus sampling, per row: keep the smallest set of tokens whose probability reaches
    that row's top_p."""
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    beyond = sorted_probs.cumsum(-1) - sorted_probs > top_p  # tokens entirely past the nucleus
    sorted_probs = sorted_probs.masked_fill(beyond, 0.0)
    filtered = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return filtered / filtered.sum(-1, keepdim=True)
