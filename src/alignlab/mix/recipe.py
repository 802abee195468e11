"""The mixing recipe, resolved and checked before anything is sampled.

The recipe is the `mix:` section of alignlab.yaml, or a YAML file named by `mix.recipe`
(holding `seed` and `phases`). Either way every problem — a replayed phase that does not come
earlier, a file that does not exist or holds a malformed row, a duplicated phase name — is
reported with the recipe's own file:line, before any sample is drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from alignlab.config import Config, load_validated
from alignlab.errors import ConfigError, StoreError
from alignlab.mix.config import Recipe
from alignlab.records import Sample
from alignlab.store import read_samples

Where = Callable[[tuple], str]  # key path inside the recipe -> "file:line:col"


@dataclass
class ResolvedRecipe:
    recipe: Recipe
    seed: int
    where: Where
    base_dir: Path  # where a source's `file:` is resolved
    recipe_file: Path | None = None
    files: dict[str, list[Sample]] = field(default_factory=dict)  # source file (as written) -> rows

    def file_path(self, name: str) -> Path:
        path = Path(name).expanduser()
        return path if path.is_absolute() else self.base_dir / path


def _recipe_from_file(cfg: Config, path: Path) -> tuple[Recipe, Where]:
    if not path.is_file():
        raise ConfigError(f"{cfg.where(('mix', 'recipe'))}: recipe file {path} not found")
    recipe, doc = load_validated(path, Recipe, "recipe (`phases` and optionally `seed`)")
    return recipe, doc.where


def load_recipe(cfg: Config) -> ResolvedRecipe:
    """The recipe to run, with its source files read and every reference checked."""
    if cfg.mix.recipe is not None:
        path = cfg.path(cfg.mix.recipe)
        recipe, where = _recipe_from_file(cfg, path)
        resolved = ResolvedRecipe(recipe, recipe.seed if recipe.seed is not None else cfg.seed, where,
                                  path.parent, recipe_file=path)
    else:
        recipe = cfg.mix
        resolved = ResolvedRecipe(recipe, recipe.seed if recipe.seed is not None else cfg.seed,
                                  lambda keys: cfg.where(("mix", *keys)), cfg.base_dir)
    check_recipe(resolved)
    return resolved


def check_recipe(resolved: ResolvedRecipe) -> None:
    """Phase names unique, replays of earlier phases only, files present and readable."""
    seen: list[str] = []
    for i, phase in enumerate(resolved.recipe.phases):
        if phase.name in seen:
            raise ConfigError(f"{resolved.where(('phases', i, 'name'))}: phase '{phase.name}' is defined twice")
        for j, source in enumerate(phase.sources):
            at = ("phases", i, "sources", j)
            if source.phase is not None and source.phase not in seen:
                later = source.phase in [p.name for p in resolved.recipe.phases]
                why = ("comes later: a phase can only replay earlier ones" if later and source.phase != phase.name
                       else "is this phase itself" if source.phase == phase.name else "is not a phase")
                earlier = ", ".join(seen) or "none"
                raise ConfigError(f"{resolved.where((*at, 'phase'))}: replayed phase '{source.phase}' {why} "
                                  f"(earlier phases: {earlier})")
            if source.file is not None and source.file not in resolved.files:
                path = resolved.file_path(source.file)
                if not path.is_file():
                    raise ConfigError(f"{resolved.where((*at, 'file'))}: source file {source.file} not found "
                                      f"(looked for {path})")
                try:
                    resolved.files[source.file] = read_samples(path)
                except (ValueError, StoreError) as e:
                    raise ConfigError(f"{resolved.where((*at, 'file'))}: source file {source.file} "
                                      f"is not usable: {e}") from e
        seen.append(phase.name)
