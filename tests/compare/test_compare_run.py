"""A whole tiny-model comparison: killed after one trained unit, resumed, reported and analysed from its files."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time

import numpy as np
import pytest
from trex_testing import write_comparison_config
from typer.testing import CliRunner

from trex.cli import app
from trex.compare import driver, load_compare_config, run_comparison, status_rows
from trex.compare.analyze import analyze
from trex.compare.report import build_report


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    """Sitting 1 is killed while training trex/seed-0 (after lora/seed-0 finished); sitting 2 completes the rest."""
    root = tmp_path_factory.mktemp("compare")
    config_path = write_comparison_config(root, root / "out")
    config = load_compare_config(config_path)
    real_train, trained = driver._train, []

    def killed_on_trex(step, cfg):
        trained.append(step.label)
        if step.method == "trex":
            raise KeyboardInterrupt  # what Ctrl-C or the end of a sitting does
        return real_train(step, cfg)

    driver._train = killed_on_trex
    try:
        with pytest.raises(KeyboardInterrupt):
            run_comparison(config)
    finally:
        driver._train = real_train
    first_rows, first_projection = status_rows(config)
    finished = {label: (config.output_dir / p / "done.json").read_text() for label, p in
                [("base", "base/eval"), ("lora/seed-0/train", "lora/seed-0/train")]}  # fmt: skip

    second = []

    def spy(step, cfg):
        second.append(step.label)
        return real_train(step, cfg)

    driver._train = spy
    try:
        done = run_comparison(config)
    finally:
        driver._train = real_train
    return {
        "root": root, "config_path": config_path, "config": config, "first": trained, "second": second,
        "first_rows": first_rows, "first_projection": first_projection, "finished": finished, "done": done,
    }  # fmt: skip


def test_killed_sitting_keeps_finished_units_and_the_next_resumes_the_rest(comparison):
    config = comparison["config"]
    assert comparison["first"] == ["lora/seed-0/train", "trex/seed-0/train"]
    states = dict((label, state) for label, state, _ in comparison["first_rows"])
    assert states["base"] == states["lora/seed-0/train"] == states["lora/seed-0/eval"] == "done"
    assert states["trex/seed-0/train"] == "left"  # the lock went with the killed sitting
    assert comparison["first_projection"] is not None
    # sitting 2 trains only what was not done, and never touches a finished unit's marker
    assert comparison["second"] == ["trex/seed-0/train", "lora/seed-1/train", "trex/seed-1/train"]
    for label, text in comparison["finished"].items():
        folder = "base/eval" if label == "base" else label
        assert (config.output_dir / folder / "done.json").read_text() == text
    trex_done = json.loads((config.output_dir / "trex/seed-0/train/done.json").read_text())
    assert trex_done["sittings"] == 2 and trex_done["steps"] == 2
    rows, projected = status_rows(config)
    assert [state for _, state, _ in rows] == ["done"] * 9 and projected == 0.0
    assert not list(config.output_dir.rglob("running.json"))


def test_status_command_lists_every_step(comparison):
    result = CliRunner().invoke(app, ["compare", str(comparison["config_path"]), "--status"])
    assert result.exit_code == 0, result.output
    assert "9 of 9 steps done" in result.output and "trex/seed-1/eval" in result.output


def _independent_means(config, metric_field="correct_norm"):
    """Mean over seeds of per-task accuracy, straight from predictions.jsonl (no trex code)."""
    means = {}
    for method, seeds in [("base", [None]), ("lora", [0, 1]), ("trex", [0, 1])]:
        per_task = {}
        for seed in seeds:
            folder = config.output_dir / ("base/eval" if seed is None else f"{method}/seed-{seed}/eval")
            for line in (folder / "predictions.jsonl").read_text().splitlines():
                row = json.loads(line)
                per_task.setdefault(row["task"], {}).setdefault(seed, []).append(row[metric_field])
        means[method] = {t: np.mean([np.mean(v) for v in s.values()]) for t, s in per_task.items()}
    return means


def _row(report: str, label: str, after: str) -> list[str]:
    section = report[report.index(after) :]
    line = next(line for line in section.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_report_numbers_equal_an_independent_computation(comparison, tmp_path):
    config = comparison["config"]
    output = tmp_path / "docs" / "results.md"
    result = CliRunner().invoke(app, ["compare", str(comparison["config_path"]), "--report", "--output", str(output)])
    assert result.exit_code == 0, result.output
    report = output.read_text()
    means = _independent_means(config)
    columns = _row(report, "Method", "**acc_norm**")
    for method, label in [("base", "base (untrained)"), ("lora", "lora"), ("trex", "trex")]:
        cells = dict(zip(columns, _row(report, label, "**acc_norm**"), strict=True))
        for header, task in [("BOO.", "boolq"), ("COPA", "copa")]:
            assert float(cells[header].split()[0]) == pytest.approx(100 * means[method][task], abs=0.051)
        average = np.mean([means[method]["boolq"], means[method]["copa"]])
        assert float(cells["AVG [95%]"].split()[0]) == pytest.approx(100 * average, abs=0.051)
    diff = dict(zip(_row(report, "Method", "### Paired"), _row(report, "trex", "### Paired"), strict=True))
    expected = 100 * (np.mean(list(means["trex"].values())) - np.mean(list(means["lora"].values())))
    assert float(diff["AVG diff [95%]"].split()[0]) == pytest.approx(expected, abs=0.051)
    reading = report[report.index("### Reading it") : report.index("## 2. Ablation")]
    assert f"`trex` (the paper's T-REX) minus LoRA-32: {diff['AVG diff [95%]']} points on the acc_norm" in reading
    assert "+0.92 / +1.29 / +1.78" in reading  # the paper's T-REX minus LoRA-32 (v2 Table 1)
    assert "2 optimizer steps of 4 instances (8 instances seen)" in reading  # the tiny config's budget
    assert "at most 8 instances of each of the 2 training tasks" in reading
    assert "Steps not done: 0." in report
    for section in ("## 2. Ablation", "## 3. Efficiency", "## 4. Figures", "## 5. Reproduction"):
        assert section in report
    assert re.search(r"\| trex \| [\d,]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| equal", report)  # FLOPs formula checked
    assert "| ✗ | ✓ | not in this comparison |" in report


def test_partial_run_lists_missing_units_and_never_invents_them(comparison, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(comparison["config"].output_dir, copy)
    (copy / "trex/seed-1/eval/done.json").unlink()
    config = load_compare_config(comparison["config_path"], [f"output_dir={copy}"])
    report = build_report(config, comparison["config_path"], tmp_path / "results.md")
    assert "Steps not done: 1." in report and "`trex/seed-1/eval`" in report
    assert _row(report, "trex", "**acc_norm**")[1] == "1"  # one seed of trex, not two
    assert "| trex/seed-1/eval | not done |" in report


def test_analyze_draws_every_figure_of_trex_and_only_the_loss_of_lora(comparison, tmp_path):
    out = comparison["config"].output_dir
    trex = analyze(out / "trex/seed-0/train", tmp_path / "trex", per_task=2)
    assert {p.name for p in trex.glob("*.png")} == {"loss.png", "gates.png", "routing.png", "convergence.png"}
    result = CliRunner().invoke(app, ["analyze", str(out / "lora/seed-0/train"), "--output", str(tmp_path / "lora")])
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "lora").glob("*.png")} == {"loss.png"}
    assert "no router" in (tmp_path / "lora" / "NOTES.md").read_text()


def test_convergence_comes_from_the_training_log_when_checkpoints_are_gone(comparison, tmp_path):
    """A comparison keeps one checkpoint per run in practice: the figure must not need more (v2 Fig. 2)."""
    from trex.compare.analyze import analyze_comparison, logged_convergence, read_metrics
    from trex.compare.report import figures_section

    run = tmp_path / "trex-run"
    shutil.copytree(comparison["config"].output_dir / "trex/seed-0/train", run)
    for checkpoint in run.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    assert [step for step, _ in logged_convergence(read_metrics(run))] == [2]  # probes at steps 1 and 2
    figures = analyze(run, tmp_path / "figures", per_task=2)
    assert (figures / "convergence.png").is_file() and "cannot be drawn" not in (figures / "NOTES.md").read_text()
    figures_dir = tmp_path / "compare-figures"
    analyze_comparison(comparison["config"], figures_dir, per_task=2)
    assert (figures_dir / "convergence.png").is_file()
    section = "\n".join(figures_section(figures_dir, tmp_path / "results.md"))
    assert "![router convergence](compare-figures/convergence.png)" in section


def _busy(cpu_seconds: float) -> None:
    """Spend this much of the process's CPU time (not sleep; however loaded the machine is)."""
    end = time.process_time() + cpu_seconds
    while time.process_time() < end:
        sum(range(1000))


