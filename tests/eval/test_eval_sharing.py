"""Passages shared across instances: which instances group, and scores equal to one plain forward per option."""

from __future__ import annotations

import pytest
import torch
from trex_testing import greedy_reference, loglik_reference, tiny_llama

from trex.eval import EvalModel, EvalRequest, LoglikItem, encode_pair, score_continuations
from trex.eval.generate import generate_answers, generation_budget
from trex.eval.sharing import prior_inputs, shared_start, sharing_groups
from trex.model import TRexModel

PASSAGE = (
    "Paragraph: The lighthouse keeper rowed out at dawn every day to check the lamp, the lens and the oil, "
    "then wrote the weather in a book kept by the door.\n"
)
OTHER = "Paragraph: A different story about a baker who rose before the sun to light the ovens of the town.\n"
ITEMS = [
    LoglikItem(PASSAGE + "Question: Who rowed?\nAnswer:", [" the keeper", " a baker"], "q1"),
    LoglikItem(PASSAGE + "Question: When did he go out?\nAnswer:", [" at dawn", " at night time"], "q2"),
    LoglikItem(PASSAGE + "Question: Where was the book?\nAnswer:", [" A", " by the door"], "q3"),
    LoglikItem(OTHER + "Question: Who rose early?\nAnswer:", [" the baker", " the keeper"], "q4"),
    LoglikItem(OTHER + "Question: What did he light?\nAnswer:", [" ovens", " lamps"], "q5"),
    LoglikItem("Short prompt\nAnswer:", [" yes", " no"], "q6"),
]


