"""Saying why a generate run kept little: what the probe found about a served teacher, how
judges read their scores, and, for a leaf that kept nothing, the likely cause and the setting
to change.

A served teacher used the wrong way does not crash; it quietly writes chatter and scores of 1.
These lines are how the user hears about it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import Any


MODES = {"continue": "continued by the server (continue_final_message)",
         "completion": "rendered here with the teacher's chat template and sent to /completions",
         "no-prefix": "sent without an assistant prefix (a fresh reply each time)"}


def server_findings(teacher: Any) -> dict[str, Any] | None:
    """The probe's findings and the rendering chosen, for a served teacher (None in-process)."""
    caps = getattr(teacher, "capabilities", None)
    if caps is None:
        return None
    overridden = sorted(k for k, v in teacher.settings.server.model_dump().items() if v is not None)
    return {"capabilities": asdict(caps), "described": caps.describe(), "mode": teacher.mode,
            "judge_method": teacher.judge_method, "tokenizer": teacher.tokenizer_spec,
            "overridden": overridden}


def count_judge_methods(metadata: dict[str, Any], seen: Counter[str]) -> None:
    """Add how one accepted or rejected candidate's judgements were read to `seen`."""
    for verdict in (metadata.get("judges") or {}).values():
        seen[str(verdict.get("method"))] += 1


def server_line(server: dict[str, Any]) -> str:
    return (f"teacher server: {server['described']}; prompts {MODES.get(server['mode'], server['mode'])}, "
            f"judge scores read by {server['judge_method']}")


def text_fallback_line(methods: dict[str, int]) -> str | None:
    """A warning when most judgements were read from the text (coarse, integer scores)."""
    total = sum(n for m, n in methods.items() if m not in ("failed", "unparseable"))
    if not total or methods.get("text", 0) * 2 <= total:
        return None
    return (f"judges fell back to reading the score from the text for {methods['text']} of {total} "
            f"judgements: the server gave no usable log-probabilities, so scores are whole numbers "
            f"and thresholds act as cut-offs; a server that returns logprobs gives finer scores")


def likely_cause(reason: str, server: dict[str, Any] | None) -> str | None:
    """Why a whole leaf fell to `reason`: the setting that bounds answers, or a served teacher's
    rendering."""
    if reason == "truncated":
        return ("likely cause: answers ran past generate.max_new_tokens and were cut off mid-text; "
                "raise it, or ask for shorter answers in the leaf's seed examples")
    # Chatter instead of the asked-for text is unparseable, scores low, or is the same words
    # every time ("Sure! Here is one:"), which the novelty filter drops as too similar.
    if server is None or not (reason in ("unparseable", "too_similar") or reason.startswith("low_")):
        return None
    caps, mode = server["capabilities"], server["mode"]
    found = f"(probe: {server['described']})"
    if mode == "continue" and "continues_final_message" in server.get("overridden", []):
        return (f"likely cause: backend.server.continues_final_message is set, so prompts were sent to be "
                f"continued, but the server may start a new turn instead {found}; remove the setting to "
                f"let the probe decide, or set it to false")
    if mode == "continue":
        return (f"likely cause: if the server does not really continue the final assistant message, "
                f"judges read chatter {found}; set backend.server.continues_final_message: false")
    if mode == "no-prefix" and caps.get("completions"):
        return (f"likely cause: the server cannot continue a message and the teacher's tokenizer is not "
                f"known, so prompts went without their prefix {found}; set models.teacher_tokenizer "
                f"(a Hugging Face directory or embedded:...) to render them here for /completions")
    if mode == "completion":
        return (f"likely cause: prompts were rendered with the chat template of {server['tokenizer']}; if "
                f"the served model uses another template, set models.teacher_tokenizer to its own {found}")
    if server["judge_method"] == "text":
        return (f"likely cause: the server gives no log-probabilities and scores were parsed from the text "
                f"{found}; lower generate.thresholds or serve the judge where logprobs are returned")
    return None
