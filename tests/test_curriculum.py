"""Curriculum: pairs grouped by difficulty, stages in order, shuffled only within a stage."""

from __future__ import annotations

from collections import Counter

import pytest

from alignlab.errors import AlignlabError
from alignlab.records import Pair
from alignlab.train.curriculum import curriculum_batches, curriculum_order, curriculum_stages, stage_sizes


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


def _lengths(pairs, seed=0) -> dict[str, int]:
    import random

    rng = random.Random(seed)
    return {p.id: rng.choice([20, 30, 200, 400]) for p in pairs}


def _padded(batches, length) -> int:
    return sum(len(b) * max(map(length, b)) for b in batches)


@pytest.mark.parametrize("order", ["easy_to_hard", "hard_to_easy", "mixed"])
def test_batches_keep_the_curriculum_and_group_similar_lengths(order):
    pairs = [Pair(id=f"{p.id}-{k}", prompt=p.prompt, chosen=p.chosen, rejected=p.rejected, metadata=p.metadata)
             for k in range(4) for p in _pairs()]  # 48 pairs, 3 stages
    length = _lengths(pairs).__getitem__
    batches = curriculum_batches(pairs, 4, lambda p: length(p.id), order, seed=3, window=3)
    played = [p for b in batches for p in b]
    _assert_every_pair_once(played, pairs)
    assert [len(b) for b in batches] == [4] * 12
    plain = curriculum_order(pairs, order, seed=3)
    assert _difficulties(played) == _difficulties(plain) or order == "mixed"  # stage after stage
    # Reordered only within windows of 3 batches (12 pairs): a window holds the same pairs.
    for w in range(0, 48, 12):
        assert {p.id for p in played[w:w + 12]} == {p.id for p in plain[w:w + 12]}
    by_cut = [plain[i:i + 4] for i in range(0, 48, 4)]
    assert _padded(batches, lambda p: length(p.id)) < 0.8 * _padded(by_cut, lambda p: length(p.id))
