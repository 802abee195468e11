"""Preference pairs without human labels.

- `construct`: answer the same prompts with a ladder of models, strongest first; every
  (stronger, weaker) pair of rungs gives a pair, its difficulty set by the strength gap.
- `verify`: a judge compares each pair in both orders; pairs it confidently reverses are
  dropped, and the ladder/judge agreement is summarised per rung pair.
- `feedback`: AI-feedback pairs — two samples of one model, ordered by the judge when both
  presentation orders agree confidently.
- `revise`: the strongest model minimally revises a weaker answer; (revision, original) is a
  pair that differs only where it matters.
- `answers`: drawing the answers these need from any `Backend`.

Every function returns `(pairs, rejects)`: nothing is dropped without a reason.
"""

from alignlab.pairs.construct import construct_pairs, ladder_difficulty
from alignlab.pairs.feedback import ai_feedback_pairs
from alignlab.pairs.revise import revision_pairs
from alignlab.pairs.verify import RungAgreement, Verified, verify_pairs

__all__ = ["RungAgreement", "Verified", "ai_feedback_pairs", "construct_pairs", "ladder_difficulty",
           "revision_pairs", "verify_pairs"]
