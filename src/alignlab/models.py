"""How a stage opens the models it asks: `StageModels(cfg, given)`, the one way for every stage.

    models = StageModels(cfg, given=ctx.backends)
    judge = models.backend(cfg.judge)      # opened once, behind the run's request cache
    ...
    models.close()

A model's identity is `Config.model_id(spec)` (a local directory's includes its weights, a
served model is its spec: URL and name). It is computed without loading the model or calling
its server, so a stage that is skipped by its fingerprint opens nothing; and every backend
opened here carries the same string as its `model_id`, which keys its answers in the request
cache. `given` (spec -> ready backend) is the one seam where tests hand a stage backends of
their own (`pipeline.StageContext.backends`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from alignlab.config import Config
from alignlab.llm import open_backend
from alignlab.llm.cache import RequestCache
from alignlab.llm.types import Backend


@dataclass
class StageModels:
    cfg: Config
    given: Mapping[str, Backend] = field(default_factory=dict)
    # False: no request cache (generate's dry run, which must leave no trace in it).
    cached: bool = True
    _opened: dict[str, Backend] = field(default_factory=dict, init=False, repr=False)
    _cache: RequestCache | None = field(default=None, init=False, repr=False)

    def backend(self, spec: str) -> Backend:
        """The model `spec` names, with the run's backend settings, its base folder and (for
        a served teacher) the tokenizer its prompts are rendered with."""
        found = self.given.get(spec) or self._opened.get(spec)
        if found is None:
            found = self._opened[spec] = open_backend(spec, self.cfg.backend, self.cache, self.cfg.base_dir,
                                                      self.cfg.tokenizer_for(spec))
        return found

    @property
    def cache(self) -> RequestCache | None:
        """The run's request cache, opened on first use."""
        if self.cached and self._cache is None:
            self._cache = self.cfg.request_cache()
        return self._cache

    def close(self) -> None:
        """Close the request cache (every answer is already committed); backends stay loaded
        for the next stage (`llm.release_local_backends` frees them)."""
        if self._cache is not None:
            self._cache.close()
            self._cache = None
