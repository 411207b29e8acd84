"""Requests: the strings the model sees, passage-side truncation with counts, and the dump format."""

from __future__ import annotations

from trex.data import intuition_text, load_task, model_strings, render
from trex.eval import EvalRequest, build_requests, read_requests, write_requests
from trex.eval.requests import build_request


def test_requests_are_model_strings(chat_tokenizer) -> None:
    instances = load_task("copa", "eval", limit=3)
    for fmt in ("letters", "cloze"):
        requests = build_requests("copa", instances, fmt, chat_tokenizer, True, 10_000).requests
        for instance, request in zip(instances, requests, strict=True):
            prompt, target, options = model_strings(render(instance, fmt), chat_tokenizer, True)
            assert (request.prompt, request.target, request.options) == (prompt, target, options)
            assert request.prompt.startswith("<|im_start|>user")
            assert request.intuition_text == intuition_text(instance)
            assert request.gold == instance.label
            assert request.answer_type == ("letter" if fmt == "letters" else "option")


def test_long_passage_is_cut_from_its_end_and_counted(tokenizer) -> None:
    instance = load_task("boolq", "eval", limit=1)[0]
    full = build_request(instance, 0, "letters", tokenizer, False, 100_000)
    answer = len(tokenizer(" A", add_special_tokens=False)["input_ids"])
    budget = len(tokenizer(full.prompt)["input_ids"]) + answer - 40
    short = build_request(instance, 0, "letters", tokenizer, False, budget)
    assert short.truncated and not full.truncated
    assert len(tokenizer(short.prompt)["input_ids"]) + answer <= budget
    assert short.prompt.endswith(full.prompt[full.prompt.index("\n\n") :])  # question and options untouched
    kept_passage = short.prompt.split("\n\n")[0]
    assert instance.passage.strip().startswith(kept_passage)  # the start of the passage is kept
    assert short.intuition_text == intuition_text(instance)  # intuition comes from the untruncated instance


def test_too_long_without_passage_is_dropped(tokenizer) -> None:
    instances = load_task("copa", "eval", limit=2)  # COPA has no passage to shorten
    request_set = build_requests("copa", instances, "letters", tokenizer, False, 10)
    assert request_set.requests == [] and len(request_set.dropped) == 2


def test_dump_round_trip(tmp_path, tokenizer) -> None:
    requests = build_requests("piqa", load_task("piqa", "eval", limit=4), "cloze", tokenizer, False, 4096).requests
    path = tmp_path / "requests.jsonl"
    assert write_requests(path, requests) == 4
    assert read_requests(path) == requests
    assert all(isinstance(r, EvalRequest) for r in read_requests(path))
