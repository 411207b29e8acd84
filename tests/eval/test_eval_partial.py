"""A task interrupted mid-way resumes from its saved chunks, and never mixes in rows of another setup."""

from __future__ import annotations

import json

import pytest

from trex.eval import EvalError, EvalModel, evaluate
from trex.eval import scoring as scoring_module

KWARGS = {"scoring": "generate", "limit": 7}


@pytest.fixture
def lm(tiny, chat_tokenizer) -> EvalModel:
    return EvalModel.wrap(tiny, chat_tokenizer, "tiny", max_length=400)


@pytest.fixture
def chunks_of_three(monkeypatch) -> list[list[str]]:
    """Chunks of 3 instances; records the uids of every chunk scored."""
    monkeypatch.setattr(scoring_module, "CHUNK_INSTANCES", 3)
    scored, real = [], scoring_module.score_requests

    def recording(lm, requests, *args, **kwargs):
        scored.append([r.uid for r in requests])
        return real(lm, requests, *args, **kwargs)

    monkeypatch.setattr(scoring_module, "score_requests", recording)
    return scored


def interrupt_at_chunk(monkeypatch, number: int) -> None:
    real, calls = scoring_module.score_requests, []

    def interrupted(lm, requests, *args, **kwargs):
        calls.append(1)
        if len(calls) == number:
            raise KeyboardInterrupt  # Ctrl-C, or the end of a sitting
        return real(lm, requests, *args, **kwargs)

    monkeypatch.setattr(scoring_module, "score_requests", interrupted)


def predictions(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]


def test_an_interrupted_task_resumes_from_its_last_chunk(lm, tmp_path, monkeypatch, chunks_of_three) -> None:
    whole = evaluate(lm, ["copa", "rte"], output_dir=tmp_path / "whole", **KWARGS)
    chunks_of_three.clear()
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        interrupt_at_chunk(patch, 5)  # copa's 3 chunks, rte's first, then the interruption
        with pytest.raises(KeyboardInterrupt):
            evaluate(lm, ["copa", "rte"], output_dir=out, **KWARGS)
    saved = (out / "partial" / "rte.jsonl").read_text().splitlines()
    assert len(saved) == 2 and json.loads(saved[0])["settings"]["limit"] == 7  # the header, one chunk of rte
    with open(out / "partial" / "rte.jsonl", "a") as handle:
        handle.write('{"rows": [{"uid": "cut')  # a chunk cut off by a kill is scored again
    chunks_of_three.clear()
    resumed = evaluate(lm, ["copa", "rte"], output_dir=out, resume=True, **KWARGS)
    rte = [p["uid"] for p in predictions(tmp_path / "whole") if p["task"] == "rte"]
    assert chunks_of_three == [rte[3:6], rte[6:]]  # rte's first chunk is not scored again, copa not at all
    assert predictions(out) == predictions(tmp_path / "whole")  # every row, in instance order
    for task in ("copa", "rte"):
        assert resumed.results[task].correct == whole.results[task].correct
        assert resumed.results[task].n == 7
    assert not (out / "partial").exists()


def test_saved_chunks_of_other_settings_are_not_used(lm, tmp_path, monkeypatch, chunks_of_three) -> None:
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        interrupt_at_chunk(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            evaluate(lm, ["copa"], output_dir=out, **KWARGS)
    header = json.loads((out / "partial" / "copa.jsonl").read_text().splitlines()[0])
    header["settings"]["format"] = "cloze"  # as if written by a run of another format
    lines = (out / "partial" / "copa.jsonl").read_text().splitlines()
    (out / "partial" / "copa.jsonl").write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    chunks_of_three.clear()
    evaluate(lm, ["copa"], output_dir=out, resume=True, **KWARGS)
    assert sum(len(chunk) for chunk in chunks_of_three) == 7  # every instance scored again


def test_a_fresh_run_refuses_a_folder_with_a_task_in_part(lm, tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    monkeypatch.setattr(scoring_module, "CHUNK_INSTANCES", 3)
    with monkeypatch.context() as patch:
        interrupt_at_chunk(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            evaluate(lm, ["copa"], output_dir=out, **KWARGS)
    (out / "predictions.jsonl").unlink()  # only the part of copa is left
    with pytest.raises(EvalError, match="a task scored in part"):
        evaluate(lm, ["copa"], output_dir=out, **KWARGS)
    run = evaluate(lm, ["copa"], output_dir=out, overwrite=True, **KWARGS)
    assert run.results["copa"].n == 7 and not (out / "partial").exists()
