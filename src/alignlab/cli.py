"""The `alignlab` command: parse options, call one stage function, print a summary.

Every command is a thin wrapper; the work lives in functions that `alignlab run`, Ray workers
and the tests call the same way.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from alignlab.errors import AlignlabError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Taxonomy + teacher -> aligned student. Run `alignlab COMMAND --help` for details.")
taxonomy_app = typer.Typer(no_args_is_help=True, help="Validate, show and diff a taxonomy tree.")
app.add_typer(taxonomy_app, name="taxonomy")

console = Console()
err_console = Console(stderr=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="alignlab.yaml of the workspace")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="model spec, e.g. embedded:smollm2-135m")]


def main() -> None:
    """Console entry point: user errors print as one clean message, never a traceback."""
    try:
        app()
    except AlignlabError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)


# ------------------------------------------------------------------ models


@app.command()
def ask(prompts: Annotated[list[str], typer.Argument(help="prompts to answer, one request each")],
        model: ModelOpt = "embedded:smollm2-135m",
        max_tokens: Annotated[int, typer.Option(help="new tokens per answer")] = 96,
        temperature: float = 0.0, seed: int = 0) -> None:
    """Answer prompts in one batch and print each answer with the throughput."""
    from alignlab.llm import GenerationParams, Request, open_backend

    backend = open_backend(model)
    params = GenerationParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
    started = time.perf_counter()
    responses = backend.generate([Request(messages=({"role": "user", "content": p},), params=params)
                                  for p in prompts])
    seconds = time.perf_counter() - started
    for prompt, response in zip(prompts, responses):
        console.print(f"[bold cyan]> {prompt}[/]", highlight=False)
        console.print(response.error and f"[red]{response.error}[/]" or response.text, highlight=False)
    tokens = sum(c.completion_tokens for r in responses for c in r.choices)
    console.print(f"[dim]{len(prompts)} answers, {tokens} new tokens in {seconds:.1f}s "
                  f"({tokens / max(seconds, 1e-9):.0f} tokens/s) from {model}[/]")
