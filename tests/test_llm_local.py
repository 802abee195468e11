"""The local backend: batching must not change answers, and scores must match the model."""

from __future__ import annotations

import pytest
import torch

from alignlab.llm.types import GenerationParams, Request, ScoreRequest

PROMPTS = ["What is the capital of France?", "Write one line about rain.", "hi",
           "List three prime numbers and explain why each is prime in a few words."]


def chat(text: str, **params) -> Request:
    return Request(messages=({"role": "user", "content": text},), params=GenerationParams(**params))


def test_batched_and_one_by_one_give_the_same_greedy_text(tiny_backend):
    requests = [chat(p, max_tokens=12 + 3 * i) for i, p in enumerate(PROMPTS)]
    calls_before = tiny_backend.stats.calls
    batched = tiny_backend.generate(requests)
    assert tiny_backend.stats.calls == calls_before + 1  # one batch, not four
    assert tiny_backend.parallel_width == tiny_backend.max_batch_size == 8  # what a dry run scales by
    single = [tiny_backend.generate([r])[0] for r in requests]
    assert [r.text for r in batched] == [r.text for r in single]
    assert all(r.choices[0].completion_tokens > 0 for r in batched)


def test_sampling_is_deterministic_per_sample_seed(tiny_backend):
    req = chat("Tell me a story.", n=3, temperature=1.0, max_tokens=10, seed=11)
    first = tiny_backend.generate([req])[0]
    again = tiny_backend.generate([chat("x", max_tokens=3), req])[1]  # different batch company
    assert [c.text for c in first.choices] == [c.text for c in again.choices]
    # sample 2 of seed 11 is sample 0 of seed 13
    alone = tiny_backend.generate([chat("Tell me a story.", temperature=1.0, max_tokens=10, seed=13)])[0]
    assert alone.text == first.choices[2].text
    assert len({c.text for c in first.choices}) > 1


def test_stop_strings_max_tokens_and_logprobs(tiny_backend):
    free = tiny_backend.generate([chat("Count", max_tokens=20, logprobs=3)])[0].choices[0]
    assert free.completion_tokens <= 20
    assert len(free.logprobs) >= free.completion_tokens
    for lp in free.logprobs:
        assert len(lp.top) == 3 and lp.top[0][1] >= lp.top[1][1] >= lp.top[2][1]
        assert lp.logprob <= lp.top[0][1] + 1e-6  # greedy picks the top token
    assert len(free.text) > 4
    stop = free.text[2:4]
    cut = tiny_backend.generate([chat("Count", max_tokens=20, stop=[stop])])[0].choices[0]
    assert stop not in cut.text and free.text.startswith(cut.text) and cut.finish_reason == "stop"
    none = tiny_backend.generate([chat("Count", max_tokens=0)])[0]
    assert none.text == "" and none.choices[0].finish_reason == "length"


