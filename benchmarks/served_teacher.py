"""A served teacher's yield: the embedded model behind a real llama.cpp server vs in-process.

    .venv/bin/python benchmarks/served_teacher.py [--venv DIR] [--port 8765]

Starts llama.cpp's server (`llama-cpp-python[server]`) on the embedded model's own GGUF file,
runs `alignlab generate` on examples/ through it (`openai:http://127.0.0.1:PORT/v1#smollm2`)
and in-process on the same model, each with a fresh request cache, and prints the accepted
generated samples (document chunks and seed Q&A are given, not generated), per leaf, and the
ratio served / in-process. Before the probe and the per-server rendering the ratio was 0: the
server started a new turn after every "Question:" and "Score:" prefix.

The server is installed into its own virtual environment (`--venv`, default
$ALIGNLAB_LLAMA_VENV or ~/.cache/alignlab/llama-venv) when it is missing. llama-cpp-python
builds from source: about 7 minutes on 2 cores; CMAKE_ARGS="-DGGML_NATIVE=OFF" keeps the build
portable (some CPUs fail the native build). MAGPIE is off on both sides: it needs the raw chat
template of a local teacher, so a served run never has it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from rich.console import Console

from alignlab.config import load_config
from alignlab.llm.embedded import alignlab_home, gguf_path
from alignlab.sdg.stage import generate
from alignlab.store import read_jsonl

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GIVEN = ("knowledge_chunk", "knowledge_seed")
quiet = Console(file=open(os.devnull, "w"))


def server_python(venv: Path) -> Path:
    """The venv's python with llama_cpp.server importable, installing it first if needed.
    `<venv>/.installing` marks an install under way (another run's): wait for it."""
    python, marker = venv / "bin" / "python", venv / ".installing"
    while marker.exists():
        print(f"waiting for the install under way in {venv} ...")
        time.sleep(20)
    if python.exists() and subprocess.run([python, "-c", "import llama_cpp.server"],
                                          capture_output=True).returncode == 0:
        return python
    print(f"installing llama-cpp-python[server] into {venv} (builds from source: ~7 min on 2 cores)")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    marker.touch()
    try:
        env = os.environ | {"CMAKE_ARGS": os.environ.get("CMAKE_ARGS", "-DGGML_NATIVE=OFF")}
        subprocess.run([python, "-m", "pip", "install", "llama-cpp-python[server]"], check=True, env=env)
    finally:
        marker.unlink(missing_ok=True)
    return python


def start_server(python: Path, port: int, log: Path) -> subprocess.Popen:
    # logits_all: /completions returns log-probs only when every position's logits are kept.
    cmd = [python, "-m", "llama_cpp.server", "--model", str(gguf_path()), "--model_alias", "smollm2",
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--logits_all", "true",
           "--n_threads", str(os.cpu_count() or 2)]
    process = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"llama.cpp server exited ({process.returncode}); see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit(f"llama.cpp server did not answer within 120 s; see {log}")


def workspace(root: Path, teacher: str) -> Path:
    root.mkdir(parents=True)
    shutil.copytree(EXAMPLES / "taxonomy", root / "taxonomy")
    config = yaml.safe_load((EXAMPLES / "alignlab.yaml").read_text())
    config["models"] = {"teacher": teacher}
    config["generate"]["magpie"] = {"enabled": False}
    if teacher.startswith("openai:"):
        # llama.cpp's server answers one request at a time: a few in flight keep it busy
        # without queueing requests past their timeout.
        config["backend"] = {"max_in_flight": 4, "timeout": 600}
    (root / "alignlab.yaml").write_text(yaml.safe_dump(config))
    return root / "alignlab.yaml"


def run(config: Path) -> tuple[dict, dict[str, int], float]:
    cfg = load_config(config)
    started = time.perf_counter()
    manifest = generate(cfg, console=quiet)
    wall = time.perf_counter() - started
    per_leaf: dict[str, int] = {leaf: 0 for leaf in manifest["counts"]["by_leaf"]}
    for s in read_jsonl(cfg.run_dir.path / "generate" / "samples.jsonl"):
        if s["metadata"]["generator"] not in GIVEN:
            per_leaf[s["metadata"]["leaf"]] = per_leaf.get(s["metadata"]["leaf"], 0) + 1
    return manifest, per_leaf, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path(os.environ.get(
        "ALIGNLAB_LLAMA_VENV", alignlab_home() / "llama-venv")))
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="served-teacher-"))
    # In-process first: it needs no server, so it runs while an install may still be building.
    local, local_leaf, local_wall = run(workspace(tmp / "in-process", "embedded:smollm2-135m"))
    python = server_python(args.venv)
    server = start_server(python, args.port, tmp / "llama-server.log")
    try:
        served, served_leaf, served_wall = run(workspace(tmp / "served",
                                                         f"openai:http://127.0.0.1:{args.port}/v1#smollm2"))
    finally:
        server.terminate()
        server.wait(timeout=30)

    found = served["counts"].get("teacher_server") or {}
    print(f"server: {found.get('described')}")
    print(f"prompts rendered as: {found.get('mode')}; judges read by: {found.get('judge_method')}; "
          f"judgements by method: {served['counts'].get('judge_methods')}")
    print(f"{'leaf':52} {'served':>7} {'in-process':>11}")
    for leaf in sorted(set(served_leaf) | set(local_leaf)):
        print(f"{leaf:52} {served_leaf.get(leaf, 0):>7} {local_leaf.get(leaf, 0):>11}")
    total_s, total_l = sum(served_leaf.values()), sum(local_leaf.values())
    print(f"{'accepted generated samples':52} {total_s:>7} {total_l:>11}")
    print(f"wall time: served {served_wall:.0f} s, in-process {local_wall:.0f} s")
    print(f"ratio served / in-process: {total_s / total_l:.2f}" if total_l else "in-process kept nothing")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
