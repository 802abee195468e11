import json
import random
from pathlib import Path

import numpy as np
import pytest
from test_curate_fixtures import FakeBackend, random_text, sample, vocabulary

from alignlab.config import Config
from alignlab.curate.config import (
    CritiqueReviseStep, DecontaminateStep, DiversityStep, QualityStep, StyleStep,
)
from alignlab.curate.critique import critique_revise, draw_principle
from alignlab.curate.decontaminate import decontaminate
from alignlab.curate.diversity import diversity, select_diverse
from alignlab.curate.embed import HashedEmbedder, ModelEmbedder
from alignlab.curate.quality import quality
from alignlab.curate.steps import StepContext
from alignlab.curate.style import style
from alignlab.errors import ConfigError

JUDGE = "embedded:smollm2-135m"


# ------------------------------------------------------------------ quality

def test_quality_keeps_at_threshold_judges_missing_scores_once_and_exempts_chunks():
    judge = FakeBackend(reply=lambda r: "2" if "bad answer" in r.messages[1]["content"] else "5")
    samples = [sample("hi", "q1", "a1", quality=4.5), sample("lo", "q2", "a2", quality=4.4),
               sample("new-good", "q3", "fine answer", quality=None),
               sample("new-bad", "q4", "bad answer", quality=None),
               sample("chunk", "Read this.", "document text", unmask=True, quality=None)]
    verdicts = quality(samples, QualityStep(), StepContext(Config(), backends={JUDGE: judge}))
    assert [v.keep for v in verdicts] == [True, False, True, False, True]
    assert verdicts[1].reason == "low_quality" and verdicts[1].detail["score"] == 4.4
    assert len(judge.generate_calls) == 1 and len(judge.generate_calls[0]) == 2  # one batch, two missing
    judged = verdicts[2].sample.metadata["judges"]["quality"]
    assert judged["score"] == 5.0 and judged["model"] == "fake-model" and judged["stage"] == "curate"
    assert verdicts[3].sample.metadata["judges"]["quality"]["score"] == 2.0


def test_quality_reports_unreadable_judgements():
    judge = FakeBackend(reply=lambda r: "I cannot grade this")
    verdicts = quality([sample("x", "q", "a", quality=None)], QualityStep(threshold=3),
                       StepContext(Config(), backends={JUDGE: judge}))
    assert not verdicts[0].keep and verdicts[0].reason == "unscored"


# ------------------------------------------------------------------ decontamination

def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_decontamination_drops_injected_eval_questions(tmp_path):
    long_q = ("Which river flows through the old capital of Kelmarra and empties into the Brindic Sea "
              "near the harbour town?")
    write_jsonl(tmp_path / "evals/chat.jsonl", [{"id": "e1", "messages": [{"role": "user", "content": long_q},
                                                                          {"role": "assistant", "content": "x"}]}])
    write_jsonl(tmp_path / "taxonomy/knowledge/geo/kel/heldout_mcq.jsonl",
                [{"id": "m1", "question": "What is the capital of Kelmarra?", "choices": ["A", "B"], "answer": 0}])
    cfg = Config(taxonomy=str(tmp_path / "taxonomy"))
    cfg._base_dir = tmp_path
    contaminated_long = ("Quick quiz: which RIVER flows through the old capital of Kelmarra, "
                         "and empties into the brindic sea?")
    samples = [sample("clean", "Tell me about rivers in general.", "Rivers flow to the sea."),
               sample("long", contaminated_long, "The Velm."),
               sample("short", "Trivia time. What is the capital of Kelmarra", "Port Halvenna."),
               sample("near-miss", "What is the capital of Kelmarran cuisine?", "Stew."),
               # 12 shared words are not 13: kept
               sample("twelve", "which river flows through the old capital of Kelmarra and empties into", "?")]
    verdicts = decontaminate(samples, DecontaminateStep(eval_sets=["evals/chat.jsonl"]), StepContext(cfg))
    assert [v.keep for v in verdicts] == [True, False, False, True, True]
    assert verdicts[1].detail["eval_set"] == "evals/chat.jsonl" and verdicts[1].detail["eval_id"] == "e1"
    assert len(verdicts[1].detail["ngram"].split()) == 13
    assert verdicts[2].detail["eval_set"].endswith("heldout_mcq.jsonl")
    assert verdicts[2].detail["ngram"] == "what is the capital of kelmarra"
    # The taxonomy's held-out questions can be left out.
    off = decontaminate(samples, DecontaminateStep(eval_sets=["evals/chat.jsonl"], taxonomy_heldout=False),
                        StepContext(cfg))
    assert [v.keep for v in off] == [True, False, True, True, True]