def test_a_running_step_records_its_wall_and_cpu_time_before_it_ends(comparison, tmp_path, monkeypatch):
    """A sitting killed by SIGKILL (or the machine going away) runs no handler: the heartbeat has written its time.

    Checked against the test's own clocks, not against assumed scheduling: on a loaded 2-core machine other threads
    (torch's OpenMP pool spinning after an earlier test) make process CPU time run ahead of wall time.
    """
    config = dataclasses.replace(comparison["config"], output_dir=tmp_path / "out")
    step = driver.Step("lora", 0, "train")
    sittings = step.marker(config, driver.SITTINGS)
    sittings.parent.mkdir(parents=True)
    sittings.write_text(json.dumps({"wall_s": 100.0, "cpu_s": 50.0, "sittings": 1}))  # an earlier sitting's share
    monkeypatch.setattr(driver, "HEARTBEAT_S", 0.05)
    seen = []

    def busy_train(step, cfg):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        _busy(0.3)
        wall_spent, cpu_spent = time.perf_counter() - wall_start, time.process_time() - cpu_start
        deadline = time.monotonic() + 10.0  # the heartbeat must catch up with what was spent, however late it runs
        while time.monotonic() < deadline:
            written = json.loads(sittings.read_text())  # what a kill at this moment would leave
            if written["wall_s"] >= 100.0 + wall_spent and written["cpu_s"] >= 50.0 + cpu_spent:
                seen.append(written)
                break
            time.sleep(0.01)
        time.sleep(0.3)  # waiting costs wall time, not CPU: a driver recording wall as CPU fails the last assert
        return {"steps": 1}

    monkeypatch.setattr(driver, "_train", busy_train)
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    record = driver.run_step(step, config)
    wall_total, cpu_total = time.perf_counter() - wall_start, time.process_time() - cpu_start
    assert seen, "the heartbeat never wrote the time spent while the step ran"
    assert seen[0]["sittings"] == 2 and record["sittings"] == 2
    assert seen[0]["wall_s"] <= record["wall_s"] <= 100.0 + wall_total
    assert seen[0]["cpu_s"] <= record["cpu_s"] <= 50.0 + cpu_total


