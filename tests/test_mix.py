import json
import textwrap
from collections import Counter

import pytest
from test_curate_fixtures import sample, write_stage_output

from alignlab.config import load_config
from alignlab.errors import ConfigError
from alignlab.mix.stage import mix, summary_tables
from alignlab.store import read_jsonl

NO_TOKENIZER = "openai:http://127.0.0.1:9/v1#none"  # a served student: tokens are estimated

RECIPE = """\
name: demo
models: {{student: "{student}"}}
mix:
  seed: {seed}
  phases:
    - name: knowledge
      sources:
        - {{select: {{leaf_kind: knowledge}}}}
    - name: skills
      sources:
        - {{select: {{leaf_kind: [freeform_skill, grounded_skill]}}, ratio: 0.5}}
        - {{phase: knowledge, ratio: 0.2}}
        - {{file: data/general.jsonl, count: 5}}
"""


def curated():
    rows = [sample(f"k{i}", f"Knowledge question {i}?", f"Answer {i}.", leaf="knowledge/geo/kel",
                   kind="knowledge", generator="knowledge_qa") for i in range(50)]
    rows += [sample(f"c{i}", "Read this document.", f"Chunk text {i}.", leaf="knowledge/geo/kel",
                    kind="knowledge", generator="knowledge_chunk", unmask=True) for i in range(10)]
    rows += [sample(f"f{i}", f"Write poem {i}.", f"Poem {i}.") for i in range(30)]
    rows += [sample(f"g{i}", f"Summarise context {i}.", f"Summary {i}.", leaf="compositional_skills/grounded/sum",
                    kind="grounded_skill", generator="grounded") for i in range(9)]
    return rows


def workspace(tmp_path, seed=0, student=NO_TOKENIZER, recipe=RECIPE, name="demo"):
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    (tmp_path / "data/general.jsonl").write_text("".join(
        json.dumps({"messages": [{"role": "user", "content": f"General {i}?"},
                                 {"role": "assistant", "content": f"Reply {i}."}]}) + "\n" for i in range(8)))
    text = recipe.format(seed=seed, student=student).replace("name: demo", f"name: {name}")
    (tmp_path / "alignlab.yaml").write_text(text)
    return load_config(tmp_path / "alignlab.yaml")


def phase_rows(tmp_path, phase, name="demo"):
    return list(read_jsonl(tmp_path / f"runs/{name}/mix/{phase}.jsonl"))


def test_recipe_sizes_are_exact_and_sources_labelled(tmp_path):
    cfg = workspace(tmp_path)
    write_stage_output(cfg, "curate", curated())
    manifest = mix(cfg)
    knowledge, skills = phase_rows(tmp_path, "knowledge"), phase_rows(tmp_path, "skills")
    assert len(knowledge) == 60 and sum(r["unmask"] for r in knowledge) == 10  # Q&A plus document chunks
    sources = Counter(r["metadata"]["source"] for r in skills)
    # 39 skill samples x 0.5 = 19.5, rounded half up; a fifth of phase 1's 60; exactly 5 of the file's 8
    assert sources == {"curated[leaf_kind=freeform_skill|grounded_skill]": 20, "replay:knowledge": 12,
                       "file:data/general.jsonl": 5}
    assert all(r["metadata"]["phase"] == "skills" for r in skills)
    assert len({r["id"] for r in skills}) == len(skills)
    assert {r["id"] for r in skills if r["metadata"]["source"] == "replay:knowledge"} <= {r["id"] for r in knowledge}
    assert set(skills[0]) == {"id", "messages", "unmask", "metadata"}
    summary = json.loads((tmp_path / "runs/demo/mix/summary.json").read_text())
    assert summary == manifest["counts"]
    assert summary["phases"]["skills"]["rows"] == 37 and summary["tokens_counted_by"] == "estimate: chars/4"
    assert summary["phases"]["skills"]["sources"]["replay:knowledge"]["available"] == 60
    assert summary["phases"]["knowledge"]["leaves"] == {"knowledge/geo/kel": 60}
    assert summary["phases"]["skills"]["tokens"] > 0
    assert summary_tables(summary)


def test_sampling_is_deterministic_for_a_seed(tmp_path):
    a = workspace(tmp_path / "a", seed=7)
    write_stage_output(a, "curate", curated())
    mix(a)
    b = workspace(tmp_path / "b", seed=7)
    write_stage_output(b, "curate", curated())
    mix(b)
    c = workspace(tmp_path / "c", seed=8)
    write_stage_output(c, "curate", curated())
    mix(c)
    rows = {k: phase_rows(tmp_path / k, "skills") for k in "abc"}
    assert rows["a"] == rows["b"]
    assert [r["id"] for r in rows["a"]] != [r["id"] for r in rows["c"]]
    assert Counter(r["metadata"]["source"] for r in rows["a"]) == Counter(r["metadata"]["source"] for r in rows["c"])


