"""The generators, one line each in `GENERATORS`, and the one function that runs them all.

A generator module declares itself with a `Generator` (`sdg.generator`): the name its
candidates carry, its `run`, the requests a surviving candidate sends, the leaves it plans
candidates for and how, and how the Ray engine may shard its candidates. A new generator is
its module plus one line here. Generate and its dry run plan through `plan_candidates`; the
local engine (`sdg.stage`) and the Ray engine (`sdg.ray_engine`) both run the generators
through `run_generators`, so a shard runs exactly the code a whole run does.
"""

from __future__ import annotations

from typing import Any

from alignlab.config import Config
from alignlab.llm.types import Backend
from alignlab.models import StageModels
from alignlab.sdg import knowledge, magpie, rephrase, skills
from alignlab.sdg.candidates import Candidate
from alignlab.sdg.generator import Generator, PlanInputs
from alignlab.sdg.steps import GenContext
from alignlab.taxonomy.leaf import Leaf


GENERATORS: dict[str, Generator] = {g.name: g for g in (
    knowledge.DECLARATION,
    rephrase.DECLARATION,
    skills.FREEFORM_DECLARATION,
    skills.GROUNDED_DECLARATION,
    magpie.DECLARATION,
)}


def generator(name: str) -> Generator:
    try:
        return GENERATORS[name]
    except KeyError:
        raise KeyError(f"no generator {name!r}: declare it in its module and list it in "
                       f"alignlab.sdg.generators ({', '.join(GENERATORS)})") from None


def plan_candidates(leaves: list[Leaf], inputs: PlanInputs) -> list[Candidate]:
    """Every generator's candidates: leaf by leaf in taxonomy order, from the generators of
    the leaf's kind in the order listed; then those of generators of no leaf."""
    candidates: list[Candidate] = []
    for leaf in leaves:
        for g in GENERATORS.values():
            if g.leaf_kind == leaf.kind:
                candidates += g.plan(leaf, inputs)
    for g in GENERATORS.values():
        if g.leaf_kind is None:
            candidates += g.plan(None, inputs)
    return candidates


def run_generators(ctx: GenContext, candidates: list[Candidate], leaves: dict[str, Leaf]) -> None:
    """Every generator over its candidates — all leaves at once (local engine) or one shard
    (a Ray task): the same code either way. Generators sharing a `run` (freeform and grounded
    skills) get their candidates in one call, so their requests share batches."""
    runs: dict[Any, list[Candidate]] = {}
    for g in GENERATORS.values():
        runs.setdefault(g.run, [])
    for c in candidates:
        runs[generator(c.generator).run].append(c)
    for run, mine in runs.items():
        run(ctx, mine, leaves)


def open_models(cfg: Config, cached: bool = True) -> tuple[Backend, Backend]:
    """The teacher and the judge, behind the run's request cache (`cached=False`: none, for
    the dry run, which must leave no trace in it)."""
    models = StageModels(cfg, cached=cached)
    return models.backend(cfg.models.teacher), models.backend(cfg.judge)
