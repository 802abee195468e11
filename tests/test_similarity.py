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