def test_more_than_available_is_an_error_unless_replace(tmp_path):
    recipe = RECIPE.replace("{{file: data/general.jsonl, count: 5}}", "{{file: data/general.jsonl, count: 20}}")
    cfg = workspace(tmp_path, recipe=recipe)
    write_stage_output(cfg, "curate", curated())
    with pytest.raises(ConfigError, match=r"alignlab.yaml:13:\d+: .*asks file:data/general.jsonl for 20 rows "
                                          r"but it holds 8"):
        mix(cfg)
    assert not (tmp_path / "runs/demo/mix/knowledge.jsonl").exists()  # nothing written

    cfg = workspace(tmp_path, recipe=recipe.replace("count: 20}}", "count: 20, replace: true}}"))
    mix(cfg)
    from_file = Counter(r["messages"][0]["content"] for r in phase_rows(tmp_path, "skills")
                        if r["metadata"]["source"] == "file:data/general.jsonl")
    assert sum(from_file.values()) == 20 and len(from_file) == 8
    assert sorted(from_file.values()) == [2, 2, 2, 2, 3, 3, 3, 3]  # each twice, 4 of them a third time


@pytest.mark.parametrize("old, new, line, message", [
    ("{{file: data/general.jsonl, count: 5}}", "{{file: data/missing.jsonl, count: 5}}", 13,
     "source file data/missing.jsonl not found"),
    ("{{phase: knowledge, ratio: 0.2}}", "{{phase: knowlege, ratio: 0.2}}", 12,
     "replayed phase 'knowlege' is not a phase"),
    ("{{phase: knowledge, ratio: 0.2}}", "{{phase: skills, ratio: 0.2}}", 12, "is this phase itself"),
    ("{{select: {{leaf_kind: knowledge}}}}", "{{select: {{leaf_knd: knowledge}}}}", 8, "unknown key 'leaf_knd'"),
    ("{{select: {{leaf_kind: knowledge}}}}", "{{dataset: knowledge}}", 8, "unknown key 'dataset'"),
    ("{{select: {{leaf_kind: knowledge}}}}", "{{select: {{leaf_kind: knowlege}}}}", 8, "leaf_kind"),
    ("{{phase: knowledge, ratio: 0.2}}", "{{phase: knowledge, file: data/general.jsonl}}", 12, "exactly one of"),
])
def test_recipe_errors_point_at_their_line_before_any_work(tmp_path, old, new, line, message):
    assert old in RECIPE
    with pytest.raises(ConfigError) as err:
        cfg = workspace(tmp_path, recipe=RECIPE.replace(old, new))
        mix(cfg)  # no curate stage yet: the recipe is checked before anything else
    assert f"alignlab.yaml:{line}:" in str(err.value) and message in str(err.value)
    assert not (tmp_path / "runs/demo/mix").exists()


def test_a_recipe_in_its_own_file(tmp_path):
    (tmp_path / "recipes/data").mkdir(parents=True)
    (tmp_path / "recipes/data/extra.jsonl").write_text(json.dumps(
        {"id": "x1", "messages": [{"role": "user", "content": "Hi"},
                                  {"role": "assistant", "content": "Hello"}]}) + "\n")
    (tmp_path / "recipes/two_phase.yaml").write_text(textwrap.dedent("""\
        seed: 3
        phases:
          - name: knowledge
            sources:
              - select: {generator: knowledge_chunk}
          - name: skills
            sources:
              - select: {leaf: "compositional_skills/*"}
                count: 4
              - file: data/extra.jsonl
        """))
    config = f'name: demo\nmodels: {{student: "{NO_TOKENIZER}"}}\nmix:\n  recipe: recipes/two_phase.yaml\n'
    (tmp_path / "alignlab.yaml").write_text(config)
    cfg = load_config(tmp_path / "alignlab.yaml")
    write_stage_output(cfg, "curate", curated())
    summary = mix(cfg)["counts"]
    assert summary["seed"] == 3
    assert summary["phases"]["knowledge"]["rows"] == 10 and summary["phases"]["skills"]["rows"] == 5
    # An error inside the recipe file points at that file's line.
    recipe = tmp_path / "recipes/two_phase.yaml"
    recipe.write_text(recipe.read_text().replace("file: data/extra.jsonl", "file: data/nope.jsonl"))
    with pytest.raises(ConfigError, match=r"two_phase.yaml:10:\d+: source file data/nope.jsonl not found"):
        mix(cfg)
    (tmp_path / "alignlab.yaml").write_text(config + "  seed: 4\n")
    with pytest.raises(ConfigError, match="put seed and phases there"):
        load_config(tmp_path / "alignlab.yaml")


def test_mix_is_skipped_on_a_second_call_and_reruns_when_a_file_changes(tmp_path):
    cfg = workspace(tmp_path)
    write_stage_output(cfg, "curate", curated())
    first = mix(cfg)
    again = mix(cfg)
    assert again["fingerprint"] == first["fingerprint"] and again["timings"] == first["timings"]
    with open(tmp_path / "data/general.jsonl", "a") as f:
        f.write(json.dumps({"messages": [{"role": "user", "content": "New?"}]}) + "\n")
    assert mix(cfg)["fingerprint"] != first["fingerprint"]


