"""Evaluation in the authors' protocol: `official` requests, splits, the BBH form and the yes/no mapping."""

from __future__ import annotations

import json

import pytest

from trex.data import load_task
from trex.eval import EvalError, EvalModel, EvalRequest, build_requests, evaluate
from trex.eval import cli as eval_cli
from trex.eval.generate import predict, predict_detail


@pytest.fixture
def lm(tiny, chat_tokenizer) -> EvalModel:
    return EvalModel.wrap(tiny, chat_tokenizer, "tiny", max_length=400)


def _request(choices: list[str], gold: int = 1) -> EvalRequest:
    return EvalRequest(
        "boolq", "u", 0, "...\nChoices:\nA. False\nB. True\nAnswer:", [" A", " B"], gold, " B", "letter", "",
        letters=["A", "B"], choices=choices,
    )  # fmt: skip


def test_yes_no_mapping_follows_the_shown_options() -> None:
    boolq = _request(["False", "True"])  # the authors' BoolQ: yes/true -> B, no/false -> A (chat.py:409-419)
    assert predict_detail(boolq, " Yes", map_yes_no=True) == (1, True, True)
    assert predict_detail(boolq, " true.", map_yes_no=True) == (1, True, True)
    assert predict_detail(boolq, " no", map_yes_no=True) == (0, False, True)
    assert predict_detail(boolq, " B", map_yes_no=True) == (1, True, False)  # a letter is never "mapped"
    assert predict(boolq, " Yes") == (None, False)  # off by default: unreadable
    bbh = _request(["Yes", "No"], gold=0)  # BBH's "A. Yes / B. No": yes -> A (their fixed table said B)
    assert predict_detail(bbh, "yes", map_yes_no=True) == (0, True, True)
    rte = _request(["entailment", "not entailment"])  # no option says yes: stays unreadable
    assert predict_detail(rte, " yes", map_yes_no=True) == (None, False, False)


def test_official_requests_and_letter_answers(chat_tokenizer) -> None:
    instances = load_task("wic", "eval", limit=3)
    requests = build_requests("wic", instances, "official", chat_tokenizer, False, 10_000).requests
    for instance, request in zip(instances, requests, strict=True):
        assert request.prompt.endswith("Choices:\nA. No\nB. Yes\nAnswer:")
        assert request.answer_type == "letter" and request.letters == ["A", "B"]
        assert request.choices == ["No", "Yes"] and request.gold == 1 - instance.label


def test_bbh_binary_requests_end_in_letter_options(chat_tokenizer) -> None:
    instances = load_task("bbh_web_of_lies", "eval", limit=3)
    for fmt in ("letters", "official"):
        for request in build_requests("bbh_web_of_lies", instances, fmt, chat_tokenizer, False, 10_000).requests:
            assert request.prompt.endswith("Choices:\nA. Yes\nB. No\nAnswer:")
            assert request.answer_type == "letter" and request.options == [" A", " B"]
            assert predict(request, " A")[1] == (request.gold == 0)
    trex_form = build_requests("bbh_web_of_lies", instances, "letters", chat_tokenizer, False, 10_000, 0, "trex")
    assert all(r.answer_type == "binary" for r in trex_form.requests)


def test_word_sorting_in_the_authors_form_ignores_commas_and_full_stops(chat_tokenizer) -> None:
    instance = load_task("bbh_word_sorting", "eval", limit=1)[0]
    (request,) = build_requests("bbh_word_sorting", [instance], "official", chat_tokenizer, False, 10_000).requests
    assert request.ignore_chars == ",."
    assert predict(request, " " + instance.target_text.replace(" ", ", ") + ".")[1]


def test_mapped_answers_are_counted_in_results(lm, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("trex.eval.scoring.generate_answers", lambda lm, requests, batch_size: ["Yes"] * len(requests))
    run = evaluate(lm, ["boolq"], fmt="official", map_yes_no=True, limit=4, output_dir=tmp_path)
    result = run.results["boolq"]
    assert result.mapped == 4 and result.unreadable == 0
    gold_true = sum(i.label == 0 for i in load_task("boolq", "eval", limit=4))  # trex label 0 = yes
    assert result.correct == gold_true
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["tasks"]["boolq"]["mapped"] == 4 and saved["map_yes_no"] is True and saved["format"] == "official"
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert all(row["mapped"] for row in rows)
    unmapped = evaluate(lm, ["boolq"], fmt="official", limit=4).results["boolq"]
    assert unmapped.mapped == 0 and unmapped.unreadable == 4


def test_official_split_in_evaluate(lm) -> None:
    run = evaluate(lm, ["openbookqa", "mmlu"], scoring="loglik", fmt="official", split="official", limit=2)
    assert run.settings["split"] == "official" and run.results["openbookqa"].loaded == 2
    assert "1,531" in run.failed["mmlu"] and "mmlu" not in run.results  # no silent fall-back to test
    with pytest.raises(EvalError, match="unknown split"):
        evaluate(lm, ["copa"], split="test")  # type: ignore[arg-type]
    with pytest.raises(EvalError, match="needs --scoring generate"):
        evaluate(lm, ["copa"], scoring="loglik", map_yes_no=True)


def test_format_not_given_resolves_to_letters(lm, tmp_path, monkeypatch) -> None:
    assert evaluate(lm, ["copa"], scoring="loglik", limit=2).settings["format"] == "letters"
    monkeypatch.setattr("trex.eval.loading.load_eval_model", lambda *a, **k: lm)
    eval_cli.eval_command(task=["copa"], scoring="loglik", limit=2, output=tmp_path, batch_size=2, fmt=None,
                          model="tiny", adapter=None, data_root=None, chat_template=True, max_length=None,
                          dump_requests=None, metric="acc", resume=False, overwrite=False, split="official",
                          bbh_form=None, map_yes_no=False)  # fmt: skip
    saved = json.loads((tmp_path / "results.json").read_text())
    assert (saved["format"], saved["split"], saved["bbh_form"]) == ("letters", "official", "authors")


def test_runs_written_before_these_settings_still_resume(lm, tmp_path) -> None:
    evaluate(lm, ["copa"], scoring="loglik", fmt="cloze", limit=2, output_dir=tmp_path)
    path = tmp_path / "results.json"
    saved = json.loads(path.read_text())
    for key in ("split", "bbh_form", "map_yes_no"):
        del saved[key]
    path.write_text(json.dumps(saved))
    run = evaluate(lm, ["copa", "rte"], scoring="loglik", fmt="cloze", limit=2, output_dir=tmp_path, resume=True)
    assert set(run.results) == {"copa", "rte"} and not run.failed
