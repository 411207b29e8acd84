"""One tiny training run end to end, checked from its run folder; bad inputs stop before any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from trex import TRexModel
from trex.data import DataError
from trex.pretrained import tiny_random_llama
from trex.train.recipe import load_recipe
from trex.train.run import run_training

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "tiny-cpu.yaml"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    recipe = load_recipe(
        RECIPE, [f"output_dir={root / 'run'}", f"intuition.cache_dir={root / 'cache'}", "training.max_steps=3"]
    )
    return run_training(recipe)


def test_run_folder_holds_recipe_bank_metrics_and_adapter(finished_run):
    run = finished_run.run_dir
    assert finished_run.steps == 3
    for name in (
        "recipe.yaml",
        "metrics.jsonl",
        "intuition_bank",
        "tensorboard",
        "adapter/adapter_config.json",
        "adapter/intuition",
        "checkpoint-2/COMPLETE",
    ):
        assert (run / name).exists(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_metrics_log_loss_lr_speed_and_routing_entropy_per_layer(finished_run):
    lines = [json.loads(line) for line in (finished_run.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3]
    for line in lines:
        assert line["loss"] > 0 and line["learning_rate"] > 0 and line["tokens_per_s"] > 0
        assert line["cpu_s_per_step"] > 0 and line["load_1m"] >= 0
        assert len(line["routing"]) == 14  # every adapted module of the 2-layer model
        assert all(0.0 <= row["entropy"] <= 1.0 + 1e-6 for row in line["routing"].values())
    assert lines[0]["routing_entropy_mean"] == pytest.approx(1.0, abs=1e-5)  # zero router: uniform at the start
    # router convergence: how far the probe's routing moved since the previous probe (none before the first)
    assert "routing_change_mean" not in lines[0] and all("change" not in r for r in lines[0]["routing"].values())
    for line in lines[1:]:
        changes = [row["change"] for row in line["routing"].values()]
        assert len(changes) == 14 and all(c > 0 for c in changes)
        assert line["routing_change_mean"] == pytest.approx(sum(changes) / len(changes))


def test_relative_change_of_routing():
    from trex.train.metrics import relative_change

    before, after = torch.tensor([[1.0, 2.0], [0.0, 1.0]]), torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    assert relative_change(before, after) == pytest.approx((1 + 2) / 4)
    assert relative_change(before, before.clone()) == 0.0


def test_the_training_loss_of_a_resumed_run_covers_every_step(tmp_path):
    """Logged every 5 steps, the last point 2 steps after the one before: each loss weighs its interval."""
    from trex.train.metrics import logged_training

    metrics = tmp_path / "metrics.jsonl"
    rows = [{"step": 5, "loss": 3.0}, {"step": 10, "loss": 2.0, "routing": {}}, {"step": 12, "loss": 0.5}]
    metrics.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert logged_training(metrics) == (12, (3.0 * 5 + 2.0 * 5 + 0.5 * 2) / 12)


def test_trained_adapter_routes_raw_prompts_with_its_own_bank(finished_run):
    model, tokenizer = tiny_random_llama()
    trex = TRexModel.from_pretrained(model, finished_run.adapter_dir)
    assert trex.intuition_bank is not None
    prompts = ["Which is a mammal?\nA. whale\nB. shark\nAnswer:", "Is the sky green?\nA. yes\nB. no\nAnswer:"]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left")
    by_text = trex.generate(**batch, intuition_text=prompts, max_new_tokens=3, do_sample=False)
    by_vector = trex.generate(**batch, intuition=trex.intuition_bank.score(prompts), max_new_tokens=3, do_sample=False)
    assert torch.equal(by_text, by_vector)


def test_existing_runs_are_never_silently_changed(finished_run, tmp_path):
    run = finished_run.run_dir
    same = [f"output_dir={run}", f"intuition.cache_dir={tmp_path / 'elsewhere'}", "training.max_steps=3"]
    for resume in (False, True):
        with pytest.raises(ValueError, match="holds a finished run \\(adapter/ is saved\\); nothing to resume"):
            run_training(load_recipe(RECIPE, same), resume=resume)
    with pytest.raises(ValueError, match=r"holds a run with other settings \(training.learning_rate differ"):
        run_training(load_recipe(RECIPE, [*same, "training.learning_rate=0.1"]), resume=True)
    with pytest.raises(ValueError, match=r"other settings \(data.tasks, training.max_steps differ"):
        run_training(load_recipe(RECIPE, [f"output_dir={run}", "data.tasks=[copa]"]), resume=True)


def test_a_killed_run_needs_resume_and_the_same_recipe(tmp_path):
    overrides = [f"output_dir={tmp_path / 'run'}", f"intuition.cache_dir={tmp_path / 'cache'}", "training.max_steps=2"]

    class Stop(Exception):
        pass

    class StopAfterCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise Stop

    with pytest.raises(Stop):
        run_training(load_recipe(RECIPE, [*overrides, "training.save_steps=1"]), callbacks=[StopAfterCheckpoint()])
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        run_training(load_recipe(RECIPE, [*overrides, "training.save_steps=1"]))
    with pytest.raises(ValueError, match=r"other settings \(data.tasks differ"):  # its bank was fitted on other tasks
        run_training(load_recipe(RECIPE, [*overrides, "data.tasks=[copa]"]), resume=True)
    assert run_training(load_recipe(RECIPE, overrides), resume=True).steps == 2  # save_steps may change


def test_a_folder_of_someone_else_is_refused_and_left_intact(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_bytes(b"precious")
    with pytest.raises(ValueError, match="is not empty and holds no trex run"):
        run_training(load_recipe(RECIPE, [f"output_dir={folder}"]))
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert (folder / "notes.txt").read_bytes() == b"precious"


def test_an_empty_recipe_is_refused(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.yaml is empty"):
        load_recipe(empty)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (["adapter.target_modules=[fc1]"], ValueError, r"matches no nn.Linear of LlamaForCausalLM"),
        (["data.tasks=[copaa]"], DataError, "copaa"),
        (["data.max_length=8"], ValueError, "every instance is longer than data.max_length=8"),
    ],
)
def test_bad_runs_fail_before_training(tmp_path, overrides, error, message):
    recipe = load_recipe(RECIPE, [f"output_dir={tmp_path / 'run'}", *overrides])
    with pytest.raises(error, match=message):
        run_training(recipe)
    assert not (tmp_path / "run").exists()


def test_user_jsonl_task_with_a_bad_line_names_file_and_line(tmp_path):
    good = {"question": "2+2?", "options": ["4", "5"], "label": 0}
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(good) + "\n{broken\n")
    recipe = load_recipe(RECIPE, [f"output_dir={tmp_path / 'run'}", f"data.tasks=[{path}]"])
    with pytest.raises(DataError, match=r"mine.jsonl:2: malformed JSON"):
        run_training(recipe)


def test_other_processes_write_nothing_before_the_main_process_checked_the_folder(tmp_path, monkeypatch):
    """In a 2-process launch rank 1 must not put its bank in the folder before rank 0 has checked it (rank 0 then
    found a non-empty folder without recipe.yaml and refused it: a DeepSpeed ZeRO-3 run in CI)."""
    import trex.train.run as run_module

    class Waited(Exception):
        pass

    def stop(run_dir: Path) -> None:
        assert not run_dir.exists() or not any(run_dir.iterdir()), "wrote into the run folder before waiting"
        raise Waited

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(run_module, "wait_for_checked_folder", stop)
    folder = tmp_path / "run"
    with pytest.raises(Waited):
        run_training(load_recipe(RECIPE, [f"output_dir={folder}", f"intuition.cache_dir={tmp_path / 'cache'}"]))
    assert not folder.exists()


def test_waiting_for_the_checked_folder_ends_when_its_recipe_appears(tmp_path):
    import threading

    from trex.train.run import RECIPE_FILE, wait_for_checked_folder

    timer = threading.Timer(0.3, lambda: (tmp_path / RECIPE_FILE).write_text("x: 1\n"))
    timer.start()
    wait_for_checked_folder(tmp_path, poll_s=0.05)
    assert (tmp_path / RECIPE_FILE).is_file()
