"""`evaluate` and `trex eval`: output files, counts, the Table 1 layout, partial results and bad input."""

from __future__ import annotations

import json

import pytest
from trex_testing import tiny_llama

from trex.eval import EvalError, EvalModel, evaluate, resolve_tasks, runner, table1
from trex.eval import cli as eval_cli
from trex.eval.metrics import choose, wilson_interval


@pytest.fixture
def lm(tiny, chat_tokenizer) -> EvalModel:
    return EvalModel.wrap(tiny, chat_tokenizer, "tiny", max_length=400)


def test_wilson_interval_reference_values() -> None:
    # reference: statsmodels proportion_confint(7, 10, method="wilson") = (0.3968, 0.8922)
    low, high = wilson_interval(7, 10)
    assert (round(low, 4), round(high, 4)) == (0.3968, 0.8922)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == pytest.approx(1.0)


def test_choose_acc_and_acc_norm() -> None:
    # acc: largest sum; acc_norm: largest per character (leading space counted); ties go to the first option
    assert choose([-4.0, -6.0], [" ab", " abcdefgh"]) == (0, 1)
    assert choose([-1.0, -1.0], [" a", " b"]) == (0, 0)


def test_resolve_tasks() -> None:
    assert resolve_tasks(["suite"])[:3] == ["multirc", "mmlu", "boolq"] and len(resolve_tasks(["suite"])) == 14
    assert len(resolve_tasks(["bbh"])) == 27
    assert resolve_tasks(["copa,rte", "copa"]) == ["copa", "rte"]
    with pytest.raises(EvalError, match="did you mean 'copa'"):
        resolve_tasks(["copa2"])


@pytest.mark.parametrize("scoring", ["loglik", "generate"])
def test_evaluate_writes_outputs(lm, tmp_path, scoring: str) -> None:
    run = evaluate(lm, ["copa", "boolq", "bbh_navigate"], scoring=scoring, limit=6, batch_size=4,
                   output_dir=tmp_path, dump_requests=tmp_path / "requests.jsonl")  # fmt: skip
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["scoring"] == scoring and results["model"] == "tiny" and results["adapter"] is None
    assert set(results["tasks"]) == {"copa", "boolq", "bbh_navigate"} and results["failed"] == {}
    assert {"versions", "hardware", "wall_s", "instances_per_s"} <= set(results)
    copa = results["tasks"]["copa"]
    assert copa["n"] == 6 and copa["loaded"] == 6 and 0 <= copa["accuracy"] <= 1
    assert copa["ci95"][0] <= copa["accuracy"] <= copa["ci95"][1]
    assert results["tasks"]["boolq"]["truncated"] > 0  # boolq passages do not fit 400 tokens
    predictions = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 18
    assert sum(p["correct"] for p in predictions if p["task"] == "copa") == copa["correct"]
    dumped = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert [(d["task"], d["uid"]) for d in dumped] == [(p["task"], p["uid"]) for p in predictions]
    table = (tmp_path / "table.md").read_text()
    assert table.splitlines()[0].startswith("| Model | MUL. | MMLU | BOO. | WIC | WG | WSC | ANLI | PIQA | SIQA |")
    assert run.markdown() == table


def test_loglik_predictions_are_argmax_of_scores(lm, tmp_path) -> None:
    evaluate(lm, ["siqa"], scoring="loglik", limit=5, output_dir=tmp_path)
    for line in (tmp_path / "predictions.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert row["prediction"] == max(range(len(row["scores"])), key=lambda i: (row["scores"][i], -i))


def test_table1_average_and_missing_columns(lm) -> None:
    run = evaluate(lm, ["copa", "rte"], scoring="loglik", limit=4)
    row = table1([("tiny", run.results)]).splitlines()[2]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "tiny" and cells[1] == "–" and cells[11] == f"{100 * run.results['copa'].accuracy:.1f}"
    mean = (run.results["copa"].accuracy + run.results["rte"].accuracy) / 2
    assert cells[-1] == f"{100 * mean:.1f} (2/14)"


def test_partial_results_when_a_later_task_fails(lm, tmp_path, monkeypatch) -> None:
    real = runner.score_task

    def failing(lm_, request_set, *args, **kwargs):
        if request_set.task == "rte":
            raise RuntimeError("boom")
        return real(lm_, request_set, *args, **kwargs)

    monkeypatch.setattr(runner, "score_task", failing)
    with pytest.raises(RuntimeError, match="boom"):
        evaluate(lm, ["copa", "rte", "wic"], scoring="loglik", limit=3, output_dir=tmp_path)
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["tasks"]) == ["copa"] and "boom" in results["failed"]["rte"]
    assert len((tmp_path / "predictions.jsonl").read_text().splitlines()) == 3


