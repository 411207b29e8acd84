"""Option log-likelihoods against an independent reference: one plain full forward per (context, option)."""

from __future__ import annotations

import pytest
import torch
from trex_testing import loglik_reference, tiny_llama

from trex.eval import EvalModel, LoglikItem, encode_pair, score_continuations
from trex.model import TRexModel

ITEMS = [
    LoglikItem("The cat sat on the mat.\nA. the dog\nB. the cat\nAnswer:", [" A", " B"], "first"),
    LoglikItem("Q: where?\nAnswer: ", ["home", "the other house", "x"], "second, trailing space"),
    LoglikItem("Short\nAnswer:", [" the end", " A"], "third"),
    LoglikItem("", [" hello there"], "empty context"),
]


def test_encode_pair_follows_lm_eval(tokenizer) -> None:
    # trailing whitespace moves into the continuation; the split is taken from the encoding of the whole string
    assert encode_pair(tokenizer, "Answer: ", "B") == encode_pair(tokenizer, "Answer:", " B")
    whole = tokenizer("x Answer: B")["input_ids"]
    context, continuation = encode_pair(tokenizer, "x Answer:", " B")
    # ":" + " " merge across the boundary: the context is encoded alone, the continuation is what follows in `whole`
    assert context == tokenizer("x Answer:")["input_ids"] and context + continuation != whole
    assert continuation == whole[len(context) :] == tokenizer("B", add_special_tokens=False)["input_ids"]
    assert encode_pair(tokenizer, "", " hi")[0] == [tokenizer.bos_token_id]


@pytest.mark.parametrize("share_prefix", [True, False])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_loglik_matches_full_forward(tiny, tokenizer, share_prefix: bool, batch_size: int) -> None:
    lm = EvalModel.wrap(tiny, tokenizer, "tiny")
    scores, truncated = score_continuations(lm, ITEMS, batch_size=batch_size, share_prefix=share_prefix)
    assert truncated == 0
    for item, per_option in zip(ITEMS, scores, strict=True):
        assert len(per_option) == len(item.continuations)
        for continuation, score in zip(item.continuations, per_option, strict=True):
            assert score.logprob == pytest.approx(
                loglik_reference(tiny, tokenizer, item.context, continuation), abs=1e-4
            )


def test_greedy_flag(tiny, tokenizer) -> None:
    with torch.no_grad():
        tiny.lm_head.weight.zero_()  # every logit ties, and argmax takes the first index: token 0 is greedy
    greedy = tokenizer.decode([0, 0])
    assert encode_pair(tokenizer, "Answer:", greedy)[1] == [0, 0]
    lm = EvalModel.wrap(tiny, tokenizer, "tiny")
    scores, _ = score_continuations(lm, [LoglikItem("Answer:", [greedy, " B"], "")])
    assert [s.greedy for s in scores[0]] == [True, False]


def test_left_truncation_beyond_context(tiny, tokenizer) -> None:
    lm = EvalModel.wrap(tiny, tokenizer, "tiny", max_length=12)
    item = LoglikItem("a long context that does not fit\nAnswer:", [" A", " the cat"], "")
    scores, truncated = score_continuations(lm, [item])
    assert truncated == 1
    for continuation, score in zip(item.continuations, scores[0], strict=True):
        context_ids, continuation_ids = encode_pair(tokenizer, item.context, continuation)
        full = (context_ids + continuation_ids)[-13:]
        with torch.no_grad():
            logp = torch.log_softmax(tiny(input_ids=torch.tensor([full[:-1]])).logits[0].double(), -1)
        n = len(continuation_ids)
        expected = sum(float(logp[len(full) - 1 - n + i, t]) for i, t in enumerate(full[-n:]))
        assert score.logprob == pytest.approx(expected, abs=1e-4)


class ScoreRecorder:
    """Intuition bank stand-in that records what it was asked to score."""

    def __init__(self, bank) -> None:
        self.bank, self.n_clusters, self.texts = bank, bank.n_clusters, []

    def score(self, texts):
        self.texts.extend(texts)
        return self.bank.score(texts)


def test_trex_intuition_per_instance(tokenizer, adapter_dir, fixed_bank) -> None:
    model = TRexModel.from_pretrained(tiny_llama(0), adapter_dir)
    bank = ScoreRecorder(fixed_bank(model.trex_config.intuition_width))
    model.attach_intuition_bank(bank)
    lm = EvalModel.wrap(model, tokenizer, "tiny", str(adapter_dir))
    scores, _ = score_continuations(lm, ITEMS[:3], batch_size=2)
    assert sorted(bank.texts) == sorted(item.intuition_text for item in ITEMS[:3])  # once per instance
    for item, per_option in zip(ITEMS[:3], scores, strict=True):
        intuition = fixed_bank(model.trex_config.intuition_width).score([item.intuition_text])
        for continuation, score in zip(item.continuations, per_option, strict=True):
            expected = loglik_reference(model, tokenizer, item.context, continuation, intuition=intuition)
            assert score.logprob == pytest.approx(expected, abs=1e-4)
    # intuition matters: another instance's intuition gives other numbers
    other = fixed_bank(model.trex_config.intuition_width).score(["something else entirely"])
    assert loglik_reference(model, tokenizer, ITEMS[0].context, " A", intuition=other) != pytest.approx(
        scores[0][0].logprob, abs=1e-4
    )


def test_length_groups_cover_every_row_once_and_split_long_from_short() -> None:
    from trex.eval.loglik import _length_groups

    lengths = [40, 3, 38, 2, 41, 4, 3, 39]
    groups = _length_groups(lengths, overhead=8)
    assert sorted(r for g in groups for r in g) == list(range(len(lengths)))
    assert sorted(sorted(lengths[r] for r in g) for g in groups) == [[2, 3, 3, 4], [38, 39, 40, 41]]
    assert _length_groups([5, 5, 5], overhead=8) == [[0, 1, 2]]
    assert _length_groups([5, 5, 5], overhead=8, max_size=2) == [[0, 1], [2]]  # equal lengths keep their order
    assert _length_groups([9, 1, 9, 1], overhead=0, max_size=1) == [[0], [2], [1], [3]]


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_loglik_with_length_groups_matches_full_forward(tiny, tokenizer, monkeypatch, batch_size: int) -> None:
    """Prompts and options of very different lengths (so batches and the option rows of a batch are split into
    groups) score as one plain forward of prompt + option each, to 1e-5."""
    import trex.eval.loglik as loglik

    monkeypatch.setattr(loglik, "GROUP_OVERHEAD_TOKENS", 0)
    items = [
        LoglikItem("Pick one:", [" a", " a much longer option with many more words in it", " b c"], "x"),
        LoglikItem("Another prompt, a bit longer than the first one:", [" yes", " no, and here is why not"], "y"),
        LoglikItem("Third", [" one two three four five six", " z"], "z"),
    ]
    lm = EvalModel.wrap(tiny, tokenizer, "tiny", chat_template=False)
    assert len(loglik._length_groups([2, 12, 3])) > 1
    batches, score_batch = [], loglik._score_batch
    monkeypatch.setattr(
        loglik, "_score_batch", lambda lm, batch, *rest: batches.append(batch) or score_batch(lm, batch, *rest)
    )
    scores, _ = score_continuations(lm, items, batch_size=batch_size)
    assert len(batches) == 3  # at no cost per pass, prompts of three lengths run as three batches at any size
    for item, per_option in zip(items, scores, strict=True):
        for continuation, score in zip(item.continuations, per_option, strict=True):
            assert score.logprob == pytest.approx(
                loglik_reference(tiny, tokenizer, item.context, continuation), abs=1e-5
            )
