"""Step locks: two workers on one comparison never take the same step, and a dead worker's lock is taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from trex_testing import write_comparison_config

from trex.compare import driver


@pytest.fixture
def other_worker():
    """A live process that is not this one (its pid is what another worker's lock would name)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


def write_lock(path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": 0.0}))


def test_a_live_workers_lock_is_refused_and_kept(tmp_path, other_worker) -> None:
    path = tmp_path / "unit" / "running.json"
    write_lock(path, other_worker)
    with pytest.raises(driver.StepBusy, match=str(other_worker)):
        driver.StepLock(path).__enter__()
    assert json.loads(path.read_text())["pid"] == other_worker


def test_a_dead_workers_lock_is_taken_over_and_released(tmp_path) -> None:
    path = tmp_path / "unit" / "running.json"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_lock(path, dead.pid)
    with driver.StepLock(path):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


def test_a_step_taken_between_look_and_lock_is_skipped(tmp_path, other_worker, monkeypatch) -> None:
    """Both workers saw the step left; the other locked it first: this worker goes on to the next step."""
    steps = [driver.Step("lora", 0, "train"), driver.Step("trex", 0, "train")]
    config = type("Config", (), {"output_dir": tmp_path})()
    write_lock(steps[0].marker(config, driver.RUNNING), other_worker)
    monkeypatch.setattr(driver, "pending", lambda config: iter(steps))
    ran = []
    monkeypatch.setattr(driver, "_train", lambda step, config: ran.append(step.label) or {"steps": 1})
    done = driver.run_comparison(config)
    assert ran == ["trex/seed-0/train"] and done == steps[1:]
    assert json.loads(steps[0].marker(config, driver.RUNNING).read_text())["pid"] == other_worker


def test_two_workers_do_every_step_once(tmp_path, monkeypatch) -> None:
    """`trex compare --workers 2`: a second process shares the tiny comparison; no step is done twice."""
    import torch
    from typer.testing import CliRunner

    from trex.cli import app
    from trex.compare import load_compare_config, status_rows

    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config_path = write_comparison_config(tmp_path, tmp_path / "out")
    try:
        result = CliRunner().invoke(app, ["compare", str(config_path), "--workers", "2"])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    config = load_compare_config(config_path)
    rows, _ = status_rows(config)
    assert [state for _, state, _ in rows] == ["done"] * len(rows)
    for label, _, _ in rows:
        folder = "base/eval" if label == "base" else label
        assert json.loads((config.output_dir / folder / "done.json").read_text())["sittings"] == 1, label
    assert (config.output_dir / "workers" / "worker-2.log").is_file()


def test_deadline_is_the_next_time_the_clock_shows_it() -> None:
    import datetime

    noon = datetime.datetime(2026, 12, 4, 12, 0)
    assert driver.parse_deadline("13:10", noon) == datetime.datetime(2026, 12, 4, 13, 10).timestamp()
    assert driver.parse_deadline("11:00", noon) == datetime.datetime(2026, 12, 5, 11, 0).timestamp()
    assert driver.parse_deadline("2026-12-06T08:30", noon) == datetime.datetime(2026, 12, 6, 8, 30).timestamp()
    with pytest.raises(ValueError, match="--until '25:00': give HH:MM"):
        driver.parse_deadline("25:00", noon)


def test_a_step_expected_to_end_after_the_deadline_is_not_started(tmp_path, monkeypatch) -> None:
    """Finished steps took 10 min (training) and 4 min (evaluation): with 12 min left, lora/seed-0's evaluation
    starts, but no training does (it needs 14 min with its evaluation)."""
    from trex.compare import load_compare_config

    config = load_compare_config(write_comparison_config(tmp_path, tmp_path / "out"))
    walls = {"train": 600.0, "eval": 240.0}

    def finish(step: driver.Step) -> None:  # what a step that took its usual time leaves
        folder = step.folder(config)
        (folder / "adapter").mkdir(parents=True, exist_ok=True)
        (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"")
        (folder / "done.json").write_text(json.dumps({"wall_s": walls[step.kind]}))

    for step in [driver.Step("base", None, "eval"), driver.Step("lora", 0, "train"), driver.Step("trex", 0, "train")]:
        finish(step)
    assert driver.expected_wall(driver.Step("lora", 1, "train"), config) == 840.0
    assert driver.expected_wall(driver.Step("lora", 0, "eval"), config) == 240.0
    ran = []
    monkeypatch.setattr(driver, "run_step", lambda step, cfg: ran.append(step.label) or finish(step))
    driver.run_comparison(config, deadline=time.time() + 12 * 60)
    assert ran == ["lora/seed-0/eval", "trex/seed-0/eval"]  # each fits; a training with its evaluation does not
    driver.run_comparison(config, deadline=time.time() + 15 * 60)
    assert ran[2:] == ["lora/seed-1/train", "lora/seed-1/eval", "trex/seed-1/train", "trex/seed-1/eval"]


def test_a_bad_deadline_is_refused_before_any_work(tmp_path) -> None:
    from typer.testing import CliRunner

    from trex.cli import app

    config_path = write_comparison_config(tmp_path, tmp_path / "out")
    result = CliRunner().invoke(app, ["compare", str(config_path), "--until", "noon"])
    assert result.exit_code != 0 and "--until 'noon': give HH:MM" in result.output
    assert not (tmp_path / "out").exists()


def test_expected_time_ignores_pauses_and_prefers_the_methods_own_steps(tmp_path) -> None:
    from trex.compare import load_compare_config

    config = load_compare_config(write_comparison_config(tmp_path, tmp_path / "out"))
    records = {
        ("lora", 0, "train"): {"wall_s": 5000.0, "cpu_s": 500.0},  # paused for over an hour: 500 s of work
        ("lora", 1, "train"): {"wall_s": 700.0, "cpu_s": 1400.0},  # two threads: 700 s of the clock
        ("trex", 0, "train"): {"wall_s": 2000.0},  # from before CPU time was recorded
        ("trex", 0, "eval"): {"wall_s": 300.0, "cpu_s": 290.0},
    }
    for (method, seed, kind), record in records.items():
        folder = driver.Step(method, seed, kind).folder(config)
        folder.mkdir(parents=True)
        (folder / "done.json").write_text(json.dumps(record))
    assert driver.expected_wall(driver.Step("lora", 2, "train"), config, with_evaluation=False) == 600.0
    assert driver.expected_wall(driver.Step("trex", 1, "train"), config, with_evaluation=False) == 700.0  # pooled
    assert driver.expected_wall(driver.Step("lora", 2, "train"), config) == 600.0 + 290.0


def test_status_takes_off_what_a_running_step_has_spent(tmp_path, other_worker) -> None:
    """Finished trainings took 600 s of work and evaluations 300 s; a running training that has spent 450 s (its
    heartbeat's CPU seconds, the smaller) has 150 s left, one that ran past the usual time none."""
    from trex.compare import load_compare_config, status_rows

    config = load_compare_config(write_comparison_config(tmp_path, tmp_path / "out"))
    for step, wall in [(driver.Step("base", None, "eval"), 300.0), (driver.Step("lora", 0, "train"), 600.0),
                       (driver.Step("lora", 0, "eval"), 300.0), (driver.Step("trex", 0, "train"), 600.0),
                       (driver.Step("trex", 0, "eval"), 300.0)]:  # fmt: skip
        folder = step.folder(config)
        (folder / "adapter").mkdir(parents=True)
        (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"")
        (folder / "done.json").write_text(json.dumps({"wall_s": wall}))
    left = [s for s in driver.steps(config) if driver.state(s, config) == "left"]
    assert [s.label for s in left] == [f"{m}/seed-1/{k}" for m in ("lora", "trex") for k in ("train", "eval")]
    assert status_rows(config)[1] == 2 * (600.0 + 300.0)
    running = left[0]
    write_lock(running.marker(config, driver.RUNNING), other_worker)
    sittings = running.marker(config, driver.SITTINGS)
    sittings.write_text(json.dumps({"wall_s": 900.0, "cpu_s": 450.0, "sittings": 1}))
    assert status_rows(config)[1] == 150.0 + 300.0 + 600.0 + 300.0
    sittings.write_text(json.dumps({"wall_s": 700.0, "cpu_s": None, "sittings": 1}))
    assert status_rows(config)[1] == 0.0 + 300.0 + 600.0 + 300.0