def test_shared_start() -> None:
    assert shared_start([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert shared_start([[5], [6]]) == 0


def test_sharing_groups_rules() -> None:
    passage = list(range(100))
    rows = [passage + [7], passage + [8, 9], passage + [1] * 30, list(range(50)) + [0], passage + [3]]
    # rows 0-2 share the passage (100 tokens, at least half of each); row 3 shares 50: below min_tokens=64
    assert sharing_groups(rows, [None] * 5) == [([0, 1, 2], 100), ([3], 0), ([4], 0)]
    # other keys (per-instance inputs that differ) never share; a row that is not shareable stays alone
    assert sharing_groups(rows, ["a", "b", "b", None, None]) == [([0], 0), ([1, 2], 100), ([3], 0), ([4], 0)]
    assert sharing_groups(rows, [None] * 5, [True, False, True, True, True]) == [
        ([0], 0), ([1], 0), ([2], 0), ([3], 0), ([4], 0),
    ]  # fmt: skip
    # a shared start must be at least half of every member: a long tail keeps an instance alone
    assert sharing_groups([passage + [1], passage + [2] * 150], [None, None]) == [([0], 0), ([1], 0)]
    # every member keeps a token of its own, even when one row is the start of the other
    assert sharing_groups([passage, passage + [1]], [None, None], min_tokens=10) == [([0, 1], 99)]


def test_prior_inputs_keys(tokenizer, adapter_dir, fixed_bank) -> None:
    lm = EvalModel.wrap(tiny_llama(0), tokenizer, "tiny")
    assert prior_inputs(lm, ["a", "b"], [None, None]) == ({}, [None, None])
    model = TRexModel.from_pretrained(tiny_llama(0), adapter_dir)
    model.attach_intuition_bank(fixed_bank(model.trex_config.intuition_width))
    inputs, keys = prior_inputs(EvalModel.wrap(model, tokenizer, "tiny", str(adapter_dir)), ["ab", "xy", "ab"], None)
    assert inputs["intuition"].shape[0] == 3
    assert keys[0] == keys[2] != keys[1]


def _record_passages(monkeypatch) -> list[int]:
    import trex.eval.loglik as loglik

    lengths, run_passage = [], loglik.run_passage

    def recording(lm, passage_ids, extras):
        lengths.append(len(passage_ids))
        return run_passage(lm, passage_ids, extras)

    monkeypatch.setattr(loglik, "run_passage", recording)
    return lengths


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_shared_passages_score_as_full_forwards(tiny, tokenizer, monkeypatch, batch_size: int) -> None:
    passages = _record_passages(monkeypatch)
    lm = EvalModel.wrap(tiny, tokenizer, "tiny", chat_template=False)
    scores, truncated = score_continuations(lm, ITEMS, batch_size=batch_size)
    assert truncated == 0
    assert len(passages) == 2 and min(passages) >= 64  # each paragraph ran once
    for item, per_option in zip(ITEMS, scores, strict=True):
        for continuation, score in zip(item.continuations, per_option, strict=True):
            assert score.logprob == pytest.approx(
                loglik_reference(tiny, tokenizer, item.context, continuation), abs=1e-4
            )
    unshared, _ = score_continuations(lm, ITEMS, batch_size=batch_size, share_prefix=False)
    assert [[s.greedy for s in row] for row in scores] == [[s.greedy for s in row] for row in unshared]


@pytest.mark.parametrize("same_intuition", [False, True])
def test_trex_shares_a_passage_only_under_equal_intuition(
    tokenizer, adapter_dir, fixed_bank, monkeypatch, same_intuition: bool
) -> None:
    passages = _record_passages(monkeypatch)
    model = TRexModel.from_pretrained(tiny_llama(0), adapter_dir)
    bank = fixed_bank(model.trex_config.intuition_width)
    model.attach_intuition_bank(bank)
    texts = ["one text"] * len(ITEMS) if same_intuition else ["x" * (k + 1) for k in range(len(ITEMS))]  # all differ
    items = [LoglikItem(i.context, i.continuations, t) for i, t in zip(ITEMS, texts, strict=True)]
    lm = EvalModel.wrap(model, tokenizer, "tiny", str(adapter_dir), chat_template=False)
    scores, _ = score_continuations(lm, items, batch_size=2)
    assert len(passages) == (2 if same_intuition else 0)  # sharing needs equal intuition rows
    for item, per_option in zip(items, scores, strict=True):
        intuition = bank.score([item.intuition_text])
        for continuation, score in zip(item.continuations, per_option, strict=True):
            expected = loglik_reference(model, tokenizer, item.context, continuation, intuition=intuition)
            assert score.logprob == pytest.approx(expected, abs=1e-4)


def _requests(texts: list[str]) -> list[EvalRequest]:
    return [
        EvalRequest("t", f"u{k}", k, item.context, [], None, "a target of a dozen tokens", "free_text", text)
        for k, (item, text) in enumerate(zip(ITEMS, texts, strict=True))
    ]


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_generation_after_a_shared_passage_matches_full_forwards(tiny, tokenizer, monkeypatch, batch_size) -> None:
    import trex.eval.generate as generate

    passages, run_passage = [], generate.run_passage
    monkeypatch.setattr(
        generate, "run_passage", lambda lm, ids, extras: passages.append(len(ids)) or run_passage(lm, ids, extras)
    )
    lm = EvalModel.wrap(tiny, tokenizer, "tiny", chat_template=False)
    requests = _requests([i.intuition_text for i in ITEMS])
    budget = generation_budget(requests, tokenizer)
    texts = generate_answers(lm, requests, batch_size)
    assert len(passages) == 2 and min(passages) >= 64
    assert texts == [greedy_reference(tiny, tokenizer, r.prompt, budget) for r in requests]


def test_trex_generation_after_a_shared_passage(tokenizer, adapter_dir, fixed_bank) -> None:
    model = TRexModel.from_pretrained(tiny_llama(0), adapter_dir)
    bank = fixed_bank(model.trex_config.intuition_width)
    model.attach_intuition_bank(bank)
    lm = EvalModel.wrap(model, tokenizer, "tiny", str(adapter_dir), chat_template=False)
    requests = _requests(["one text"] * 3 + ["x" * (k + 1) for k in range(3)])  # the first paragraph is shared
    budget = generation_budget(requests, tokenizer)
    expected = [greedy_reference(model, tokenizer, r.prompt, budget, intuition=bank.score([r.intuition_text]))
                for r in requests]  # fmt: skip
    assert generate_answers(lm, requests, 2) == expected


def test_left_truncated_instances_stay_out_of_a_shared_passage(tiny, tokenizer, monkeypatch) -> None:
    """In a window that cuts the longest prompt (ITEMS[1], 177 tokens) from the left, it scores alone; the two
    others still share their paragraph."""
    passages = _record_passages(monkeypatch)
    window, items = 170, [ITEMS[0], ITEMS[2], ITEMS[1]]
    lm = EvalModel.wrap(tiny, tokenizer, "tiny", chat_template=False, max_length=window)
    scores, truncated = score_continuations(lm, items, batch_size=2)
    assert truncated == 1 and len(passages) == 1
    for item, per_option in zip(items, scores, strict=True):
        for continuation, score in zip(item.continuations, per_option, strict=True):
            context_ids, continuation_ids = encode_pair(tokenizer, item.context, continuation)
            full = (context_ids + continuation_ids)[-(window + 1) :]
            with torch.no_grad():
                logp = torch.log_softmax(tiny(input_ids=torch.tensor([full[:-1]])).logits[0].double(), -1)
            n = len(continuation_ids)
            expected = sum(float(logp[len(full) - 1 - n + i, t]) for i, t in enumerate(full[-n:]))
            assert score.logprob == pytest.approx(expected, abs=1e-4)
