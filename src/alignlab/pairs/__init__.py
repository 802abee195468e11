"""Preference pairs without human labels.

- `rungs`: a rung is a model and how it answers (reading the source chunk, a higher
  temperature), weakened in ways that keep it fluent; `quality` measures each rung.
- `construct`: answer the same prompts with a ladder of rungs, strongest first; every
  (stronger, weaker) pair of rungs gives a pair, its difficulty set by the strength gap.
- `verify`: knowledge pairs by which answer their source chunk supports (`evidence`), the
  others by a judge in both orders; pairs the evidence reverses are dropped, and the
  agreement with the ladder is summarised per rung pair.
- `export`: the pairs as a Hugging Face dataset and Parquet with a dataset card.
- `feedback`: AI-feedback pairs — two samples of one model, ordered by the judge when both
  presentation orders agree confidently.
- `revise`: the strongest model minimally revises a weaker answer; (revision, original) is a
  pair that differs only where it matters.
- `answers`: drawing the answers these need from any `Backend`.

Every function returns `(pairs, rejects)`: nothing is dropped without a reason.

This package imports nothing at import time: the config loader imports `alignlab.pairs.settings`,
which must not pull in the judges and their templates (jinja2).
"""
