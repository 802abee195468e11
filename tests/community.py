"""The community-shaped corpus in tests/data/taxonomies/community, and a machine without network."""

from __future__ import annotations

import shutil
from pathlib import Path

COMMUNITY = Path(__file__).parent / "data" / "taxonomies" / "community"
# The files InstructLab's parser rejects: a v1 knowledge file, a YAML syntax error, trailing spaces.
REJECTED_BY_INSTRUCTLAB = ("knowledge/history/lighthouses", "compositional_skills/writing/freeform/riddles",
                           "compositional_skills/writing/freeform/tongue_twisters")
REMOTE_REPO = "https://github.com/example-community/astronomy-knowledge.git"
REMOTE_COMMIT = "5f2c9e1d3b4a6f7e8d9c0b1a2f3e4d5c6b7a8f9e"


def accepted_copy(root: Path) -> Path:
    """A copy of the corpus at `root` without the files InstructLab rejects."""
    shutil.copytree(COMMUNITY, root)
    for leaf in REJECTED_BY_INSTRUCTLAB:
        shutil.rmtree(root / leaf)
    return root


def no_network(monkeypatch) -> None:
    """Every HTTP(S) request goes to a proxy nothing listens on, so it fails at once."""
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")
