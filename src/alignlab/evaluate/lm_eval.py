"""Standard benchmarks through lm-evaluation-harness, and our MCQ sets exported as its tasks.

`export_lm_eval_task(items, folder)` writes `<task>.jsonl` and `<task>.yaml` (a local
`multiple_choice` task) so anyone can run the same questions with `lm_eval`:

    lm_eval --model hf --model_args pretrained=<model dir> --include_path <folder> \\
            --tasks alignlab_mcq --apply_chat_template

With the chat template applied, lm-eval scores exactly what `evaluate.mcq` scores: the user
turn is the `prompt` column (the question, in the formulation it was exported with) and each
choice is the assistant's reply. Its `acc` is our summed-log-likelihood accuracy; its
`acc_norm` divides by each choice's length in characters like ours, but lm-eval moves the
newline that ends the chat prompt into the continuation, so its per-choice log-likelihoods
carry that newline's (same for every choice) log-probability: `acc` is unaffected, `acc_norm`
can differ on a model that is unsure of that newline (random test models; not trained ones).

`run_lm_eval(spec, tasks)` runs lm-eval's Python API on a local or embedded model, on the
device `backend.device` names (as the local backend does) and offline: tasks whose data is not on disk fail with a message naming the task and what to do.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from alignlab.errors import AlignlabError, ConfigError
from alignlab.evaluate.mcq import MCQ, mcq_prompt
from alignlab.llm.config import BackendSettings
from alignlab.store import write_jsonl, write_text

DEFAULT_TASK = "alignlab_mcq"
_INSTALL_HINT = "pip install 'alignlab[lm-eval]' (or pip install lm-eval)"


def export_lm_eval_task(items: Sequence[MCQ], folder: str | Path, task: str = DEFAULT_TASK,
                        formulation: str = "plain") -> Path:
    """Write the task's data and YAML; returns the YAML path. The data path in the YAML is
    absolute because lm-eval resolves `data_files` against the working directory."""
    if not items:
        raise ConfigError(f"no MCQ items to export as lm-eval task '{task}'")
    folder = Path(folder).resolve()
    data = folder / f"{task}.jsonl"
    write_jsonl(data, ({"id": it.id, "leaf": it.leaf, "source": it.source, "question": it.question,
                        "prompt": mcq_prompt(it, formulation), "choices": list(it.choices),
                        "answer": it.answer} for it in items))
    spec = {
        "task": task,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "prompt",
        "doc_to_choice": "choices",
        "doc_to_target": "answer",
        "target_delimiter": " ",
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                        for m in ("acc", "acc_norm")],
        "metadata": {"version": 1.0, "formulation": formulation, "items": len(items)},
    }
    header = (f"# {len(items)} multiple-choice questions exported by alignlab ({formulation} "
              f"formulation).\n# Run: lm_eval --model hf --model_args pretrained=<model dir> "
              f"--include_path {folder} --tasks {task} --apply_chat_template\n")
    return write_text(folder / f"{task}.yaml", header + yaml.safe_dump(spec, sort_keys=False))


def _offline() -> None:
    """Nothing may be downloaded: tell datasets and the hub, including when they are already
    imported (both read these variables once, at import)."""
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    import datasets.config
    import huggingface_hub.constants

    datasets.config.HF_DATASETS_OFFLINE = True
    datasets.config.HF_HUB_OFFLINE = True
    huggingface_hub.constants.HF_HUB_OFFLINE = True


def task_manager(include_path: str | Path | None = None, names: Sequence[str] = ()) -> Any:
    """lm-eval's task index. Indexing its ~15,000 built-in task files takes a minute on a small
    machine, so when every task asked for is in `include_path`, only that folder is indexed."""
    try:
        from lm_eval.tasks import TaskManager
    except ImportError as e:
        raise AlignlabError(f"lm-evaluation-harness is not installed: {_INSTALL_HINT}") from e
    if include_path is None:
        return TaskManager()
    if not Path(include_path).is_dir():
        raise ConfigError(f"lm-eval include path {include_path} is not a folder")
    local = TaskManager(include_path=str(include_path), include_defaults=False)
    if names and set(names) <= set(local.all_tasks):
        return local
    return TaskManager(include_path=str(include_path))


def load_tasks(names: Sequence[str], manager: Any) -> dict[str, Any]:
    """Each task with its data, one at a time so a failure names its task."""
    from lm_eval.tasks import get_task_dict

    known = set(manager.all_tasks)
    loaded: dict[str, Any] = {}
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            raise ConfigError(f"lm-eval task '{name}' is not known"
                              + (f" (did you mean {', '.join(close)}?)" if close else "")
                              + "; local tasks need --include-path <folder with the task YAML>")
        try:
            loaded.update(get_task_dict([name], manager))
        except Exception as e:  # datasets/hub raise many types for "not on disk"
            raise AlignlabError(
                f"lm-eval task '{name}': its data could not be loaded offline ({type(e).__name__}: "
                f"{str(e)[:300]}). Download it once on a machine with network access (e.g. run the "
                f"task there, which fills the Hugging Face datasets cache, then copy "
                f"~/.cache/huggingface to this machine), or point the task's YAML at local files "
                f"(dataset_path: json, dataset_kwargs: {{data_files: ...}})") from e
    return loaded


def _lm(spec: str, device: str, dtype: str) -> tuple[Any, Any]:
    """lm-eval's model: `hf` on the model's local directory, or, for a `?layers=K` variant
    (which is not a directory of its own), an HFLM around the truncated model we load."""
    from alignlab.llm.hf import as_spec, load_causal_lm, load_tokenizer, model_dir

    parsed = as_spec(spec)
    if parsed.layers is None:
        return "hf", {"pretrained": str(model_dir(parsed)), "dtype": dtype}
    from lm_eval.models.huggingface import HFLM

    model = load_causal_lm(parsed, dtype).to(device)
    return HFLM(pretrained=model, tokenizer=load_tokenizer(parsed), device=device), None


def run_lm_eval(spec: str, tasks: Sequence[str], include_path: str | Path | None = None,
                limit: int | None = None, chat_template: bool = True, batch_size: int = 8,
                log_samples: bool = False, settings: BackendSettings | None = None) -> dict[str, Any]:
    """`{"results": {task: {metric: value}}, "samples"?: ...}` from lm_eval.simple_evaluate, on
    the device and in the precision `settings` (backend:) give the local backend."""
    from alignlab.llm.hf import resolve_device, weights_dtype

    settings = settings or BackendSettings()
    device = resolve_device(settings.device)
    _offline()
    manager = task_manager(include_path, tasks)
    task_objects = load_tasks(list(tasks), manager)
    from lm_eval import simple_evaluate

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    model, model_args = _lm(spec, device, weights_dtype(device, settings.precision))
    out = simple_evaluate(model=model, model_args=model_args, tasks=list(task_objects.values()),
                          task_manager=manager, limit=limit, batch_size=batch_size, device=device,
                          apply_chat_template=chat_template, log_samples=log_samples,
                          bootstrap_iters=0, random_seed=0)
    results = {task: {key.split(",")[0]: value for key, value in metrics.items()
                      if isinstance(value, (int, float)) and not key.startswith("alias")}
               for task, metrics in out["results"].items()}
    report: dict[str, Any] = {"model": spec, "tasks": list(tasks), "limit": limit,
                              "chat_template": chat_template, "results": results}
    if log_samples:
        report["samples"] = out.get("samples", {})
    return report