def test_resume_scores_only_unfinished_tasks(lm, tmp_path, monkeypatch) -> None:
    tasks, kwargs = ["copa", "rte", "wic"], {"scoring": "loglik", "limit": 3}
    whole = evaluate(lm, tasks, output_dir=tmp_path / "whole", **kwargs)
    real, scored = runner.score_task, []

    def failing_once(lm_, request_set, *args, **kwargs):
        scored.append(request_set.task)
        if request_set.task == "rte" and scored.count("rte") == 1:
            raise KeyboardInterrupt  # the run is interrupted while scoring rte
        return real(lm_, request_set, *args, **kwargs)

    monkeypatch.setattr(runner, "score_task", failing_once)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        evaluate(lm, tasks, output_dir=out, **kwargs)
    with open(out / "predictions.jsonl", "a") as handle:  # a row of rte written before the interruption
        handle.write(json.dumps({"task": "rte", "uid": "stale"}) + "\n")
    resumed = evaluate(lm, tasks, output_dir=out, resume=True, batch_size=2, **kwargs)
    assert scored == ["copa", "rte", "rte", "wic"]  # copa was not scored again
    assert list(resumed.results) == tasks and not resumed.failed
    for task in tasks:
        assert resumed.results[task].correct == whole.results[task].correct
    rows = (out / "predictions.jsonl").read_text().splitlines()
    assert [json.loads(r)["task"] for r in rows] == ["copa"] * 3 + ["rte"] * 3 + ["wic"] * 3
    assert json.loads((out / "results.json").read_text())["failed"] == {}


def test_resume_refuses_other_settings(lm, tmp_path) -> None:
    evaluate(lm, ["copa"], scoring="loglik", limit=3, output_dir=tmp_path)
    with pytest.raises(EvalError, match=r"other settings \(limit: 3 there, 4 now\)"):
        evaluate(lm, ["copa"], scoring="loglik", limit=4, output_dir=tmp_path, resume=True)
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(EvalError, match="cannot resume"):
        evaluate(lm, ["copa"], scoring="loglik", limit=3, output_dir=tmp_path, resume=True)


def test_data_failure_is_recorded_and_other_tasks_run(lm, tmp_path) -> None:
    bad_root = tmp_path / "data"
    (bad_root / "copa").mkdir(parents=True)
    (bad_root / "index.json").write_text("{}")
    (bad_root / "copa" / "eval.jsonl").write_text("")
    run = evaluate(lm, ["copa"], scoring="loglik", data_root=bad_root, output_dir=tmp_path / "out")
    assert "copa" in run.failed and not run.results


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"scoring": "generate", "fmt": "cloze"}, "needs --format letters"), ({"limit": 0}, "positive"),
     ({"scoring": "beam"}, "unknown scoring"), ({"batch_size": 0}, "at least 1")],
)  # fmt: skip
def test_bad_options(lm, kwargs, message) -> None:
    with pytest.raises(EvalError, match=message):
        evaluate(lm, ["copa"], **kwargs)


def test_bbh_free_text_is_skipped_under_loglik(lm) -> None:
    run = evaluate(lm, ["bbh_object_counting"], scoring="loglik", limit=3, bbh_form="trex")  # 3-shot form: too long
    result = run.results["bbh_object_counting"]
    assert result.n == 0 and result.skipped == 3 and result.accuracy is None


def test_cli_command(lm, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("trex.eval.loading.load_eval_model", lambda *a, **k: lm)
    eval_cli.eval_command(task=["copa"], scoring="loglik", limit=3, output=tmp_path, batch_size=2, fmt="letters",
                          model="tiny", adapter=None, data_root=None, chat_template=True, max_length=None,
                          dump_requests=None, metric="acc_norm", resume=False)  # fmt: skip
    assert json.loads((tmp_path / "results.json").read_text())["table_metric"] == "acc_norm"
    with pytest.raises(EvalError, match="did you mean"):
        eval_cli.eval_command(task=["copaa"], output=tmp_path)


def test_cli_adapter_errors(tmp_path, adapter_dir, monkeypatch) -> None:
    from trex.eval.loading import check_adapter_folder, load_eval_model

    with pytest.raises(EvalError, match="does not exist"):
        check_adapter_folder(tmp_path / "nope", "tiny")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalError, match="missing adapter_config.json, adapter_model.safetensors"):
        check_adapter_folder(tmp_path / "empty", "tiny")

    monkeypatch.setattr("trex.eval.loading.load_base_model", lambda *a, **k: (tiny_llama(0, hidden=32), None))
    with pytest.raises(EvalError, match="another base model"):
        load_eval_model("tiny", adapter_dir)


