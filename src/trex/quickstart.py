"""``trex quickstart``: the whole method on a laptop CPU, offline, from the data subset shipped in the package.

1. fit the intuition bank on the training mixture and train T-REX on SmolLM2-135M-Instruct with the CPU recipe
   (``configs/smollm2-135m-cpu.yaml``, fewer instances per task so the whole job stays under 20 minutes);
2. evaluate the base model and the trained adapter on the paper's 14 tasks (the first ``eval_limit`` instances
   of each shipped evaluation split), by 1-token generation (the paper's scoring) and by option log-likelihood;
3. print both as the paper's Table 1 and write them to ``<output_dir>/quickstart.md``.

Re-running continues an interrupted training run and reuses a finished one.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from trex.eval import EvalModel, evaluate, load_eval_model, table1
from trex.model import TRexModel
from trex.pretrained import DEFAULT_MODEL, load_base_model
from trex.train.recipe import load_recipe
from trex.train.run import run_training

CPU_RECIPE = Path(__file__).resolve().parents[2] / "configs" / "smollm2-135m-cpu.yaml"
QUICKSTART_OVERRIDES = ["data.max_per_task=16"]  # 18 tasks x 16 = 288 instances: ~5 minutes on 2 cores
SCORINGS = ("generate", "loglik")


def train_or_reuse(output_dir: Path, console: Console) -> Path:
    """Train with the CPU recipe into ``output_dir``, or reuse the adapter a previous run finished there."""
    adapter_dir = output_dir / "adapter"
    if (adapter_dir / "adapter_config.json").is_file():
        console.print(f"reusing the finished run in {output_dir} (delete it to train again)")
        return adapter_dir
    if not CPU_RECIPE.is_file():
        raise FileNotFoundError(f"the quickstart recipe {CPU_RECIPE} is missing: run trex from a clone of the repo")
    recipe = load_recipe(CPU_RECIPE, [f"output_dir={output_dir}", *QUICKSTART_OVERRIDES])
    return run_training(recipe, resume=output_dir.exists()).adapter_dir


def evaluate_base_and_adapter(adapter_dir: Path, output_dir: Path, limit: int, console: Console) -> str:
    """Table 1 for the base model and base + T-REX, in both scoring modes, on identical prompts."""
    base = load_eval_model(DEFAULT_MODEL)
    model, tokenizer = load_base_model(DEFAULT_MODEL)
    tuned = EvalModel.wrap(TRexModel.from_pretrained(model, adapter_dir), tokenizer, DEFAULT_MODEL, str(adapter_dir))
    sections = []
    for scoring in SCORINGS:
        runs = []
        for label, lm in (("SmolLM2-135M", base), ("+ T-REX 4x8", tuned)):
            console.print(f"evaluating {label} by {scoring} on 14 tasks x {limit} instances")
            run = evaluate(lm, ["suite"], scoring=scoring, limit=limit, output_dir=output_dir / f"eval-{scoring}-"
                           f"{'trex' if lm is tuned else 'base'}")  # fmt: skip
            runs.append((label, run.results))
        sections.append(f"### Scoring: {scoring} (accuracy %, first {limit} instances per task)\n\n{table1(runs)}")
    return "\n\n".join(sections)


def quickstart(output_dir: Path = Path("runs/quickstart"), eval_limit: int = 25) -> Path:
    console = Console()
    adapter_dir = train_or_reuse(output_dir, console)
    report = evaluate_base_and_adapter(adapter_dir, output_dir, eval_limit, console)
    (output_dir / "quickstart.md").write_text(report + "\n")
    print(report)  # plain Markdown: rich would wrap the table rows at the terminal width
    console.print(f"adapter with its intuition bank: {adapter_dir}; tables: {output_dir / 'quickstart.md'}")
    return adapter_dir
