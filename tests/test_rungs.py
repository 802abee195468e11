"""Ladder rungs: the spec syntax, what each rung is asked, and — on the real embedded model —
that the default ladder's rungs all write fluent text."""

from __future__ import annotations

import pytest

from alignlab.errors import ConfigError
from alignlab.pairs.rungs import DEFAULT_LADDER, Rung, parse_rung, repetition_ratio, round_trips, rung_prompt
from alignlab.pairs.settings import PairsSettings

FLUENT = 0.5  # the pairs stage's bound for a degenerate answer (pairs.quality.DEGENERATE)


def test_rung_syntax():
    assert parse_rung("sft") == Rung("sft")
    assert parse_rung("teacher(context)") == Rung("teacher", context=True)
    assert parse_rung(" sft(context, temperature=1.2) ") == Rung("sft", 1.2, True)
    assert parse_rung("embedded:smollm2-135m?layers=12") == Rung("embedded:smollm2-135m?layers=12")
    assert parse_rung("student:knowledge(temperature=0.7)").model == "student:knowledge"
    assert Rung("sft", 1.2, True).label("m@abc") == "m@abc(context, temperature=1.2)"
    for bad, message in (("sft(temp=1)", "unknown setting"), ("sft(temperature=hot)", "number"),
                         ("sft(temperature=9)", r"\[0, 2\]"), ("openai:nowhere", "openai")):
        with pytest.raises(ConfigError, match=message):
            parse_rung(bad)
    with pytest.raises(ValueError, match="unknown setting"):
        PairsSettings(ladder=["teacher", "sft(hot)"])
    assert PairsSettings().ladder == list(DEFAULT_LADDER)
    assert not any("layers" in r for r in DEFAULT_LADDER)  # the default rungs stay fluent


def test_context_rung_reads_the_chunk_before_the_question_and_others_do_not():
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is Kelmarra?"}]
    chunk = "Kelmarra is an island in the northern sea."
    seen = rung_prompt(Rung("teacher", context=True), prompt, chunk)
    assert seen[0] == prompt[0] and seen[1]["content"] == f"{chunk}\n\nWhere is Kelmarra?"
    assert rung_prompt(Rung("sft"), prompt, chunk) == prompt
    assert rung_prompt(Rung("teacher", context=True), prompt, None) == prompt  # a skill prompt has no chunk
    assert prompt[1]["content"] == "Where is Kelmarra?"  # the pair's own prompt is untouched


def test_repetition_ratio_tells_a_loop_from_a_sentence():
    assert repetition_ratio("The island lies north of the mainland and has two ports .".split()) == 0.0
    assert repetition_ratio(". , and , and , and , and , and , and".split()) > FLUENT
    assert repetition_ratio(["a", "b"]) == 0.0  # too short to repeat


@pytest.fixture(scope="module")
def embedded():
    from alignlab.llm.config import BackendSettings
    from alignlab.llm.local import LocalBackend

    return LocalBackend.from_spec("embedded:smollm2-135m", BackendSettings(max_batch_size=4))


def test_default_ladder_rungs_write_fluent_text_on_the_embedded_model(embedded):
    """Every default rung played by the embedded model (teacher, student and SFT are all it
    before training): the answers round-trip through the tokenizer and do not loop."""
    from alignlab.llm.types import GenerationParams
    from alignlab.pairs.answers import rung_answers

    prompts = [[{"role": "user", "content": "Where is Kelmarra and what is it known for?"}],
               [{"role": "user", "content": "Write one sentence describing a red teapot."}]]
    chunks = ["Kelmarra is a small island in the northern sea, known for its basalt cliffs and its "
              "lighthouse, built in 1852.", None]
    # On one model the rungs differ only by their settings: play each distinct way once.
    ways = {parse_rung(text).settings: (text, parse_rung(text)) for text in DEFAULT_LADDER}
    ratios = {}
    for text, rung in ways.values():
        answers = rung_answers(embedded, rung, prompts, chunks, GenerationParams(max_tokens=24, seed=0))
        assert all(a and a.strip() for a in answers), (text, answers)
        assert all(round_trips(embedded.tokenizer, a) for a in answers), (text, answers)
        ratios[text] = max(repetition_ratio(a.split()) for a in answers)
    print("worst repetition ratio per rung:", ratios)
    assert len(ratios) == 3 and all(r < FLUENT for r in ratios.values()), ratios