def test_tokens_counted_with_the_students_tokenizer(tmp_path, tiny_model_dir):
    cfg = workspace(tmp_path, student=str(tiny_model_dir))
    write_stage_output(cfg, "curate", curated())
    summary = mix(cfg)["counts"]
    assert summary["tokens_counted_by"].startswith("tokenizer of")
    # The chat template adds role markers, so there are more tokens than words.
    words = sum(len(m["content"].split()) for r in phase_rows(tmp_path, "knowledge") for m in r["messages"])
    assert summary["phases"]["knowledge"]["tokens"] > words


# Skills whole, and a replay of 30 % of phase 1's tokens (rather than of its rows).
TOKEN_RECIPE = RECIPE.replace(", ratio: 0.5}}", "}}").replace("{{phase: knowledge, ratio: 0.2}}",
                                                              "{{phase: knowledge, token_ratio: 0.3}}")


def long_and_short_knowledge():
    """Q&A rows of ~3 tokens and document chunks of ~250: rows and tokens disagree."""
    rows = [sample(f"k{i}", f"Q{i}?", f"A{i}.", leaf="knowledge/geo/kel", kind="knowledge",
                   generator="knowledge_qa") for i in range(40)]
    rows += [sample(f"c{i}", "Read.", "word " * 250, leaf="knowledge/geo/kel", kind="knowledge",
                    generator="knowledge_chunk", unmask=True) for i in range(10)]
    rows += [sample(f"f{i}", f"Write poem {i}.", f"Poem {i}.") for i in range(5)]
    return rows


def test_replay_sized_by_tokens_reaches_its_share_of_the_tokens(tmp_path):
    from alignlab.mix.stage import token_counter

    cfg = workspace(tmp_path, recipe=TOKEN_RECIPE)
    write_stage_output(cfg, "curate", long_and_short_knowledge())
    manifest = mix(cfg)
    count, _ = token_counter(cfg)
    knowledge, skills = phase_rows(tmp_path, "knowledge"), phase_rows(tmp_path, "skills")
    replayed = [r for r in skills if r["metadata"]["source"] == "replay:knowledge"]
    from alignlab.records import Sample

    def tokens(rows):
        return sum(count([Sample(r["id"], r["messages"], r["unmask"], r["metadata"]) for r in rows]))
    budget = 0.3 * tokens(knowledge)
    longest = max(count([Sample(r["id"], r["messages"], r["unmask"], r["metadata"]) for r in knowledge]))
    # The replay reaches its budget and passes it by less than one row (rows are never cut).
    assert budget <= tokens(replayed) < budget + longest
    assert manifest["counts"]["phases"]["skills"]["sources"]["replay:knowledge"]["asked"] == "token_ratio 0.3"
    # Same seed, same draw.
    again = workspace(tmp_path / "again", recipe=TOKEN_RECIPE)
    write_stage_output(again, "curate", long_and_short_knowledge())
    mix(again)
    assert [r["id"] for r in phase_rows(tmp_path / "again", "skills")] == [r["id"] for r in skills]


def test_a_source_takes_one_size_only(tmp_path):
    recipe = TOKEN_RECIPE.replace("token_ratio: 0.3", "token_ratio: 0.3, count: 4")
    with pytest.raises(ConfigError, match="one size"):
        workspace(tmp_path, recipe=recipe)


def test_each_phase_is_also_written_as_instructlab_training_reads_it(tmp_path):
    from datasets import load_dataset

    cfg = workspace(tmp_path)
    write_stage_output(cfg, "curate", curated())
    summary = mix(cfg)["counts"]
    folder = tmp_path / "runs/demo/mix/instructlab"
    assert summary["instructlab_files"] == ["knowledge_train_msgs_demo.jsonl", "skills_train_msgs_demo.jsonl"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(summary["instructlab_files"])
    for phase, name in zip(("knowledge", "skills"), summary["instructlab_files"]):
        ours = phase_rows(tmp_path, phase)
        # The call InstructLab's training makes (instructlab.training.data_process).
        data = load_dataset("json", data_files=str(folder / name), split="train", cache_dir=str(tmp_path / "hf"))
        assert len(data) == len(ours) and "messages" in data.column_names
        for row, theirs in zip(ours, data):
            assert theirs["id"] == row["id"] and json.loads(theirs["metadata"])["phase"] == phase
            if row["unmask"]:  # trained on in full: one pretraining message holding both turns
                [message] = theirs["messages"]
                assert message["role"] == "pretraining"
                assert message["content"] == "\n".join(f"<|{m['role']}|>\n{m['content']}" for m in row["messages"])
            else:
                assert theirs["messages"] == row["messages"]
    knowledge = load_dataset("json", data_files=str(folder / summary["instructlab_files"][0]), split="train",
                             cache_dir=str(tmp_path / "hf"))
    assert Counter(m[0]["role"] for m in knowledge["messages"]) == {"user": 50, "pretraining": 10}
