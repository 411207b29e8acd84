"""``trex quickstart``: the whole method on a laptop CPU, offline, from the data subset shipped in the package.

1. fit the intuition bank on the training mixture and train T-REX (or ``--method NAME``) on SmolLM2-135M-Instruct
   with the method's CPU recipe (shipped in the package: ``trex configs show <method>-smollm2-135m-cpu``), with
   fewer instances per task so the whole job, installs included, takes about 20 minutes on 2 cores;
2. evaluate the base model and the trained adapter on the paper's 14 tasks (the first ``eval_limit`` instances
   of each shipped evaluation split), by 1-token generation (the paper's scoring) and by option log-likelihood;
3. print both as the paper's Table 1 and write them to ``<output_dir>/quickstart.md``.

Re-running continues an interrupted training run or evaluation and reuses a finished one.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from trex.configs import CONFIGS
from trex.errors import UserError
from trex.eval import evaluate, load_eval_model, table1
from trex.params import describe
from trex.pretrained import DEFAULT_MODEL
from trex.train.recipe import load_recipe
from trex.train.run import run_training

QUICKSTART_OVERRIDES = ["data.max_per_task=16"]  # 18 tasks x 16 = 288 instances: ~5 minutes on 2 cores
SCORINGS = ("generate", "loglik")


def cpu_recipe(method: str) -> Path:
    return CONFIGS / f"{method}-smollm2-135m-cpu.yaml"


def check_method(method: str) -> None:
    """A method with a shipped CPU recipe, checked before any work starts."""
    if not cpu_recipe(method).is_file():
        known = sorted(p.name.removesuffix("-smollm2-135m-cpu.yaml") for p in CONFIGS.glob("*-smollm2-135m-cpu.yaml"))
        raise UserError(f"--method: no CPU recipe for method {method!r}; known: {', '.join(known)}")


def train_or_reuse(output_dir: Path, method: str, console: Console) -> Path:
    """Train with the method's CPU recipe into ``output_dir``, or reuse the adapter a previous run finished there."""
    adapter_dir = output_dir / "adapter"
    if (adapter_dir / "adapter_config.json").is_file():
        console.print(f"reusing the finished run in {output_dir} (delete it to train again)")
        return adapter_dir
    recipe_path = cpu_recipe(method)
    if not recipe_path.is_file():
        raise FileNotFoundError(f"the quickstart recipe {recipe_path} is missing: reinstall trex")
    recipe = load_recipe(recipe_path, [f"output_dir={output_dir}", *QUICKSTART_OVERRIDES])
    return run_training(recipe, resume=output_dir.exists()).adapter_dir


def evaluate_base_and_adapter(adapter_dir: Path, output_dir: Path, limit: int, console: Console) -> str:
    """Table 1 for the base model and base + adapter, in both scoring modes, on identical prompts."""
    base = load_eval_model(DEFAULT_MODEL)
    tuned = load_eval_model(DEFAULT_MODEL, adapter_dir)
    sections = []
    for scoring in SCORINGS:
        runs = []
        for label, lm in (("SmolLM2-135M", base), (f"+ {describe(tuned.model.adapter_config)}", tuned)):
            console.print(f"evaluating {label} by {scoring} on 14 tasks x {limit} instances")
            folder = output_dir / f"eval-{scoring}-{'adapter' if lm is tuned else 'base'}"
            run = evaluate(lm, ["suite"], scoring=scoring, limit=limit, output_dir=folder, resume=True)
            runs.append((label, run.results))
        sections.append(f"### Scoring: {scoring} (accuracy %, first {limit} instances per task)\n\n{table1(runs)}")
    return "\n\n".join(sections)


def quickstart(output_dir: Path = Path("runs/quickstart"), eval_limit: int = 25, method: str = "trex") -> Path:
    console = Console()
    adapter_dir = train_or_reuse(output_dir, method, console)
    report = evaluate_base_and_adapter(adapter_dir, output_dir, eval_limit, console)
    (output_dir / "quickstart.md").write_text(report + "\n")
    print(report)  # plain Markdown: rich would wrap the table rows at the terminal width
    console.print(f"adapter: {adapter_dir}; tables: {output_dir / 'quickstart.md'}")
    return adapter_dir