def test_cpu_time_is_unknown_when_an_earlier_sitting_did_not_record_it(comparison, tmp_path, monkeypatch):
    config = dataclasses.replace(comparison["config"], output_dir=tmp_path / "out")
    step = driver.Step("lora", 0, "train")
    sittings = step.marker(config, driver.SITTINGS)
    sittings.parent.mkdir(parents=True)
    sittings.write_text(json.dumps({"wall_s": 100.0, "sittings": 1}))  # written before CPU time was recorded
    monkeypatch.setattr(driver, "_train", lambda step, cfg: {"steps": 1})
    record = driver.run_step(step, config)
    assert record["cpu_s"] is None and record["wall_s"] >= 100.0
    report = build_report(config, comparison["config_path"], tmp_path / "results.md")
    assert re.search(r"\| lora/seed-0/train \| [\d.]+ \| – \| 2 \|", report)


def test_report_totals_the_cpu_time_the_steps_recorded(comparison, tmp_path):
    config = comparison["config"]
    report = build_report(config, comparison["config_path"], tmp_path / "results.md")
    records = [json.loads(path.read_text()) for path in config.output_dir.rglob("done.json")]
    assert records and all(r["cpu_s"] is not None for r in records)
    expected = sum(r["cpu_s"] for r in records) / 3600
    found = re.search(r"of the (\d+) of (\d+) finished steps that recorded it: ([\d.]+) h", report)
    assert found and found.group(1) == found.group(2) == str(len(records))
    assert float(found.group(3)) == pytest.approx(expected, abs=0.006)


