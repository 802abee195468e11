"""Training data path without a model: loss masks, skipping, batching, validation split, config."""

from __future__ import annotations

import random

import pytest

from alignlab.chat_format import ChatTemplateError
from alignlab.records import Sample
from alignlab.train.batching import fixed_size_batches, padding_share, token_budget_batches
from alignlab.train.config import TrainConfig
from alignlab.train.data import (
    IGNORE, collate, prepare_samples, split_validation, tokenize_sample,
)

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello there"},
    {"role": "user", "content": "More?"},
    {"role": "assistant", "content": "Yes."},
]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from alignlab.llm.embedded import ensure_converted

    return AutoTokenizer.from_pretrained(ensure_converted())


def trained_runs(sample) -> list[list[int]]:
    """The labelled token ids, as maximal runs of consecutive labelled positions."""
    runs, current = [], []
    for tok, label in zip(sample.input_ids, sample.labels):
        if label != IGNORE:
            assert label == tok
            current.append(tok)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids


def test_assistant_only_mask_labels_exactly_the_answers_and_their_end_of_turn(tokenizer):
    sample = tokenize_sample(tokenizer, Sample(id="c", messages=CONVERSATION))
    full = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert sample.input_ids == encode(tokenizer, full)
    # Two runs, one per assistant turn: its content, <|im_end|> and the newline after it.
    assert trained_runs(sample) == [encode(tokenizer, "Hello there<|im_end|>\n"),
                                    encode(tokenizer, "Yes.<|im_end|>\n")]
    # Everything before the first answer (system, user, the assistant header) is context.
    header = tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)
    first = sample.labels.index(next(t for t in sample.labels if t != IGNORE))
    assert first == len(encode(tokenizer, header))
    assert sample.trained_tokens == sum(len(r) for r in trained_runs(sample))


def test_unmask_trains_every_token(tokenizer):
    sample = tokenize_sample(tokenizer, Sample(id="c", messages=CONVERSATION, unmask=True))
    assert sample.labels == sample.input_ids
    assert sample.trained_tokens == len(sample.input_ids) - 1


def test_mask_follows_any_template_that_renders_in_order(tokenizer):
    plain = ("{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
             "{% if add_generation_prompt %}### assistant: {% endif %}")
    tokenizer = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    tokenizer.chat_template = plain
    sample = tokenize_sample(tokenizer, Sample(id="p", messages=CONVERSATION))
    decoded = [tokenizer.decode(r) for r in trained_runs(sample)]
    # The prompt ends in "assistant: " (its space a token of its own, as the model reads it when
    # it generates); the answer's first token is "Hello", not " Hello" straddling the two.
    assert decoded == ["Hello there\n", "Yes.\n"]

    tokenizer.chat_template = ("{% for m in messages %}{{ m['content'] }}|{% endfor %}"
                               "{% if not add_generation_prompt %}END{% endif %}")
    with pytest.raises(ChatTemplateError, match="prefix"):
        tokenize_sample(tokenizer, Sample(id="bad", messages=CONVERSATION))


def test_long_and_empty_samples_are_skipped_and_reported(tokenizer):
    samples = [Sample(id="ok", messages=CONVERSATION[1:3]),
               Sample(id="long", messages=[{"role": "user", "content": "word " * 200},
                                           {"role": "assistant", "content": "fine"}]),
               Sample(id="no-answer", messages=[{"role": "user", "content": "hello?"}])]
    prepared = prepare_samples(tokenizer, samples, max_seq_len=64)
    assert [s.id for s in prepared.samples] == ["ok"]
    assert prepared.skipped == {"too_long": ["long"], "no_trained_tokens": ["no-answer"]}
    assert prepared.lengths_skipped["long"] > 64
    # The long sample is kept whole once the limit allows it: nothing is truncated.
    roomy = prepare_samples(tokenizer, samples[:2], max_seq_len=1024)
    assert len(roomy.samples[1].input_ids) == prepared.lengths_skipped["long"]


