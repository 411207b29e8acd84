"""Readers of the staged schemas: bad input errors name file, line and field; special cases parse right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trex.data import DataError
from trex.data import readers as r


def _write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_malformed_json_reports_file_and_line(tmp_path: Path) -> None:
    good = json.dumps({"premise": "p", "hypothesis": "h", "label": "entailment"})
    path = _write(tmp_path, "rte.jsonl", [good, "{not json"])
    with pytest.raises(DataError, match=r"rte\.jsonl:2: malformed JSON"):
        list(r.superglue_rte(path, "rte.jsonl", "rte"))


def test_missing_field_names_field_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "rte.jsonl", [json.dumps({"premise": "p", "label": "entailment"})])
    with pytest.raises(DataError, match=r"rte\.jsonl:1: missing field 'hypothesis'"):
        list(r.superglue_rte(path, "rte.jsonl", "rte"))


def test_label_outside_options_is_an_error(tmp_path: Path) -> None:
    line = {"premise": "p", "choice1": "a", "choice2": "b", "question": "cause", "label": 2}
    path = _write(tmp_path, "copa.jsonl", [json.dumps(line)])
    with pytest.raises(DataError, match=r"copa\.jsonl:1: label 2 is outside the 2 options"):
        list(r.superglue_copa(path, "copa.jsonl", "copa"))
    path = _write(tmp_path, "rte.jsonl", [json.dumps({"premise": "p", "hypothesis": "h", "label": "maybe"})])
    with pytest.raises(DataError, match="field 'label' must be one of"):
        list(r.superglue_rte(path, "rte.jsonl", "rte"))


def test_multirc_gives_one_true_false_instance_per_answer(tmp_path: Path) -> None:
    answers = [{"text": "blue", "idx": 0, "label": 1}, {"text": "red", "idx": 1, "label": 0}]
    record = {
        "idx": 7,
        "passage": {"text": "The sky is blue.", "questions": [{"question": "Colour?", "idx": 3, "answers": answers}]},
    }
    path = _write(tmp_path, "m.jsonl", [json.dumps(record)])
    instances = list(r.superglue_multirc(path, "m.jsonl", "multirc"))
    assert [i.label for i in instances] == [0, 1]
    assert all(i.options == ["true", "false"] and i.passage == "The sky is blue." for i in instances)
    assert "Candidate answer: red" in instances[1].question
    assert instances[1].uid == "m.jsonl:1/3/1" and instances[1].meta["question_idx"] == 3


def test_obqa_choice_containing_a_letter_marker(tmp_path: Path) -> None:
    header = "ID\tQuestion Stem\tChoices\tComplete Question\tAnswer Key"
    row = "12-1145\tA learned behavior\t(A) t (B) s (C) ducks (D) birds (D) dogs\tx\tB"
    (instance,) = r.obqa_tsv(_write(tmp_path, "o.tsv", [header, row]), "o.tsv", "openbookqa")
    assert instance.options == ["t", "s", "ducks (D) birds", "dogs"] and instance.label == 1


def test_llm_adapters_choice_parses_options(tmp_path: Path) -> None:
    item = {
        "instruction": "Please choose the correct answer to the question: Why?\n\nAnswer1: a b Answer2: c"
        "\n\nAnswer format: answer1/answer2",
        "input": "", "output": "the correct answer is answer2", "answer": "answer2",
    }  # fmt: skip
    path = tmp_path / "train.json"
    path.write_text(json.dumps([item]))
    (instance,) = r.llm_adapters_choice(path, "train.json", "arc_easy")
    assert (instance.question, instance.options, instance.label) == ("Why?", ["a b", "c"], 1)


def test_bbh_answer_types(tmp_path: Path) -> None:
    def bbh(examples: list[dict]) -> list:
        path = tmp_path / "t.json"
        path.write_text(json.dumps({"canary": "x", "examples": examples}))
        return list(r.bbh(path, "bbh/t.json", "bbh_t"))

    mc = bbh([{"input": "Q\nOptions:\n(A) x\n(B) y", "target": "(B)"}])[0]
    assert (mc.options, mc.label, mc.meta["answer_type"]) == (["(A)", "(B)"], 1, "multiple_choice")
    yes_no = bbh([{"input": "Q1", "target": "Yes"}, {"input": "Q2", "target": "No"}])
    assert [(i.options, i.label) for i in yes_no] == [(["No", "Yes"], 1), (["No", "Yes"], 0)]
    free = bbh([{"input": "1+1=", "target": "2"}, {"input": "2+2=", "target": "4"}, {"input": "3=", "target": "3"}])
    assert all(i.options == [] and i.meta["answer_type"] == "free_text" for i in free)
    assert free[1].target_text == "4"
