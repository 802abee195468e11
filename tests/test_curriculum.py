"""Curriculum: pairs grouped by difficulty, stages in order, shuffled only within a stage."""

from __future__ import annotations

from collections import Counter

import pytest

from alignlab.errors import AlignlabError
from alignlab.records import Pair
from alignlab.train.curriculum import curriculum_order, curriculum_stages, stage_sizes


def _pairs() -> list[Pair]:
    msg = [{"role": "user", "content": "q"}]
    ans = [{"role": "assistant", "content": "a"}]
    levels = [1.0, 0.5, 1 / 3, 1.0, 0.5, 1 / 3, 1.0, 0.5, 1.0, 1.0, 0.5, 1 / 3]
    return [Pair(id=f"p{k:02d}", prompt=msg, chosen=ans, rejected=ans, metadata={"difficulty": d})
            for k, d in enumerate(levels)]


def _difficulties(pairs):
    return [p.metadata["difficulty"] for p in pairs]


def _assert_every_pair_once(ordered, pairs):
    assert Counter(p.id for p in ordered) == Counter(p.id for p in pairs)


def test_easy_to_hard_plays_stages_in_increasing_difficulty():
    pairs = _pairs()
    ordered = curriculum_order(pairs, "easy_to_hard", seed=3)
    _assert_every_pair_once(ordered, pairs)
    assert _difficulties(ordered) == sorted(_difficulties(pairs))
    assert stage_sizes(pairs, "easy_to_hard") == [(pytest.approx(1 / 3), 3), (0.5, 4), (1.0, 5)]


def test_hard_to_easy_plays_stages_in_decreasing_difficulty():
    pairs = _pairs()
    ordered = curriculum_order(pairs, "hard_to_easy", seed=3)
    _assert_every_pair_once(ordered, pairs)
    assert _difficulties(ordered) == sorted(_difficulties(pairs), reverse=True)


def test_mixed_is_one_shuffled_stage():
    pairs = _pairs()
    assert len(curriculum_stages(pairs, "mixed")) == 1
    ordered = curriculum_order(pairs, "mixed", seed=3)
    _assert_every_pair_once(ordered, pairs)
    assert _difficulties(ordered) != sorted(_difficulties(pairs))
    # mixed needs no difficulty at all
    bare = [Pair(id=p.id, prompt=p.prompt, chosen=p.chosen, rejected=p.rejected) for p in pairs]
    _assert_every_pair_once(curriculum_order(bare, "mixed"), bare)


def test_shuffle_is_within_stage_seeded_and_varies_by_epoch():
    pairs = _pairs()
    first = curriculum_order(pairs, "easy_to_hard", seed=1, epoch=0)
    assert [p.id for p in first] == [p.id for p in curriculum_order(list(reversed(pairs)), "easy_to_hard",
                                                                      seed=1, epoch=0)]
    orders = {tuple(p.id for p in curriculum_order(pairs, "easy_to_hard", seed=s, epoch=e))
              for s in range(3) for e in range(3)}
    assert len(orders) > 1  # the seed and the epoch change the order inside stages...
    for order in orders:  # ...never the stage order
        by_id = {p.id: p for p in pairs}
        assert [by_id[i].metadata["difficulty"] for i in order] == sorted(_difficulties(pairs))


def test_missing_or_bad_difficulty_is_a_clear_error():
    pairs = _pairs()
    pairs[4].metadata = {}
    with pytest.raises(AlignlabError, match="p04.*difficulty"):
        curriculum_order(pairs, "easy_to_hard")
    with pytest.raises(AlignlabError, match="unknown curriculum order"):
        curriculum_order(_pairs(), "random")