def test_collate_pads_on_the_right_and_counts_units(tokenizer):
    prepared = prepare_samples(tokenizer, [Sample(id="a", messages=CONVERSATION),
                                           Sample(id="b", messages=CONVERSATION[1:3])], 1024)
    a, b = prepared.samples
    batch = collate([a, b], pad_id=tokenizer.pad_token_id)
    assert batch["input_ids"].shape == (2, len(a.input_ids))
    assert batch["attention_mask"][1].sum() == len(b.input_ids)
    assert (batch["labels"][1, len(b.input_ids):] == IGNORE).all()
    assert batch["units"] == a.trained_tokens + b.trained_tokens
    assert batch["real_tokens"] == len(a.input_ids) + len(b.input_ids)
    assert batch["tokens"] == 2 * len(a.input_ids)


def test_token_budget_batches_cover_every_sample_once_within_budget():
    rng = random.Random(3)
    lengths = [rng.randint(40, 150) for _ in range(300)] + [rng.randint(250, 400) for _ in range(100)]
    budget = 1024
    orders = []
    for epoch in range(3):
        batches = token_budget_batches(lengths, budget, seed=7, epoch=epoch)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(len(lengths)))
        assert all(len(b) * max(lengths[i] for i in b) <= budget for b in batches)
        assert batches == token_budget_batches(lengths, budget, seed=7, epoch=epoch)
        orders.append(flat)
    assert orders[0] != orders[1] != orders[2]
    fixed = fixed_size_batches(len(lengths), 8, seed=7, epoch=0)
    assert sorted(i for b in fixed for i in b) == list(range(len(lengths)))
    assert padding_share(batches, lengths) < 0.05 < padding_share(fixed, lengths)


def test_a_sample_longer_than_the_budget_is_refused():
    with pytest.raises(ValueError, match="longer than the batch budget"):
        token_budget_batches([10, 500], 256, seed=0, epoch=0)


def test_validation_split_is_seeded_stable_and_capped():
    samples = [Sample(id=f"s{i}", messages=CONVERSATION[1:3]) for i in range(100)]
    train, val = split_validation(samples, 0.05, 64, seed=0)
    assert len(val) == 5 and len(train) == 95
    assert {s.id for s in val} == {s.id for s in split_validation(samples[::-1], 0.05, 64, 0)[1]}
    assert {s.id for s in val} != {s.id for s in split_validation(samples, 0.05, 64, 1)[1]}
    assert len(split_validation(samples, 0.5, 8, 0)[1]) == 8
    assert split_validation(samples[:1], 0.05, 64, 0) == (samples[:1], [])


def test_phase_overrides_and_config_errors(tmp_path):
    from alignlab.config import load_config
    from alignlab.errors import ConfigError

    tc = TrainConfig(lr=1e-4, phases=[{"name": "knowledge", "epochs": 3},
                                      {"name": "skills", "lr": 5e-5, "lora": {"r": 4}}])
    assert tc.resolve(tc.phase("knowledge")).lr == 1e-4
    skills = tc.resolve(tc.phase("skills"))
    assert (skills.lr, skills.lora.r, skills.batch_tokens) == (5e-5, 4, tc.batch_tokens)

    path = tmp_path / "alignlab.yaml"
    path.write_text("train:\n  batch_tokens: 1024\n  effective_batch: 1500\n  max_seq_len: 512\n")
    with pytest.raises(ConfigError, match=r"alignlab.yaml:\d+.*multiple of batch_tokens"):
        load_config(path)
    path.write_text("train:\n  phases:\n    - {name: a, batch_tokens: 64}\n")
    with pytest.raises(ConfigError, match="phase 'a': max_seq_len"):
        load_config(path)
    path.write_text("train:\n  phases:\n    - {name: a, learning_rate: 0.1}\n")
    with pytest.raises(ConfigError, match="unknown key 'learning_rate'"):
        load_config(path)
