from alignlab.sdg.similarity import NoveltyPool, lcs_length, rouge_l, tokens


def test_rouge_l_known_values():
    assert lcs_length("a b c d".split(), "a c d e".split()) == 3
    assert rouge_l(tokens("the cat sat on the mat"), tokens("the cat sat on the mat")) == 1.0
    # LCS = "the cat the mat" (4): P = 4/6, R = 4/6
    assert abs(rouge_l(tokens("the cat sat on the mat"), tokens("the cat lay near the mat")) - 4 / 6) < 1e-9
    assert rouge_l([], tokens("x")) == 0.0


def test_pool_drops_instructions_at_or_above_the_threshold():
    pool = NoveltyPool(threshold=0.7)
    pool.add("Write a haiku about the sea.")
    ok, score, match = pool.admit("Write a haiku about the ocean.")  # 5 of 6 tokens shared
    assert not ok and score >= 0.7 and match == "Write a haiku about the sea."
    ok, score, _ = pool.admit("Describe how a bicycle gear works.")
    assert ok and score < 0.7
    assert len(pool.texts) == 2  # the rejected one did not join
    ok, _, match = pool.admit("Describe how a bicycle gear works!")
    assert not ok and match == "Describe how a bicycle gear works."


def test_the_indexed_pool_decides_as_comparing_with_every_text():
    """Near-repeats, reorderings, repeated words and unrelated texts: each admit's decision,
    and a rejection's score and closest text, equal those of the exhaustive comparison."""
    import random

    rng = random.Random(0)
    words = "write a short poem about the sea sky wind city river how does bicycle gear work".split()
    base = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(60)]
    texts = []
    for _ in range(600):
        t = rng.choice(base).split()
        for _ in range(rng.randint(0, 3)):  # small edits: near-repeats around the threshold
            t.insert(rng.randrange(len(t) + 1), rng.choice(words))
        texts.append(" ".join(t) if rng.random() > 0.02 else "")
    for threshold in (0.5, 0.7, 0.9, 1.0):
        pool = NoveltyPool(threshold)
        rejected = 0
        for text in texts:
            best, match = pool.closest(text)  # against every text admitted so far
            ok, score, closest = pool.admit(text)
            assert ok == (best < threshold), text
            if not ok:
                rejected += 1
                assert (score, closest) == (best, match)
        assert 0 < rejected < len(texts)
