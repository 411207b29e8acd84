"""``trex quickstart``: the whole method on a laptop CPU, offline, from the shipped data subset.

Fit the intuition bank on the training mixture, train T-REX on SmolLM2-135M-Instruct with the CPU recipe
(``configs/smollm2-135m-cpu.yaml``), then answer a few evaluation questions the adapter never saw, routing each
one by its own intuition. Re-running continues an interrupted run and reuses a finished one.
"""

from __future__ import annotations

from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from trex.data import intuition_text, list_tasks, load_task, model_strings, render
from trex.model import TRexModel
from trex.pretrained import load_base_model
from trex.train.recipe import load_recipe
from trex.train.run import run_training

CPU_RECIPE = Path(__file__).resolve().parents[2] / "configs" / "smollm2-135m-cpu.yaml"


def train_or_reuse(output_dir: Path, console: Console) -> Path:
    """Train with the CPU recipe into ``output_dir``, or reuse the adapter a previous run finished there."""
    adapter_dir = output_dir / "adapter"
    if (adapter_dir / "adapter_config.json").is_file():
        console.print(f"reusing the finished run in {output_dir} (delete it to train again)")
        return adapter_dir
    if not CPU_RECIPE.is_file():
        raise FileNotFoundError(f"the quickstart recipe {CPU_RECIPE} is missing: run trex from a clone of the repo")
    recipe = load_recipe(CPU_RECIPE, [f"output_dir={output_dir}"])
    return run_training(recipe, resume=output_dir.exists()).adapter_dir


@torch.no_grad()
def sample_answers(adapter_dir: Path, per_task: int, console: Console) -> None:
    """Greedy answers of the base model and of T-REX to unseen evaluation questions, side by side."""
    base, tokenizer = load_base_model()
    model = TRexModel.from_pretrained(base, adapter_dir)
    instances = [i for task in list_tasks("eval") for i in load_task(task, "eval", limit=per_task)]
    rendered = [render(i, "letters") for i in instances]
    prompts = [model_strings(r, tokenizer, chat_template=True)[0] for r in rendered]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    intuition = model.intuition_bank.score([intuition_text(i) for i in instances])
    kwargs = {"max_new_tokens": 1, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    tuned = model.generate(**batch, intuition=intuition, **kwargs)[:, -1]
    with model.disable_adapter():
        untuned = model.generate(**batch, **kwargs)[:, -1]
    table = Table(title="Unseen evaluation questions: first generated token after 'Answer:'")
    for column in ("task", "gold", "base model", "T-REX", "closest cluster similarity"):
        table.add_column(column)
    familiarity = intuition.max(dim=-1).values
    for i, r in enumerate(rendered):
        table.add_row(
            instances[i].task,
            r.target.strip(),
            tokenizer.decode(untuned[i]).strip(),
            tokenizer.decode(tuned[i]).strip(),
            f"{familiarity[i]:.2f}",
        )
    console.print(table)


def quickstart(output_dir: Path = Path("runs/quickstart"), samples_per_task: int = 1) -> Path:
    console = Console()
    adapter_dir = train_or_reuse(output_dir, console)
    sample_answers(adapter_dir, samples_per_task, console)
    console.print(f"adapter with its intuition bank: {adapter_dir}")
    return adapter_dir
