"""The git command line, run without prompts: the one place the taxonomy package shells out."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from alignlab.taxonomy.errors import TaxonomyError


def run_git(cwd: Path | None, *args: str) -> subprocess.CompletedProcess:
    """Run `git -C cwd args...` capturing bytes; the caller checks `returncode`."""
    # No prompt for credentials: an unreachable or private URL fails at once with a message.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        return subprocess.run(["git", *(["-C", str(cwd)] if cwd else []), *args],
                              capture_output=True, env=env, check=False)
    except FileNotFoundError as e:
        raise TaxonomyError("git is not installed; it is needed for git document repositories "
                            "and for `taxonomy diff`") from e


def last_line(stderr: bytes) -> str:
    """The line of git's error output that says what went wrong."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1] if lines else "git failed"


def nul_list(stdout: bytes) -> list[str]:
    """Entries of a `-z` listing."""
    return [item for item in stdout.decode("utf-8", "surrogateescape").split("\0") if item]
