"""The names of the files stages write and read, each named once.

A stage writes `runs/<name>/<stage>/<file>`; a later stage, the report and the tests read the
same file under the same name from here, so a rename cannot leave a reader looking for the old
one. Which stage writes and reads which file is declared in `pipeline.STAGES`.
"""

from __future__ import annotations

SAMPLES = "samples.jsonl"  # generate, curate: Sample rows
REJECTS = "rejects.jsonl"  # generate, curate, pairs: Reject rows with their reasons
COUNTS = "counts.json"  # curate, pairs: counts per reason and leaf, written before the manifest
CHUNKS = "chunks.jsonl"  # generate: the document chunks knowledge samples came from
MIX_SUMMARY = "summary.json"  # mix: rows and tokens per phase and source
PAIRS = "pairs.jsonl"  # pairs: training Pair rows
HELDOUT_PAIRS = "heldout_pairs.jsonl"  # pairs: held-out Pair rows, align's checkpoint metric
SELECTED = "selected"  # train/<phase>/, align/: the model directory a later stage loads
EVAL_SFT = "sft.json"  # eval: base -> every phase
EVAL_ALIGNED = "aligned.json"  # eval-aligned: base -> SFT -> aligned
REPORT = "report.html"  # report


def phase_file(phase: str) -> str:
    """mix's dataset for one training phase, which train reads."""
    return f"{phase}.jsonl"
