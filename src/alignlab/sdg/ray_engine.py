"""`--engine ray`: the same generators, fanned out as Ray tasks.

Each leaf is a task, and a knowledge leaf with many chunks is split into shards of
`ray_shard_chunks` chunks. Every task opens its own backends from the config (the model is
loaded once per worker) and shares the request cache (SQLite in WAL mode takes concurrent
writers). Candidates carry their own seeds and the novelty pools of knowledge leaves are per
chunk, so the records are the same as the local engine's for the same seed. Runs on a local
Ray instance by default, or on the cluster named by RAY_ADDRESS.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

from alignlab.config import Config
from alignlab.errors import AlignlabError
from alignlab.sdg.candidates import Candidate
from alignlab.sdg.generators import generator, open_models, run_generators


def shards(candidates: list[Candidate], chunks_per_shard: int) -> list[list[Candidate]]:
    """Each generator says how its candidates may be split (`Generator.shard`)."""
    groups: dict[Any, list[Candidate]] = defaultdict(list)
    for c in candidates:
        groups[generator(c.generator).shard(c, chunks_per_shard)].append(c)
    return [groups[k] for k in sorted(groups, key=str)]


def _generate_shard(config: dict[str, Any], base_dir: str, candidates: list[Candidate],
                    leaves: dict[str, Any]) -> list[Candidate]:
    import torch

    from alignlab.sdg.steps import GenContext

    torch.set_num_threads(1)  # one task per core; more threads would only contend
    cfg = Config.model_validate(config)
    cfg._base_dir = base_dir
    teacher, judge = open_models(cfg)
    run_generators(GenContext(teacher=teacher, judge=judge, settings=cfg.generate), candidates, leaves)
    return candidates


def run_on_ray(cfg: Config, work: Any, tracker: Any) -> list[Candidate]:
    try:
        import ray
    except ImportError as e:
        raise AlignlabError("--engine ray needs Ray: pip install 'alignlab[ray]'") from e
    address = os.environ.get("RAY_ADDRESS")
    if not ray.is_initialized():
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    task = ray.remote(num_cpus=1)(_generate_shard)
    config = cfg.model_dump(mode="json")
    pending = {task.remote(config, str(cfg.base_dir), shard, work.leaves): shard
               for shard in shards(work.candidates, cfg.generate.ray_shard_chunks)}
    done: list[Candidate] = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            pending.pop(ref)
            finished = ray.get(ref)
            tracker.settle(finished)
            done += finished
    return done
