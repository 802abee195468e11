"""`alignlab chat`: talk to any model spec in the terminal, keeping the conversation.

/reset starts over (keeping the system prompt), /exit, Ctrl-D or Ctrl-C quits.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape
from rich.prompt import Prompt

from alignlab.llm.types import Backend, GenerationParams, Message, Request

HELP = "/reset clears the conversation, /exit (or Ctrl-D) quits"


def chat_loop(backend: Backend, *, name: str, system: str | None = None, max_tokens: int = 256,
              temperature: float = 0.7, console: Console | None = None,
              ask: Callable[[], str] | None = None) -> list[Message]:
    """Run the conversation until the user leaves; returns the history (for tests)."""
    console = console or Console()
    ask = ask or (lambda: Prompt.ask("[bold cyan]you[/]", console=console))
    start: list[Message] = [{"role": "system", "content": system}] if system else []
    history = list(start)
    console.print(f"[dim]chatting with {escape(name)}; {HELP}[/]")
    turn = 0
    while True:
        try:
            text = ask()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return history
        command = text.strip()
        if not command:
            continue
        if command in ("/exit", "/quit"):
            return history
        if command == "/reset":
            history = list(start)
            console.print("[dim]conversation cleared[/]")
            continue
        if command.startswith("/"):
            console.print(f"[yellow]unknown command {escape(command)}[/]: {HELP}")
            continue
        history.append({"role": "user", "content": text})
        # A new seed per turn, so sampled answers vary while the session stays reproducible.
        params = GenerationParams(max_tokens=max_tokens, temperature=temperature, seed=turn)
        turn += 1
        try:
            with console.status("thinking ..."):
                [response] = backend.generate([Request(messages=tuple(history), params=params)])
        except KeyboardInterrupt:
            history.pop()
            console.print("[dim]interrupted[/]")
            continue
        if not response.ok:
            history.pop()  # the turn did not happen; the user can retry it
            console.print(f"[red]{escape(response.error or '')}[/]", highlight=False)
            continue
        console.print(f"[bold green]{escape(name)}[/] {escape(response.text)}", highlight=False)
        if response.choices[0].finish_reason == "length":
            console.print(f"[dim](cut at {max_tokens} tokens)[/]")
        history.append({"role": "assistant", "content": response.text})