def test_decontamination_missing_eval_set_is_a_config_error(tmp_path):
    cfg = Config(taxonomy=str(tmp_path))
    with pytest.raises(ConfigError, match="missing.jsonl not found"):
        decontaminate([sample("a", "q", "a")], DecontaminateStep(eval_sets=["missing.jsonl"]), StepContext(cfg))


# ------------------------------------------------------------------ diversity

def clustered_texts(seed=0, clusters=40, variants=5):
    """Texts in clusters of near-identical variants, shuffled."""
    rng = random.Random(seed)
    vocab = vocabulary(rng)
    texts = []
    for _ in range(clusters):
        base = random_text(rng, vocab, 60).split()
        for _ in range(variants):
            variant = list(base)
            variant[rng.randrange(len(variant))] = rng.choice(vocab)
            texts.append(" ".join(variant))
    rng.shuffle(texts)
    return texts


@pytest.mark.parametrize("budget", [None, 25])
def test_diversity_selection_never_accepts_two_above_threshold_and_respects_budget(budget):
    texts = clustered_texts()
    embedder = HashedEmbedder(256)
    choices = select_diverse(texts, embedder, threshold=0.9, budget=budget, block=16)
    accepted = [i for i, c in enumerate(choices) if c.accepted]
    vecs = embedder.embed([texts[i] for i in accepted])
    sims = vecs @ vecs.T - 2 * np.eye(len(accepted))
    assert sims.max() <= 0.9 + 1e-6
    assert len(accepted) == (40 if budget is None else 25)  # one per cluster, or the budget
    for c in choices:  # every rejection names an accepted, too-similar sample
        if not c.accepted and not c.over_budget:
            assert choices[c.nearest].accepted and c.cosine > 0.9
    # Blocks only make it faster: the result is the sequential greedy one.
    unblocked = select_diverse(texts, embedder, 0.9, budget, block=1000)
    assert [(c.accepted, c.nearest, c.over_budget) for c in unblocked] == \
        [(c.accepted, c.nearest, c.over_budget) for c in choices]
    assert np.allclose([c.cosine for c in unblocked], [c.cosine for c in choices], atol=1e-5)


def test_diversity_prefers_the_best_scored_sample_of_each_cluster():
    texts = clustered_texts(seed=1, clusters=10, variants=3)
    rng = random.Random(0)
    samples = [sample(f"s{i}", "Describe it.", t, quality=rng.uniform(1, 5)) for i, t in enumerate(texts)]
    verdicts = diversity(samples, DiversityStep(score="quality", dim=256), StepContext(Config()))
    kept = [s for s, v in zip(samples, verdicts) if v.keep]
    assert len(kept) == 10
    by_id = {s.id: s for s in samples}
    for s, v in zip(samples, verdicts):
        if not v.keep:
            assert v.reason == "too_similar"
            better = by_id[v.detail["to"]]
            assert better.metadata["judges"]["quality"]["score"] >= s.metadata["judges"]["quality"]["score"]


def test_model_embedder_mean_pools_a_local_model(tiny_model_dir):
    embedder = ModelEmbedder(str(tiny_model_dir), batch_size=2)
    vecs = embedder.embed(["a short text", "a somewhat longer text with more words in it", "a short text"])
    assert vecs.shape == (3, 64)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vecs[0], vecs[2], atol=1e-5)  # padding in a batch does not change a text's vector


# ------------------------------------------------------------------ style

MAJORITY = [
    "The {w} is a common sight in the valley. It grows best near water and in light shade. "
    "Farmers value it for its steady yield.",
    "A {w} usually lasts for several seasons. It needs little care once it is established. "
    "Most people plant it in early spring.",
    "The {w} was first described two centuries ago. It spread quickly along the trade routes. "
    "Today it is found in many gardens.",
]
OUTLIERS = {
    "shouting": "WOW!!! THE {W} IS AMAZING!!! YOU WILL LOVE IT!!! BUY ONE NOW!!!",
    "listy": "# {w}\n\n- **colour**: green\n- **height**: tall\n- `size`: large\n- **age**: old\n"
             "- **care**: easy\n\n## Notes\n\n| a | b |\n| c | d |",
    "terse": "{w}",
}


def style_set():
    rng = random.Random(0)
    vocab = vocabulary(rng, 200)
    samples = [sample(f"m{i}", f"Tell me about the {w}.", MAJORITY[i % 3].format(w=w))
               for i, w in enumerate(rng.sample(vocab, 27))]
    samples += [sample(name, "Tell me about the fern.", text.format(w="fern", W="FERN"))
                for name, text in OUTLIERS.items()]
    return samples


def test_style_ranking_prefers_the_majority_style_over_outliers():
    samples = style_set()
    verdicts = style(samples, StyleStep(keep_fraction=27 / 30, surprisal=False), StepContext(Config()))
    rejected = {s.id for s, v in zip(samples, verdicts) if not v.keep}
    assert rejected == set(OUTLIERS)
    assert all(v.reason == "style_outlier" for v in verdicts if not v.keep)