def assert_consistent(out) -> None:
    """Every task results.json lists has exactly its rows in predictions.jsonl, and every line is whole JSON."""
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    listed = json.loads((out / "results.json").read_text())["tasks"] if (out / "results.json").exists() else {}
    for task, result in listed.items():
        assert sum(r["task"] == task for r in rows) == result["n"], task


def snapshot(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_another_evaluations_folder_is_replaced_only_when_asked(lm, tmp_path) -> None:
    out, kwargs = tmp_path / "out", {"scoring": "loglik", "limit": 3}
    evaluate(lm, ["copa"], output_dir=out, **kwargs)
    (out / "notes.txt").write_bytes(b"\x00my notes\r\n")
    before = snapshot(out)
    with pytest.raises(EvalError, match="already holds an evaluation .*pass --resume to continue it, --overwrite"):
        evaluate(lm, ["rte"], output_dir=out, **kwargs)
    assert snapshot(out) == before
    run = evaluate(lm, ["rte"], output_dir=out, overwrite=True, **kwargs)
    assert list(run.results) == ["rte"] and (out / "notes.txt").read_bytes() == b"\x00my notes\r\n"
    assert list(json.loads((out / "results.json").read_text())["tasks"]) == ["rte"]
    assert_consistent(out)


def test_existing_files_given_as_outputs_are_left_intact(lm, tmp_path) -> None:
    user_file = tmp_path / "mine.jsonl"
    user_file.write_bytes(b'{"mine": 1}\n\xff')
    with pytest.raises(EvalError, match="mine.jsonl already exists; pass --overwrite"):
        evaluate(lm, ["copa"], scoring="loglik", limit=3, dump_requests=user_file)
    with pytest.raises(EvalError, match="is a file; choose another --output"):
        evaluate(lm, ["copa"], scoring="loglik", limit=3, output_dir=user_file)
    assert user_file.read_bytes() == b'{"mine": 1}\n\xff'


def test_overwrite_interrupted_never_leaves_results_without_predictions(lm, tmp_path, monkeypatch) -> None:
    """Re-running a finished evaluation into its folder and pressing Ctrl-C, then resuming."""
    tasks, kwargs, out = ["copa", "rte", "wic"], {"scoring": "loglik", "limit": 3}, tmp_path / "out"
    whole = evaluate(lm, tasks, output_dir=out, **kwargs)
    real = runner.score_task

    def interrupted(lm_, request_set, *args, **kwargs):
        if request_set.task == "rte":
            raise KeyboardInterrupt
        return real(lm_, request_set, *args, **kwargs)

    monkeypatch.setattr(runner, "score_task", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate(lm, tasks, output_dir=out, overwrite=True, **kwargs)
    assert_consistent(out)
    monkeypatch.setattr(runner, "score_task", real)
    resumed = evaluate(lm, tasks, output_dir=out, resume=True, **kwargs)
    assert {t: r.correct for t, r in resumed.results.items()} == {t: r.correct for t, r in whole.results.items()}
    assert_consistent(out)


@pytest.mark.parametrize("cut", ["unfinished task", "finished task"])
def test_resume_drops_cut_off_predictions_and_never_appends_after_them(lm, tmp_path, cut: str) -> None:
    """A full disk cuts the predictions file mid-line; resuming must not append after the broken line."""
    out, kwargs = tmp_path / "out", {"scoring": "loglik", "limit": 3}
    evaluate(lm, ["copa"], output_dir=out, **kwargs)
    predictions = out / "predictions.jsonl"
    if cut == "unfinished task":  # rte's rows were being appended when the disk filled up
        predictions.write_bytes(predictions.read_bytes() + b'{"task": "rte", "uid": "rte-0", "sco')
    else:  # one of copa's own rows is cut: copa cannot count as done
        predictions.write_bytes(predictions.read_bytes()[:-20])
    run = evaluate(lm, ["copa", "rte"], output_dir=out, resume=True, **kwargs)
    lines = predictions.read_text().splitlines()
    assert [json.loads(line)["task"] for line in lines] == ["copa"] * 3 + ["rte"] * 3
    assert list(run.results) == ["copa", "rte"]
    assert_consistent(out)