def test_a_unit_whose_adapter_was_lost_is_trained_again_and_its_partial_evaluation_dropped(comparison, tmp_path):
    """A new checkout has a finished training's small files but not its weights: the evaluation it had begun scored
    an adapter that no longer exists, so it must not be finished with the retrained one."""
    config = dataclasses.replace(comparison["config"], output_dir=tmp_path / "out")
    shutil.copytree(comparison["config"].output_dir / "lora", config.output_dir / "lora")
    unit = config.output_dir / "lora" / "seed-1"
    for weights in [unit / "train" / "adapter", *(unit / "train").glob("checkpoint-*")]:
        shutil.rmtree(weights)  # ignored by git: a new checkout has none of them
    (unit / "eval" / "done.json").unlink()  # the evaluation was cut off with its partial results on disk
    train, evaluate = driver.Step("lora", 1, "train"), driver.Step("lora", 1, "eval")
    assert driver.state(train, config) == "left"
    logged_before = (unit / "train" / "metrics.jsonl").read_text()

    driver.run_step(train, config)
    assert (unit / "train" / "adapter" / "adapter_model.safetensors").is_file()
    assert not (unit / "eval").exists()
    steps = [json.loads(line)["step"] for line in (unit / "train" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [json.loads(line)["step"] for line in logged_before.splitlines()]  # logged once, not twice
    assert driver.state(evaluate, config) == "left"


def test_comparison_figures_come_from_a_seed_with_weights_and_survive_a_checkout_without(comparison, tmp_path):
    from trex.compare.analyze import analyze_comparison

    config = dataclasses.replace(comparison["config"], output_dir=tmp_path / "out")
    shutil.copytree(comparison["config"].output_dir, config.output_dir)
    shutil.rmtree(config.output_dir / "trex/seed-0/train/adapter")  # seed 0's weights lost, seed 1's on disk
    figures_dir = tmp_path / "figures"
    analyze_comparison(config, figures_dir, per_task=2)
    notes = (figures_dir / "trex" / "NOTES.md").read_text()
    assert "trex/seed-1/train" in notes and "no adapter" not in notes
    assert (figures_dir / "trex" / "routing.png").is_file()
    drawn = (figures_dir / "trex" / "routing.png").read_bytes()

    shutil.rmtree(config.output_dir / "trex/seed-1/train/adapter")  # a new checkout: no weights at all
    analyze_comparison(config, figures_dir, per_task=2)
    assert (figures_dir / "trex" / "routing.png").read_bytes() == drawn
    assert "trex/seed-1/train" in (figures_dir / "trex" / "NOTES.md").read_text()


def test_a_unit_killed_after_saving_its_adapter_is_recorded_without_training_again(comparison, tmp_path, monkeypatch):
    """The sitting ended between the adapter's save and ``done.json``: the unit's record comes from its files."""
    config = dataclasses.replace(comparison["config"], output_dir=tmp_path / "out")
    shutil.copytree(comparison["config"].output_dir / "lora", config.output_dir / "lora")
    done = config.output_dir / "lora" / "seed-0" / "train" / "done.json"
    finished = json.loads(done.read_text())
    done.unlink()
    monkeypatch.setattr("trex.train.run.run_training", lambda *a, **k: pytest.fail("trained again"))
    record = driver._train(driver.Step("lora", 0, "train"), config)
    assert record["steps"] == finished["steps"]
    assert record["train_loss"] == pytest.approx(finished["train_loss"])
