"""Every stage opens its models one way (`alignlab.models.StageModels`): a model's identity in
fingerprints is the `model_id` of the backend the stage asks, for a local directory, the
embedded model and a served one alike; each model is opened once per stage, behind the run's
request cache; a given backend (the tests' and the CLI's seam) is used as it is."""

from __future__ import annotations

import shutil

from alignlab.config import Config
from alignlab.llm.cache import CachedBackend
from alignlab.llm.scripted import ScriptedBackend
from alignlab.models import StageModels


def config(folder) -> Config:
    cfg = Config(name="m")
    cfg._base_dir = folder  # as load_config sets it: the folder of alignlab.yaml
    return cfg


def test_a_backend_carries_the_identity_its_stage_fingerprints(tmp_path, tiny_model_dir):
    model = shutil.copytree(tiny_model_dir, tmp_path / "student")
    cfg = config(tmp_path)
    models = StageModels(cfg)
    for spec in (str(model), "openai:http://127.0.0.1:9/v1#teacher"):
        backend = models.backend(spec)
        assert isinstance(backend, CachedBackend)  # behind the run's request cache
        assert backend.model_id == cfg.model_id(spec)
        assert models.backend(spec) is backend  # opened once per stage
    assert "@" in cfg.model_id(str(model))  # a directory's identity covers its weights
    assert models.cache is not None and models.cache.path == cfg.cache_path
    models.close()
    assert models._cache is None


def test_given_backends_are_used_as_they_are_and_nothing_else_is_opened(tmp_path):
    cfg = config(tmp_path)
    fake = ScriptedBackend("scripted")
    models = StageModels(cfg, given={cfg.judge: fake})
    assert models.backend(cfg.judge) is fake
    assert models._cache is None and not (tmp_path / "runs").exists()  # no cache opened for it


def test_without_a_cache_nothing_is_written(tmp_path, tiny_model_dir):
    cfg = config(tmp_path)
    models = StageModels(cfg, cached=False)  # generate's dry run
    backend = models.backend(str(tiny_model_dir))
    assert not isinstance(backend, CachedBackend) and models.cache is None
    assert not cfg.cache_path.exists()
