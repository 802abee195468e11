"""Chat templates in one place: how a conversation is rendered, the text MAGPIE prompts with,
and which tokens of a conversation are the answers that SFT, DPO and KTO train.

    text = render(tokenizer, messages)                       # the whole conversation
    prompt = render_chat(tokenizer, messages)                # ends where the model writes next
    ids, trained = tokenize_answers(tokenizer, messages)     # SFT: every assistant message
    prompt_ids, answer_ids = prompt_and_answer(tokenizer, prompt, answer)   # DPO, KTO

Answer spans. Templates such as SmolLM2's carry no `{% generation %}` markers, so an
assistant message is found by rendering the conversation prefix by prefix: the text of
messages[:i] with the generation prompt ends where assistant message i begins, and the text
of messages[:i+1] ends where it ends (its end-of-turn token included, which is what teaches the
model to stop). This needs only that the template renders messages in order, each prefix a
prefix of the whole; a template that does not is reported, not guessed at.

Tokens. The text is cut at those spans and each piece is tokenized on its own, so an answer's
tokens follow exactly the tokens of its prompt as the model reads them when it writes that
answer (the local backend tokenizes `render_chat` alone, then generates). Tokenizing the whole
text at once would differ where a token straddles the boundary: after a prompt ending in
"Assistant: " the answer "Hello" would be trained as " Hello" after "Assistant:", a context the
model never sees when it generates. In a conversation of several answers each one is cut out
so; SFT and DPO read the same answer tokens for the same conversation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alignlab.errors import AlignlabError

Messages = Sequence[Mapping[str, str]]
_MARK = "\x00MAGPIE\x00"


class ChatTemplateError(AlignlabError):
    """The chat template does not render conversations prefix by prefix."""


def render(tokenizer: Any, messages: Messages, *, generation_prompt: bool = False) -> str:
    """The conversation under the tokenizer's chat template, as text."""
    return tokenizer.apply_chat_template([dict(m) for m in messages], tokenize=False,
                                         add_generation_prompt=generation_prompt)


def render_chat(tokenizer: Any, messages: Messages) -> str:
    """The text a model continues: the generation prompt after the messages, or, when the
    last message is the assistant's, that message left open to be continued."""
    continue_final = messages[-1]["role"] == "assistant"
    return tokenizer.apply_chat_template(
        [dict(m) for m in messages], tokenize=False, add_generation_prompt=not continue_final,
        continue_final_message=continue_final)


def user_turn_prefix(tokenizer: Any) -> str:
    """The chat template rendered up to the first character of a user message (MAGPIE)."""
    rendered = render(tokenizer, [{"role": "user", "content": _MARK}])
    return rendered[: rendered.index(_MARK)]


def encode(tokenizer: Any, text: str) -> list[int]:
    # The rendered template already carries any BOS/special tokens the model expects.
    return tokenizer(text, add_special_tokens=False).input_ids if text else []


def answer_spans(tokenizer: Any, messages: Messages, *, first: int = 0, where: str = "conversation"
                 ) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of each assistant message from index
    `first` on (earlier ones are context: a DPO prompt may hold earlier turns)."""
    text = render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if i < first or message["role"] != "assistant":
            continue
        try:
            before = render(tokenizer, messages[:i], generation_prompt=True) if i else ""
        except Exception:  # noqa: BLE001 - a template may refuse an empty conversation
            before = ""
        through = render(tokenizer, messages[:i + 1])
        if not (text.startswith(before) and text.startswith(through) and len(before) <= len(through)):
            raise ChatTemplateError(
                f"{where}: the chat template does not render message {i} (assistant) as a prefix "
                f"of the whole conversation, so its tokens cannot be located; use a template that "
                f"renders messages in order (a sample marked `unmask: true` needs no answer span)")
        spans.append((len(before), len(through)))
    return text, spans


def tokenize_answers(tokenizer: Any, messages: Messages, *, first: int = 0, where: str = "conversation"
                     ) -> tuple[list[int], list[bool]]:
    """Token ids of the conversation and, per token, whether it belongs to an assistant message
    from index `first` on (`answer_spans`); context and answers are tokenized piece by piece."""
    text, spans = answer_spans(tokenizer, messages, first=first, where=where)
    ids: list[int] = []
    trained: list[bool] = []
    cut = 0
    for start, end in spans + [(len(text), len(text))]:
        for piece, is_answer in ((text[cut:start], False), (text[start:end], True)):
            piece_ids = encode(tokenizer, piece)
            ids += piece_ids
            trained += [is_answer] * len(piece_ids)
        cut = end
    return ids, trained


def prompt_and_answer(tokenizer: Any, prompt: Messages, answer: Messages, where: str = "pair"
                      ) -> tuple[list[int], list[int]]:
    """(prompt ids with the generation prompt, the answer's ids) of prompt + answer: the tokens
    `tokenize_answers` gives the same conversation, cut where the answer begins."""
    ids, trained = tokenize_answers(tokenizer, [*prompt, *answer], first=len(prompt), where=where)
    if True not in trained:
        raise ChatTemplateError(f"{where}: the answer holds no assistant message with any tokens")
    start = trained.index(True)
    return ids[:start], ids[start:]