def test_style_surprisal_alone_separates_an_unpredictable_answer():
    samples = [sample(f"m{i}", "Tell me about the fern.", MAJORITY[0].format(w="fern")) for i in range(12)]
    samples[5].messages[1]["content"] = MAJORITY[0].format(w="fern").replace("valley", "vallee")
    # Same form for all; the reference model finds one answer far less predictable.
    backend = FakeBackend(loglik=lambda r: (-9.0 * 20 if "vallee" in r.continuation else -2.0 * 20, 20))
    verdicts = style(samples, StyleStep(keep_fraction=11 / 12), StepContext(Config(), backends={JUDGE: backend}))
    assert [i for i, v in enumerate(verdicts) if not v.keep] == [5]
    assert verdicts[5].detail["surprisal"] == 9.0
    assert backend.score_calls and backend.score_calls[0][0].context[0]["role"] == "user"


def test_style_with_a_tiny_model_for_surprisal(tiny_model_dir, tiny_backend):
    samples = style_set()
    verdicts = style(samples, StyleStep(keep_fraction=27 / 30, model=str(tiny_model_dir)),
                     StepContext(Config(), backends={str(tiny_model_dir): tiny_backend}))
    rejected = {s.id for s, v in zip(samples, verdicts) if not v.keep}
    assert rejected == set(OUTLIERS)


def test_small_style_groups_are_kept_whole():
    samples = style_set()[:5] + style_set()[-1:]
    verdicts = style(samples, StyleStep(keep_fraction=0.5, surprisal=False), StepContext(Config()))
    assert all(v.keep for v in verdicts)


# ------------------------------------------------------------------ critique and revise

def scripted_teacher():
    def reply(request):
        if request.messages[-1]["role"] == "assistant":  # the critique template's prefill
            return " The answer is too vague."
        answer = request.messages[1]["content"].split("Answer: ", 1)[1].split("\n", 1)[0]
        return "" if answer == "leave me" else f"Revised answer: {answer.upper()} (clearer)."
    return FakeBackend(reply=reply, model_id="teacher-x")


def test_critique_revise_replaces_the_answer_and_keeps_the_original_in_lineage():
    teacher = scripted_teacher()
    samples = [sample("a", "Explain tides.", "the moon does it"), sample("b", "Say hi.", "leave me"),
               sample("c", "Read.", "chunk text", unmask=True)]
    step = CritiqueReviseStep(principles=["Be precise.", "Be kind.", "Be brief."])
    cfg = Config()
    verdicts = critique_revise(samples, step, StepContext(cfg, backends={cfg.models.teacher: teacher}))
    assert len(teacher.generate_calls) == 2  # all critiques in one batch, all revisions in another
    assert [len(c) for c in teacher.generate_calls] == [2, 2]
    revised = verdicts[0].sample
    assert revised.response == "THE MOON DOES IT (clearer)."
    lineage = revised.metadata["revised"]
    assert lineage["original"] == "the moon does it" and lineage["critique"] == "The answer is too vague."
    assert lineage["principle"] == draw_principle(step.principles, cfg.seed, "a") in step.principles
    assert set(revised.metadata["templates"]) >= {"curate_critique", "curate_revise"}
    assert samples[0].response == "the moon does it"  # the input sample is not modified
    kept = verdicts[1].sample
    assert kept.response == "leave me" and kept.metadata["unrevised"]["reason"] == "empty revision"
    assert verdicts[1].note == "unrevised" and verdicts[0].note == "revised"
    assert verdicts[2].sample is None  # document chunks are left alone


def test_principles_are_drawn_per_sample_deterministically():
    principles = [f"p{i}" for i in range(10)]
    draws = [draw_principle(principles, 0, f"id{i}") for i in range(50)]
    assert draws == [draw_principle(principles, 0, f"id{i}") for i in range(50)]
    assert len(set(draws)) > 3  # not always the same principle
    assert draws != [draw_principle(principles, 1, f"id{i}") for i in range(50)]


def test_decontamination_drops_the_judged_skill_prompts(tmp_path):
    import shutil

    shutil.copytree(Path(__file__).parent.parent / "examples" / "taxonomy", tmp_path / "taxonomy")
    cfg = Config(taxonomy=str(tmp_path / "taxonomy"))
    cfg._base_dir = tmp_path
    from alignlab.evaluate.judged import skill_prompts, user_message

    held_out = user_message(skill_prompts(cfg.taxonomy_path)[0])
    samples = [sample("copy", held_out, "An answer."), sample("new", "Describe a kettle in two sentences.", "x")]
    verdicts = decontaminate(samples, DecontaminateStep(), StepContext(cfg))
    assert [v.keep for v in verdicts] == [False, True]
    assert verdicts[0].detail["eval_set"].endswith("(judged prompt)")
