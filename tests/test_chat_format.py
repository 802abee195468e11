"""The tokens SFT, DPO and KTO train, pinned on two chat templates, and SFT and DPO agreeing.

`data/chat_tokens.json` holds the token ids and labels of the conversations below under the
embedded model's ChatML template and under `HAND`, a template whose generation prompt ends in
a space. They were recorded from SFT's and DPO's own tokenisation before both moved to
`alignlab.chat_format`. DPO's and KTO's are unchanged; SFT's differ where SFT used to tokenize
the whole text at once and so trained a token straddling the prompt's end (" Hello" after
"Assistant:", "\\n\\n\\n" across ChatML's header newline and an answer starting with two
newlines): there the pins hold DPO's way, the tokens the model reads when it writes the answer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignlab.chat_format import ChatTemplateError, prompt_and_answer, render_chat, user_turn_prefix
from alignlab.records import Pair, Sample
from alignlab.train.data import IGNORE, tokenize_sample
from alignlab.train.preference import tokenize_pair
from alignlab.train.unpaired import tokenize_unpaired

PINS = Path(__file__).parent / "data" / "chat_tokens.json"
HAND = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}<<SYS>> {{ m['content'] }} <</SYS>>\n"
        "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n"
        "{% else %}Assistant: {{ m['content'] }}{{ eos_token }}\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}Assistant: {% endif %}")
S = {"role": "system", "content": "You answer briefly."}
U1 = {"role": "user", "content": "Hi, who are you?"}
A1 = {"role": "assistant", "content": "Hello there, I am a model."}
U2 = {"role": "user", "content": "Can you add 2 and 3?"}
A2 = {"role": "assistant", "content": "Yes: 5."}
AW = {"role": "assistant", "content": "\n\nHello, with leading newlines."}
R = {"role": "assistant", "content": "No idea, sorry"}
CONVERSATIONS = {"single": [U1, A1], "system": [S, U1, A1], "multi": [S, U1, A1, U2, A2],
                 "multi_nosys": [U1, A1, U2, A2], "leading_ws": [U1, AW]}


@pytest.fixture(scope="module", params=["embedded", "hand"])
def tokenizer(request, tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    if request.param == "hand":
        tokenizer.chat_template = HAND
    tokenizer.template_name = request.param
    return tokenizer


def tokenized(tokenizer) -> dict[str, dict[str, list[int]]]:
    out = {}
    for name, messages in CONVERSATIONS.items():
        for unmask in (False, True):
            t = tokenize_sample(tokenizer, Sample(id=name, messages=messages, unmask=unmask))
            out[f"sft/{name}/unmask={unmask}"] = {"input_ids": t.input_ids, "labels": t.labels}
        p = tokenize_pair(tokenizer, Pair(id=name, prompt=messages[:-1], chosen=messages[-1:], rejected=[R],
                                          metadata={}), 100000)
        out[f"dpo/{name}"] = {"prompt_ids": p.prompt_ids, "chosen_ids": p.chosen_ids, "rejected_ids": p.rejected_ids}
    answers = [Sample(id=f"k{name}", messages=[m for m in messages if m["role"] != "system"][-2:],
                      metadata={"desirable": True}) for name, messages in CONVERSATIONS.items()]
    for t in tokenize_unpaired(tokenizer, answers, 100000):
        out[f"kto/{t.id}"] = {"prompt_ids": t.prompt_ids, "answer_ids": t.answer_ids, "kl_answer_ids": t.kl_answer_ids}
    return out


def test_tokens_and_labels_are_the_pinned_ones(tokenizer):
    pins = json.loads(PINS.read_text())
    ours = tokenized(tokenizer)
    for case, got in ours.items():
        assert got == pins[f"{tokenizer.template_name} {case}"], case


def test_sft_trains_the_tokens_dpo_scores_for_the_same_conversation(tokenizer):
    for name, messages in CONVERSATIONS.items():
        sample = tokenize_sample(tokenizer, Sample(id=name, messages=messages))
        pair = tokenize_pair(tokenizer, Pair(id=name, prompt=messages[:-1], chosen=messages[-1:], rejected=[R],
                                             metadata={}), 100000)
        start = len(sample.labels) - len(pair.chosen_ids)
        assert sample.input_ids[start:] == sample.labels[start:] == pair.chosen_ids, name
        assert sample.labels[start - 1] == IGNORE
        if sum(m["role"] == "assistant" for m in messages) == 1:  # no earlier answer cut out of the context
            assert sample.input_ids[:start] == pair.prompt_ids, name


def test_an_answer_follows_the_prompt_as_the_model_reads_it_when_generating(tokenizer):
    prompt = [S, U1]
    prompt_ids, answer_ids = prompt_and_answer(tokenizer, prompt, [A1])
    assert prompt_ids == tokenizer(render_chat(tokenizer, prompt), add_special_tokens=False).input_ids
    # Under HAND the prompt ends in "Assistant: ": the answer starts "Hello", not " Hello".
    assert tokenizer.decode(answer_ids).startswith(A1["content"] + tokenizer.eos_token)


def test_magpie_prefix_is_the_template_up_to_the_user_message(tokenizer):
    prefix = user_turn_prefix(tokenizer)
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "Q?"}], tokenize=False)
    assert rendered.startswith(prefix) and rendered[len(prefix):].startswith("Q?")
    assert prefix.endswith("User: " if tokenizer.template_name == "hand" else "<|im_start|>user\n")


def test_a_template_that_does_not_render_in_order_is_reported_for_sft_and_dpo(tokenizer):
    from transformers import AutoTokenizer

    bad = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    # The generation prompt is not how the template renders an assistant message.
    bad.chat_template = ("{% for m in messages %}{{ m['content'] }}|{% endfor %}"
                         "{% if add_generation_prompt %}ASSISTANT:{% endif %}")
    with pytest.raises(ChatTemplateError, match="sample s: .*prefix"):
        tokenize_sample(bad, Sample(id="s", messages=[U1, A1]))
    with pytest.raises(ChatTemplateError, match="pair p: .*prefix"):
        tokenize_pair(bad, Pair(id="p", prompt=[U1], chosen=[A1], rejected=[R], metadata={}))
    # Trained on every token, a sample needs no answer span.
    assert tokenize_sample(bad, Sample(id="u", messages=[U1, A1], unmask=True)).input_ids