def test_loglikelihood_matches_a_direct_forward_pass(tiny_backend):
    tok, model = tiny_backend.tokenizer, tiny_backend.model
    context, continuation = "The capital of France is", " Paris, a city."
    [score] = tiny_backend.loglikelihood([ScoreRequest(context, continuation)])
    ctx = tok(context).input_ids
    cont = tok(continuation, add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = model(torch.tensor([ctx + cont])).logits[0].log_softmax(-1)
    expected = sum(float(logits[len(ctx) - 1 + k, t]) for k, t in enumerate(cont))
    assert abs(score.logprob - expected) < 1e-4
    assert score.n_tokens == len(cont)
    # batched with other lengths: padding must not leak into the score
    scores = tiny_backend.loglikelihood([ScoreRequest("a b c d e f g h", " i"),
                                         ScoreRequest(context, continuation), ScoreRequest("x", " y")])
    assert abs(scores[1].logprob - expected) < 1e-4


def test_chat_context_scores_the_assistant_reply(tiny_backend):
    messages = ({"role": "user", "content": "Say hi"},)
    [score] = tiny_backend.loglikelihood([ScoreRequest(messages, "hi")])
    rendered = tiny_backend.render_chat(messages)
    [same] = tiny_backend.loglikelihood([ScoreRequest(rendered, "hi")])
    assert abs(score.logprob - same.logprob) < 1e-4


def test_context_too_long_fails_that_request_only(tiny_backend):
    long = "word " * 3000
    out = tiny_backend.generate([chat(long, max_tokens=4), chat("short", max_tokens=4)])
    assert "context length" in out[0].error
    assert out[1].ok and out[1].choices[0].completion_tokens > 0


def test_bf16_autocast_answers_and_is_cached_apart(tiny_model_dir):
    from alignlab.llm.config import BackendSettings
    from alignlab.llm.local import LocalBackend

    fp32 = LocalBackend.from_spec(str(tiny_model_dir))
    bf16 = LocalBackend.from_spec(str(tiny_model_dir), BackendSettings(precision="bf16"))
    assert bf16.model_id != fp32.model_id  # a cache never hands one's answers to the other
    [a] = bf16.generate([chat("hello there", max_tokens=8)])
    assert a.ok and a.choices[0].completion_tokens > 0
    [s32], [s16] = fp32.loglikelihood([ScoreRequest("a b c", " d")]), bf16.loglikelihood([ScoreRequest("a b c", " d")])
    assert abs(s32.logprob - s16.logprob) < 0.5  # the same model, computed at lower precision


def test_identical_prompts_are_prefilled_once(tiny_backend):
    req = chat("Share one prompt.", n=4, temperature=1.0, max_tokens=6, seed=3)
    before = tiny_backend.stats.prompt_tokens
    [shared] = tiny_backend.generate([req])
    prompt_tokens = shared.prompt_tokens
    assert tiny_backend.stats.prompt_tokens - before == prompt_tokens  # one prefill for four samples
    alone = [tiny_backend.generate([chat("Share one prompt.", temperature=1.0, max_tokens=6, seed=3 + i)])[0].text
             for i in range(4)]
    assert [c.text for c in shared.choices] == alone


def test_device_cpu_set_explicitly_runs_on_the_cpu(tiny_model_dir, tiny_backend):
    from alignlab.llm.config import BackendSettings
    from alignlab.llm.local import LocalBackend

    cpu = LocalBackend.from_spec(str(tiny_model_dir), BackendSettings(device="cpu", max_batch_size=8))
    assert {p.device.type for p in cpu.model.parameters()} == {"cpu"}
    assert cpu.model_id == tiny_backend.model_id  # the CPU adds nothing to what the cache keys on
    request = chat("Say something", max_tokens=8)
    assert cpu.generate([request])[0].text == tiny_backend.generate([request])[0].text
    [score] = cpu.loglikelihood([ScoreRequest("The capital is", " Paris")])
    assert score.n_tokens > 0 and score.logprob < 0


def test_auto_device_is_the_accelerator_torch_sees(monkeypatch):
    from alignlab.llm.hf import resolve_device, weights_dtype

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    assert weights_dtype("cuda", "bf16") == "bfloat16"
    assert weights_dtype("cpu", "bf16") == weights_dtype("cuda", "fp32") == "float32"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_a_cuda_run_loads_bf16_weights_on_the_gpu(tiny_model_dir, tiny_backend):
    from alignlab.llm.config import BackendSettings
    from alignlab.llm.local import LocalBackend

    gpu = LocalBackend.from_spec(str(tiny_model_dir), BackendSettings(device="cuda", precision="bf16"))
    assert {(p.device.type, p.dtype) for p in gpu.model.parameters()} == {("cuda", torch.bfloat16)}
    assert gpu.model_id == f"{tiny_backend.model_id}|bf16|cuda"  # never answered from the CPU's cache
    response = gpu.generate([chat("Say something", max_tokens=8, logprobs=2)])[0]
    assert response.ok and response.choices[0].completion_tokens > 0
    [score] = gpu.loglikelihood([ScoreRequest("The capital is", " Paris")])
    assert score.n_tokens > 0


def _weight_casts(backend, request) -> int:
    """How many times a weight of the model was cast to bfloat16 while answering `request`."""
    from torch.utils._python_dispatch import TorchDispatchMode

    weights = {p.data_ptr() for p in backend.model.parameters()}

    class CountWeightCasts(TorchDispatchMode):
        casts = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            # Under inference_mode the cast stays `aten.to.dtype`; elsewhere it is `_to_copy`.
            dtype = kwargs.get("dtype") or next((a for a in args[1:2] if isinstance(a, torch.dtype)), None)
            if (func in (torch.ops.aten._to_copy.default, torch.ops.aten.to.dtype) and dtype == torch.bfloat16
                    and args[0].data_ptr() in weights):
                CountWeightCasts.casts += 1
            return func(*args, **kwargs)

    with CountWeightCasts():
        [response] = backend.generate([request])
    assert response.choices[0].completion_tokens == request.params.max_tokens
    return CountWeightCasts.casts


def test_bf16_casts_each_weight_once_per_batch_not_per_token(tiny_model_dir):
    from alignlab.llm.config import BackendSettings
    from alignlab.llm.local import LocalBackend

    bf16 = LocalBackend.from_spec(str(tiny_model_dir), BackendSettings(precision="bf16"))
    linears = sum(isinstance(m, torch.nn.Linear) for m in bf16.model.modules())
    never_stop = {"stop": [], "temperature": 1.0, "seed": 1}
    short = _weight_casts(bf16, chat("Say something", max_tokens=2, **never_stop))
    long = _weight_casts(bf16, chat("Say something", max_tokens=12, **never_stop))
    assert short == long and 0 < short <= linears + 1  # at most the embedding besides


def test_shared_context_is_run_once_and_scores_as_apart(tiny_backend):
    """Options of one item share their context's forward pass, and each scores exactly what it
    scores alone (continuations of one and several tokens, another context in the same batch)."""
    context = "The capital of France is"
    options = [" Paris", " Lyon, a city on the Rhone.", " Rome", " the"]
    requests = [ScoreRequest(context, o) for o in options] + [ScoreRequest("a b c", " d e")]
    fed: list[int] = []  # real (unpadded) tokens the model reads in each forward pass
    forward = tiny_backend._forward

    def counting(**inputs):
        fed.append(int(inputs["attention_mask"][:, -inputs["input_ids"].shape[1]:].sum()))
        return forward(**inputs)

    tiny_backend._forward = counting
    try:
        together = tiny_backend.loglikelihood(requests)
    finally:
        tiny_backend._forward = forward
    encoded = [tiny_backend._split(r) for r in requests]
    contexts = {tuple(ctx) for ctx, _ in encoded}
    # each distinct context once, then every continuation token but the last
    assert sum(fed) == sum(map(len, contexts)) + sum(len(cont) - 1 for _, cont in encoded)
    for request, score in zip(requests, together):
        [alone] = tiny_backend.loglikelihood([request])
        assert abs(score.logprob - alone.logprob) < 1e-4 and score.n_tokens == alone.n_tokens
        assert score.is_greedy == alone.is_greedy
