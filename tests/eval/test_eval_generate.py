"""Generate scoring: batched left-padded greedy decoding against a no-cache loop, and the answer-reading rules."""

from __future__ import annotations

import dataclasses

import pytest
from trex_testing import greedy_reference, tiny_llama

from trex.eval import EvalModel, EvalRequest
from trex.eval.generate import _cut, generate_batch, generation_budget, predict, read_letter
from trex.model import TRexModel

PROMPTS = [
    "The cat sat on the mat.\nA. yes\nB. no\nAnswer:",
    "Q?\nAnswer:",
    "A much longer prompt, with more words\nAnswer:",
]


def test_batched_generation_matches_unbatched_reference(tiny, tokenizer) -> None:
    lm = EvalModel.wrap(tiny, tokenizer, "tiny")
    texts = generate_batch(lm, PROMPTS, PROMPTS, max_new_tokens=4)
    assert texts == [greedy_reference(tiny, tokenizer, p, 4) for p in PROMPTS]


def test_trex_generation_uses_each_instances_intuition(tokenizer, adapter_dir, fixed_bank) -> None:
    model = TRexModel.from_pretrained(tiny_llama(0), adapter_dir)
    bank = fixed_bank(model.trex_config.intuition_width)
    model.attach_intuition_bank(bank)
    lm = EvalModel.wrap(model, tokenizer, "tiny", str(adapter_dir))
    texts = generate_batch(lm, PROMPTS, ["one", "two two", "three"], max_new_tokens=3)
    expected = [
        greedy_reference(model, tokenizer, p, 3, intuition=bank.score([t]))
        for p, t in zip(PROMPTS, ["one", "two two", "three"], strict=True)
    ]
    assert texts == expected


def test_stop_strings_cut_generation(tiny, tokenizer) -> None:
    assert _cut("B. Paris\nQ: next", ["\n", "Q:"]) == "B. Paris"
    assert _cut("no stop here", ["\n"]) == "no stop here"
    lm = EvalModel.wrap(tiny, tokenizer, "tiny")
    with_stop = generate_batch(lm, PROMPTS, PROMPTS, 4, stop_strings=["\n\n"])
    assert with_stop == [_cut(t, ["\n\n"]) for t in generate_batch(lm, PROMPTS, PROMPTS, 4)]


@pytest.mark.parametrize(
    ("text", "letter"),
    [(" B", "B"), ("b. Paris", "B"), (" (C) because", "C"), ("\n\nA", "A"), ("The answer", None), ("", None),
     ("[d]", "D"), ("42", None)],
)  # fmt: skip
def test_read_letter(text: str, letter: str | None) -> None:
    assert read_letter(text) == letter


def _request(**kw) -> EvalRequest:
    base = dict(task="t", uid="u", index=0, prompt="p", options=[" A", " B"], gold=1, target=" B",
                answer_type="letter", intuition_text="p", letters=["A", "B"])  # fmt: skip
    return EvalRequest(**{**base, **kw})


def test_predict_rules() -> None:
    letter = _request()
    assert predict(letter, " b") == (1, True)
    assert predict(letter, " A.") == (0, False)
    assert predict(letter, " Z") == (None, False)
    binary = _request(options=[" No", " Yes"], target=" Yes", answer_type="binary", letters=[])
    assert predict(binary, " yes, because") == (1, True)
    assert predict(binary, "No.") == (0, False)
    number = _request(options=[], gold=None, target=" 15", answer_type="free_text", letters=[])
    assert predict(number, " There are 15 fruits")[1] is True
    assert predict(number, " 16")[1] is False
    text = dataclasses.replace(number, target=" ] ) }")
    assert predict(text, " ]  ) }\nmore")[1] is True
    assert predict(text, " ] )")[1] is False


def test_generation_budget(tokenizer) -> None:
    assert generation_budget([_request()], tokenizer) == 2
    free = _request(options=[], gold=None, target=" a b c d e f", answer_type="free_text", letters=[])
    assert generation_budget([_request(), free], tokenizer) == len(tokenizer(" a b c d e f")["input_ids"]) + 2
