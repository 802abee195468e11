import random

import numpy as np
from datasketch import MinHash
from test_curate_fixtures import random_text, sample, vocabulary

from alignlab.config import Config
from alignlab.curate.config import DedupStep
from alignlab.curate.dedup import dedup, find_duplicates, minhash_signatures
from alignlab.curate.steps import StepContext
from alignlab.curate.text import corpus_ngrams, normalize


def edit(text: str, rng: random.Random, vocab: list[str], n_edits: int) -> str:
    """A copy with a few small edits: adjacent swaps, insertions, deletions, case changes."""
    toks = text.split()
    for _ in range(n_edits):
        kind = rng.choice(["swap", "insert", "delete", "case"])
        i = rng.randrange(len(toks) - 1)
        if kind == "swap":
            toks[i], toks[i + 1] = toks[i + 1], toks[i]
        elif kind == "insert":
            toks.insert(i, rng.choice(vocab))
        elif kind == "delete":
            del toks[i]
        else:
            toks[i] = toks[i].upper()
    return " ".join(toks)


def make_corpus(seed: int = 0):
    """300 distinct samples (some sharing an instruction template) and edited copies of 100."""
    rng = random.Random(seed)
    vocab = vocabulary(rng)
    topics = rng.sample(vocab, 100)
    originals = []
    for i in range(300):
        instruction = (f"Write a short poem about the {topics[i // 3]}" if i % 3 == 0
                       else random_text(rng, vocab, rng.randint(8, 20)))
        originals.append(sample(f"orig{i}", instruction, random_text(rng, vocab, rng.randint(200, 300))))
    copies = []
    for k, i in enumerate(rng.sample(range(300), 100)):
        o = originals[i]
        n_edits = rng.randint(1, 3)
        # Edits land in the instruction or the response, as they would in a re-generated sample.
        if rng.random() < 0.3:
            instruction, response = edit(o.instruction, rng, vocab, 1), edit(o.response, rng, vocab, n_edits - 1)
        else:
            instruction, response = o.instruction, edit(o.response, rng, vocab, n_edits)
        copies.append((sample(f"copy{k}", instruction, response), o.id))
    return originals, copies


def test_near_duplicates_found_with_high_recall_and_precision():
    originals, copies = make_corpus()
    rng = random.Random(1)
    mixed = originals + [c for c, _ in copies]
    # Copies come after their originals (first occurrence wins), otherwise in random order.
    rng.shuffle(copies)
    samples = originals + [c for c, _ in copies]
    source = {c.id: o for c, o in copies}
    verdicts = dedup(samples, DedupStep(), StepContext(Config()))
    flagged = {s.id: v for s, v in zip(samples, verdicts) if not v.keep}
    true_pos = sum(1 for sid, v in flagged.items() if source.get(sid) == v.detail["of"])
    recall = true_pos / len(copies)
    precision = true_pos / max(len(flagged), 1)
    assert recall >= 0.95, (recall, [sid for sid in source if sid not in flagged])
    assert precision >= 0.95, (precision, [sid for sid in flagged if sid not in source])
    assert not any(sid.startswith("orig") for sid in flagged)  # every distinct sample is kept
    assert {v.reason for v in flagged.values()} <= {"duplicate", "near_duplicate"}
    assert len(mixed) == len(samples)


def test_exact_duplicates_ignore_case_spacing_and_punctuation():
    samples = [sample("a", "What is a haiku?", "A short poem."),
               sample("b", "what is a   HAIKU", "a short poem!!"),
               sample("c", "What is a sonnet?", "A longer poem.")]
    verdicts = dedup(samples, DedupStep(fields=["conversation"]), StepContext(Config()))
    assert [v.keep for v in verdicts] == [True, False, True]
    assert verdicts[1].reason == "duplicate" and verdicts[1].detail["of"] == "a"


def test_instruction_field_catches_same_question_with_other_answer():
    samples = [sample("a", "Explain how tides work in two sentences.", "The moon pulls the sea."),
               sample("b", "Explain how tides work in two sentences!", "Gravity of moon and sun.")]
    assert [v.keep for v in dedup(samples, DedupStep(), StepContext(Config()))] == [True, False]
    assert [v.keep for v in dedup(samples, DedupStep(fields=["conversation"]), StepContext(Config()))] == [True, True]


def test_document_chunks_compared_on_their_text_not_their_wrapper():
    rng = random.Random(3)
    vocab = vocabulary(rng)
    text1, text2 = random_text(rng, vocab, 120), random_text(rng, vocab, 120)
    chunk = lambda sid, t: sample(sid, "Read the following document.", t, kind="knowledge",  # noqa: E731
                                  generator="knowledge_chunk", unmask=True)
    samples = [chunk("c1", text1), chunk("c2", text2), chunk("c3", text1.replace(" ", "  ") + " end")]
    verdicts = dedup(samples, DedupStep(), StepContext(Config()))
    assert [v.keep for v in verdicts] == [True, True, False]
    assert verdicts[2].detail == {"of": "c1", "field": "conversation", "jaccard": verdicts[2].detail["jaccard"]}


def test_signatures_equal_datasketch_affine32_minhash():
    hashes, offsets = corpus_ngrams(["the quick brown fox jumps over the lazy dog today", "", "two words"], 3)
    ours = minhash_signatures(hashes, offsets, num_perm=64)
    for doc in range(3):
        reference = MinHash(num_perm=64, scheme="affine32", hashfunc=lambda x: x)
        reference.update_batch([int(h) & 0xFFFFFFFF for h in hashes[offsets[doc]:offsets[doc + 1]]])
        assert np.array_equal(ours[doc], reference.hashvalues)


def test_find_duplicates_on_plain_texts():
    texts = ["alpha beta gamma delta epsilon zeta eta theta iota kappa"] * 2 + ["completely different words here"]
    found = find_duplicates(texts, jaccard=0.8)
    assert found[0] is None and found[1].of == 0 and found[1].kind == "duplicate" and found[2] is None
    assert normalize("  Hello,   WORLD!! ") == "hello world"
