"""The bad-input catalogue: every command and the Python API, given what a user gets wrong.

Each case is the input, the command line (or API call), the fragment of the one line that must explain it, and the
exit code (``trex.errors``: 2 for a user error, 1 for an evaluation where a task failed and the others ran). Every
case also checks what must never happen: a traceback in the output, a message on more than one line, and a file
the user had before the command changed or gone afterwards (every file in the case's folder is compared byte for
byte). Most cases fail while options and configs are checked, before any model loads; the rest use the tiny
random Llama, so the whole catalogue stays in the fast suite.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from intuition.fakes import FakeEmbedder, make_corpus
from typer.testing import CliRunner

from trex import TRexConfig, TRexModel, get_trex_model
from trex.cli import app
from trex.configs import config_path
from trex.data import load_jsonl_task
from trex.errors import EXIT_PARTIAL, EXIT_USER_ERROR, UserError, user_message
from trex.eval import evaluate, load_eval_model
from trex.intuition import IntuitionBank, fit_intuition_bank
from trex.intuition.inputs import cap_per_label, read_jsonl_texts, sample_task_texts
from trex.pretrained import load_base_model, tiny_random_llama
from trex.train.recipe import load_recipe, recipe_from_dict

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "tiny-cpu.yaml"
SUBSET = Path(__file__).resolve().parents[1] / "src" / "trex" / "assets" / "data"
TINY = "tiny-random-llama"
runner = CliRunner()


@dataclass(frozen=True)
class Assets:
    """Files made once per session, copied into a case's folder before it is damaged."""

    adapter: Path  # T-REX on the tiny model, no intuition (needs no bank)
    bank: Path  # an intuition bank fitted with the fake embedder
    model: Path  # the tiny model saved as a transformers folder


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Assets:
    root = tmp_path_factory.mktemp("assets")
    base, tokenizer = tiny_random_llama()
    base.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    model = get_trex_model(tiny_random_llama()[0], TRexConfig(r_a=2, r_b=4, use_intuition=False))
    model.save_pretrained(root / "adapter")
    texts, labels = make_corpus(per_topic=6)
    fit_intuition_bank(texts, 4, embedder=FakeEmbedder(), labels=labels, backend="torch").save(root / "bank")
    return Assets(root / "adapter", root / "bank", root / "model")


# --- helpers that build a case's inputs in its folder -------------------------------------------------------------


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def jsonl(path: Path, rows: list[Any]) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in rows))


def copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def edit_json(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def adapter_with(tmp: Path, a: Assets, **changes: Any) -> Path:
    folder = copy(a.adapter, tmp / "adapter")
    edit_json(folder / "adapter_config.json", **changes)
    return folder


def damaged_weights(tmp: Path, a: Assets) -> Path:
    folder = copy(a.adapter, tmp / "adapter")
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    return folder


def nan_adapter(tmp: Path, a: Assets) -> Path:
    """Weights that are NaN, saved by trex itself (checksums right): what a diverged training run leaves."""
    model = get_trex_model(tiny_random_llama()[0], TRexConfig(r_a=2, r_b=4, use_intuition=False))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "trex_" in name:
                param.fill_(math.nan)
    model.save_pretrained(tmp / "adapter")
    return tmp / "adapter"


def data_root(tmp: Path, broken: dict[str, bytes] | None = None) -> Path:
    """A data root in the common format with copa and boolq; ``broken`` replaces a task's eval.jsonl."""
    root = tmp / "data"
    root.mkdir()
    shutil.copy(SUBSET / "index.json", root / "index.json")
    for task in ("copa", "boolq"):
        copy(SUBSET / task, root / task)
    for task, content in (broken or {}).items():
        (root / task / "eval.jsonl").write_bytes(content)
    return root


COPA_LINE = json.loads((SUBSET / "copa" / "eval.jsonl").read_text().splitlines()[0])


def copa_with(**changes: Any) -> bytes:
    return (json.dumps({**COPA_LINE, **changes}) + "\n").encode()


def recipe(tmp: Path, *overrides: str) -> list[str]:
    return ["train", str(RECIPE), f"output_dir={tmp / 'run'}", f"intuition.cache_dir={tmp / 'cache'}", *overrides]


def train_data(tmp: Path, rows: list[Any] | bytes) -> str:
    path = tmp / "mine.jsonl"
    write(path, rows) if isinstance(rows, bytes) else jsonl(path, rows)
    return f"data.tasks=[{path}]"


MC = {"question": "Which is a fruit?", "options": ["apple", "stone"], "label": 0}


def eval_args(tmp: Path, *extra: str) -> list[str]:
    """`trex eval` on the tiny model; options in ``extra`` replace the defaults of the same name."""
    defaults = {"--model": TINY, "--task": "copa", "--limit": "2", "-o": str(tmp / "out")}
    given = set(extra[::2]) if all(str(e).startswith("-") for e in extra[::2]) else set(extra)
    args = [x for option, value in defaults.items() if option not in given for x in (option, value)]
    return ["eval", *args, *extra]


def prompts(tmp: Path, rows: list[Any] | bytes) -> str:
    path = tmp / "prompts.jsonl"
    write(path, rows) if isinstance(rows, bytes) else jsonl(path, rows)
    return str(path)


def other_eval(tmp: Path) -> Path:
    out = tmp / "out"
    write(out / "results.json", '{"tasks": {"copa": {}}, "model": "someone else"}')
    write(out / "predictions.jsonl", '{"task": "copa"}\n')
    return out


def fit_args(tmp: Path, *extra: str) -> list[str]:
    return ["intuition", "fit", "-o", str(tmp / "bank"), *extra]


def user_folder(tmp: Path) -> Path:
    folder = tmp / "mine"
    write(folder / "notes.txt", "my notes")
    return folder


def bank_with(tmp: Path, a: Assets, name: str, content: bytes) -> Path:
    folder = copy(a.bank, tmp / "bank")
    (folder / name).write_bytes(content)
    return folder


# --- the catalogue ------------------------------------------------------------------------------------------------

Args = Callable[[Path, Assets], list[str]]


@dataclass(frozen=True)
class Cli:
    id: str
    args: Args
    fragment: str
    code: int = EXIT_USER_ERROR


CLI_CASES = [
    # trex train: the recipe file
    Cli("train-missing-recipe", lambda t, a: ["train", str(t / "nope.yaml")], "no recipe at"),
    Cli("train-recipe-is-folder", lambda t, a: ["train", str(t)], "no recipe at"),
    Cli("train-empty-recipe", lambda t, a: ["train", str(write(t / "r.yaml", ""))], "is empty"),
    Cli("train-bad-yaml", lambda t, a: ["train", str(write(t / "r.yaml", "model: [unclosed"))], "not valid YAML"),
    Cli("train-recipe-is-list", lambda t, a: ["train", str(write(t / "r.yaml", "- a\n- b\n"))], "mapping of sections"),
    Cli("train-recipe-not-utf8", lambda t, a: ["train", str(write(t / "r.yaml", b"model: \xff\xfe\n"))], "UTF-8"),
    Cli("train-unknown-top-key", lambda t, a: recipe(t, "outptu_dir=x"), "did you mean 'output_dir'"),
    Cli("train-unknown-key", lambda t, a: recipe(t, "training.learnin_rate=1"), "did you mean 'learning_rate'"),
    Cli("train-override-no-equals", lambda t, a: recipe(t, "training.max_steps"), "must look like section.key=value"),
    Cli("train-section-not-mapping", lambda t, a: recipe(t, "training=3"), "expected a mapping"),
    # trex train: ranges and types, all checked before any loading
    Cli(
        "train-zero-micro-batch",
        lambda t, a: recipe(t, "training.per_device_batch_size=0"),
        "per_device_batch_size must be >= 1, got 0",
    ),
    Cli(
        "train-negative-global-batch",
        lambda t, a: recipe(t, "training.global_batch_size=-8"),
        "global_batch_size must be >= 1",
    ),
    Cli("train-batch-split", lambda t, a: recipe(t, "training.global_batch_size=6"), "is not a multiple"),
    Cli("train-negative-cap", lambda t, a: recipe(t, "data.max_per_task=-1"), "max_per_task must be >= 1, got -1"),
    Cli("train-zero-cap", lambda t, a: recipe(t, "data.max_per_task=0"), "max_per_task must be >= 1, got 0"),
    Cli("train-zero-max-length", lambda t, a: recipe(t, "data.max_length=0"), "max_length must be >= 1"),
    Cli("train-zero-steps", lambda t, a: recipe(t, "training.max_steps=0"), "max_steps must be >= 1, or -1"),
    Cli("train-zero-save-steps", lambda t, a: recipe(t, "training.save_steps=0"), "save_steps must be >= 1"),
    Cli("train-zero-keep", lambda t, a: recipe(t, "training.save_total_limit=0"), "save_total_limit must be >= 1"),
    Cli("train-nan-lr", lambda t, a: recipe(t, "training.learning_rate=.nan"), "expected a finite number"),
    Cli("train-negative-lr", lambda t, a: recipe(t, "training.learning_rate=-1"), "learning_rate must be > 0"),
    Cli("train-text-lr", lambda t, a: recipe(t, "training.learning_rate=fast"), "expected a number, got 'fast'"),
    Cli("train-string-bool", lambda t, a: recipe(t, "adapter.use_intuition='false'"), "expected bool, got 'false'"),
    Cli("train-float-rank", lambda t, a: recipe(t, "adapter.r_a=2.5"), "expected int, got 2.5"),
    Cli("train-zero-rank", lambda t, a: recipe(t, "adapter.r_a=0"), "r_a"),
    Cli("train-unknown-method", lambda t, a: recipe(t, "adapter.method=lorax"), "adapter.method"),
    Cli("train-method-switched-keys", lambda t, a: recipe(t, "adapter.method=lora"), "are trex's, not lora's"),
    Cli("train-unknown-format", lambda t, a: recipe(t, "data.format=prose"), "is not one of"),
    Cli("train-zero-temperature", lambda t, a: recipe(t, "data.temperature=0"), "temperature must be > 0"),
    Cli("train-zero-kmeans-points", lambda t, a: recipe(t, "intuition.max_points=0"), "max_points must be >= 1"),
    Cli("train-zero-embed-batch", lambda t, a: recipe(t, "intuition.batch_size=0"), "batch_size must be >= 1"),
    Cli("train-negative-bank-cap", lambda t, a: recipe(t, "intuition.max_per_task=-5"), "max_per_task must be >= 1"),
    Cli("train-unknown-task", lambda t, a: recipe(t, "data.tasks=[copaa]"), "copaa"),
    Cli("train-missing-data-file", lambda t, a: recipe(t, f"data.tasks=[{t / 'no.jsonl'}]"), "no.jsonl"),
    # trex train: the user's training data (file and line named)
    Cli(
        "train-data-not-utf8",
        lambda t, a: recipe(t, train_data(t, b'{"question": "\xff"}\n')),
        "mine.jsonl:1: not UTF-8",
    ),
    Cli(
        "train-data-bad-json",
        lambda t, a: recipe(t, train_data(t, b'{"question": \n')),
        "mine.jsonl:1: malformed JSON",
    ),
    Cli(
        "train-data-empty-option",
        lambda t, a: recipe(t, train_data(t, [MC, {**MC, "options": ["apple", " "]}])),
        "mine.jsonl:2: option 1 is empty",
    ),
    Cli(
        "train-data-empty-question",
        lambda t, a: recipe(t, train_data(t, [{**MC, "question": "  "}])),
        "mine.jsonl:1: empty question",
    ),
    Cli(
        "train-data-missing-options",
        lambda t, a: recipe(t, train_data(t, [{"question": "q?", "label": 0}])),
        "missing field 'options'",
    ),
    Cli(
        "train-data-label-text",
        lambda t, a: recipe(t, train_data(t, [{**MC, "label": "apple"}])),
        "mine.jsonl:1: field 'label' has the wrong type",
    ),
    Cli(
        "train-data-label-outside",
        lambda t, a: recipe(t, train_data(t, [{**MC, "label": 5}])),
        "mine.jsonl:1: label 5 is outside",
    ),
    Cli(
        "train-data-label-null",
        lambda t, a: recipe(t, train_data(t, [MC, {**MC, "uid": "x7", "label": None}])),
        "mine.jsonl:2: no target to train on",
    ),
    Cli(
        "train-data-options-text",
        lambda t, a: recipe(t, train_data(t, [{**MC, "options": "apple"}])),
        "field 'options' has the wrong type",
    ),
    # trex train: models and folders
    Cli(
        "train-missing-model-folder", lambda t, a: recipe(t, f"model.name_or_path={t / 'no-model'}"), "does not exist"
    ),
    Cli(
        "train-model-bad-config",
        lambda t, a: recipe(t, f"model.name_or_path={write(t / 'm' / 'config.json', '{').parent}"),
        "cannot load the model",
    ),
    Cli("train-output-under-a-file", lambda t, a: recipe(t, f"output_dir={write(t / 'f', 'x') / 'run'}"), "f"),
    Cli("train-resume-not-a-run", lambda t, a: [*recipe(t, f"output_dir={user_folder(t)}"), "--resume"], "mine"),
    Cli("train-fresh-into-user-folder", lambda t, a: recipe(t, f"output_dir={user_folder(t)}"), "mine"),
    Cli("train-missing-bank", lambda t, a: recipe(t, f"intuition.bank={t / 'nobank'}"), "nobank"),
    # trex eval: options (checked before the model loads)
    Cli("eval-negative-limit", lambda t, a: eval_args(t, "--limit", "-1"), "--limit must be >= 1, got -1"),
    Cli("eval-zero-limit", lambda t, a: eval_args(t, "--limit", "0"), "--limit must be >= 1, got 0"),
    Cli("eval-zero-batch", lambda t, a: eval_args(t, "--batch-size", "0"), "--batch-size must be >= 1, got 0"),
    Cli("eval-negative-max-length", lambda t, a: eval_args(t, "--max-length", "-5"), "--max-length must be >= 1"),
    Cli("eval-unknown-scoring", lambda t, a: eval_args(t, "--scoring", "vibes"), "--scoring: unknown value 'vibes'"),
    Cli("eval-unknown-format", lambda t, a: eval_args(t, "--format", "prose"), "--format: unknown value 'prose'"),
    Cli("eval-unknown-split", lambda t, a: eval_args(t, "--split", "dev"), "--split: unknown value 'dev'"),
    Cli("eval-unknown-metric", lambda t, a: eval_args(t, "--metric", "f1"), "--metric: unknown value 'f1'"),
    Cli("eval-unknown-bbh-form", lambda t, a: eval_args(t, "--bbh-form", "x"), "--bbh-form: unknown value"),
    Cli("eval-unknown-task", lambda t, a: eval_args(t, "--task", "copaa"), "did you mean"),
    Cli("eval-no-task", lambda t, a: eval_args(t, "--task", ","), "no tasks given"),
    Cli(
        "eval-map-yes-no-loglik",
        lambda t, a: eval_args(t, "--scoring", "loglik", "--map-yes-no"),
        "needs --scoring generate",
    ),
    Cli("eval-generate-cloze", lambda t, a: eval_args(t, "--format", "cloze"), "needs --format letters"),
    Cli("eval-unknown-chat-format", lambda t, a: eval_args(t, "--chat-format", "vicuna"), "vicuna"),
    # trex eval: the adapter folder
    Cli("eval-missing-adapter", lambda t, a: eval_args(t, "--adapter", str(t / "none")), "does not exist"),
    Cli(
        "eval-adapter-without-files",
        lambda t, a: eval_args(t, "--adapter", str(user_folder(t))),
        "is missing adapter_config.json",
    ),
    Cli(
        "eval-adapter-config-not-json",
        lambda t, a: eval_args(
            t, "--adapter", str(write(copy(a.adapter, t / "ad") / "adapter_config.json", "{oops").parent)
        ),
        "adapter_config.json",
    ),
    Cli(
        "eval-adapter-string-bool",
        lambda t, a: eval_args(t, "--adapter", str(adapter_with(t, a, use_router="false"))),
        "expected bool, got 'false'",
    ),
    Cli(
        "eval-adapter-nan-constant",
        lambda t, a: eval_args(t, "--adapter", str(adapter_with(t, a, gate_sharpness=math.nan))),
        "finite",
    ),
    Cli(
        "eval-adapter-text-rank",
        lambda t, a: eval_args(t, "--adapter", str(adapter_with(t, a, r_a="2"))),
        "expected int, got '2'",
    ),
    Cli(
        "eval-adapter-unknown-method",
        lambda t, a: eval_args(t, "--adapter", str(adapter_with(t, a, method="x"))),
        "method",
    ),
    Cli(
        "eval-adapter-escaping-path",
        lambda t, a: eval_args(t, "--adapter", str(adapter_with(t, a, intuition_bank="../../etc"))),
        "intuition_bank",
    ),
    Cli(
        "eval-adapter-damaged-weights",
        lambda t, a: eval_args(t, "--adapter", str(damaged_weights(t, a))),
        "adapter_model.safetensors",
    ),
    Cli(
        "eval-adapter-other-shapes",
        lambda t, a: eval_args(t, "--adapter", str(adapter_with(t, a, r_a=3))),
        "made for another base model",
    ),
    # trex eval: the base model
    Cli(
        "eval-missing-model-folder",
        lambda t, a: ["eval", "--model", str(t / "no-model"), "--task", "copa"],
        "model folder",
    ),
    Cli(
        "eval-model-is-file",
        lambda t, a: ["eval", "--model", str(write(t / "m.bin", "x")), "--task", "copa"],
        "is a file",
    ),
    Cli(
        "eval-model-bad-config",
        lambda t, a: [
            "eval",
            "--model",
            str(write(copy(a.model, t / "m") / "config.json", '{"model_type": "nonsense"}').parent),
            "--task",
            "copa",
        ],
        "cannot load the model",
    ),
    Cli(
        "eval-model-damaged-weights",
        lambda t, a: [
            "eval",
            "--model",
            str(write(copy(a.model, t / "m") / "model.safetensors", b"garbage").parent),
            "--task",
            "copa",
        ],
        "cannot load the model",
    ),
    Cli(
        "eval-offline-hub-id",
        lambda t, a: ["eval", "--model", "nobody/no-such-model", "--task", "copa"],
        "cannot load the model 'nobody/no-such-model'",
    ),
    # trex eval: output folders (the user's files stay as they were)
    Cli("eval-output-is-file", lambda t, a: eval_args(t, "-o", str(write(t / "results", "mine"))), "is a file"),
    Cli("eval-output-other-eval", lambda t, a: eval_args(t, "-o", str(other_eval(t))), "already holds an evaluation"),
    Cli(
        "eval-dump-exists",
        lambda t, a: eval_args(t, "--dump-requests", str(write(t / "dump.jsonl", "mine\n"))),
        "already exists",
    ),
    Cli(
        "eval-resume-damaged-results",
        lambda t, a: eval_args(t, "--resume", "-o", str(write(t / "out" / "results.json", "{cut").parent)),
        "cannot resume",
    ),
    Cli(
        "eval-resume-foreign-results", lambda t, a: eval_args(t, "--resume", "-o", str(other_eval(t))), "cannot resume"
    ),
    Cli("eval-output-under-a-file", lambda t, a: eval_args(t, "-o", str(write(t / "f", "x") / "out")), "f"),
    # trex eval: evaluation data errors fail their task; the others are scored (exit 1)
    Cli(
        "eval-data-not-utf8",
        lambda t, a: eval_args(
            t,
            "--task",
            "copa,boolq",
            "--scoring",
            "loglik",
            "--data-root",
            str(data_root(t, {"copa": b'{"question": "caf\xe9"}\n'})),
        ),
        "copa/eval.jsonl:1: not UTF-8",
        EXIT_PARTIAL,
    ),
    Cli(
        "eval-data-label-text",
        lambda t, a: eval_args(
            t,
            "--task",
            "copa,boolq",
            "--scoring",
            "loglik",
            "--data-root",
            str(data_root(t, {"copa": copa_with(label="one")})),
        ),
        "copa/eval.jsonl:1: field 'label' has the wrong type",
        EXIT_PARTIAL,
    ),
    Cli(
        "eval-data-options-numbers",
        lambda t, a: eval_args(
            t,
            "--task",
            "copa,boolq",
            "--scoring",
            "loglik",
            "--data-root",
            str(data_root(t, {"copa": copa_with(options=[1, 2])})),
        ),
        "copa/eval.jsonl:1: field 'options' must be a list of at least two strings",
        EXIT_PARTIAL,
    ),
    Cli(
        "eval-data-missing-options",
        lambda t, a: eval_args(
            t,
            "--task",
            "copa,boolq",
            "--scoring",
            "loglik",
            "--data-root",
            str(data_root(t, {"copa": copa_with(options=None)})),
        ),
        "missing field 'options'",
        EXIT_PARTIAL,
    ),
    Cli(
        "eval-nan-scores",
        lambda t, a: eval_args(t, "--scoring", "loglik", "--adapter", str(nan_adapter(t, a))),
        "non-finite log-likelihoods",
        EXIT_PARTIAL,
    ),
    # trex params
    Cli("params-missing-config", lambda t, a: ["params", str(t / "config.json")], "config.json"),
    Cli("params-config-not-json", lambda t, a: ["params", str(write(t / "config.json", "{"))], "config.json"),
    Cli(
        "params-config-unknown-type",
        lambda t, a: ["params", str(write(t / "config.json", '{"model_type": "nonsense"}'))],
        "config.json",
    ),
    Cli("params-zero-rank", lambda t, a: ["params", str(a.model), "--r-a", "0"], "r_a"),
    Cli("params-unknown-method", lambda t, a: ["params", str(a.model), "--method", "lorax"], "lorax"),
    Cli("params-unknown-mode", lambda t, a: ["params", str(a.model), "--mode", "square"], "square"),
    Cli(
        "params-zero-lora-rank", lambda t, a: ["params", str(a.model), "--lora-rank", "0"], "--lora-rank must be >= 1"
    ),
    # trex intuition fit
    Cli("fit-no-source", lambda t, a: fit_args(t), "give either JSONL files or --task"),
    Cli("fit-both-sources", lambda t, a: fit_args(t, prompts(t, [{"text": "a"}]), "--task", "copa"), "not both"),
    Cli("fit-zero-clusters", lambda t, a: fit_args(t, "--task", "copa", "--n-clusters", "0"), "--n-clusters must be"),
    Cli("fit-negative-cap", lambda t, a: fit_args(t, "--task", "copa", "--cap", "-1"), "--cap must be >= 1, got -1"),
    Cli("fit-zero-max-points", lambda t, a: fit_args(t, "--task", "copa", "--max-points", "0"), "--max-points must"),
    Cli("fit-zero-batch", lambda t, a: fit_args(t, "--task", "copa", "--batch-size", "0"), "--batch-size must"),
    Cli("fit-zero-iterations", lambda t, a: fit_args(t, "--task", "copa", "--n-iter", "0"), "--n-iter must"),
    Cli("fit-unknown-backend", lambda t, a: fit_args(t, "--task", "copa", "--backend", "gpu"), "--backend"),
    Cli("fit-unknown-scoring", lambda t, a: fit_args(t, "--task", "copa", "--scoring", "l2"), "--scoring"),
    Cli("fit-missing-input", lambda t, a: fit_args(t, str(t / "none.jsonl")), "none.jsonl"),
    Cli(
        "fit-input-not-utf8",
        lambda t, a: fit_args(t, prompts(t, b'{"text": "ok"}\n{"text": "\xff"}\n')),
        "prompts.jsonl:2: not UTF-8",
    ),
    Cli(
        "fit-empty-text",
        lambda t, a: fit_args(t, prompts(t, [{"text": "ok"}, {"text": ""}])),
        "prompts.jsonl:2: field 'text' is empty",
    ),
    Cli("fit-text-not-string", lambda t, a: fit_args(t, prompts(t, [{"text": 3}])), "prompts.jsonl:1: field 'text'"),
    Cli("fit-no-text-field", lambda t, a: fit_args(t, prompts(t, [{"prompt": "a"}])), "prompts.jsonl:1: no field"),
    Cli(
        "fit-over-user-folder",
        lambda t, a: ["intuition", "fit", "-o", str(user_folder(t)), "--task", "copa"],
        "not an intuition bank written by trex",
    ),
    Cli(
        "fit-over-user-file",
        lambda t, a: ["intuition", "fit", "-o", str(write(t / "bank", "mine")), "--task", "copa"],
        "exists and is not a folder",
    ),
    Cli(
        "fit-missing-embedder",
        lambda t, a: fit_args(t, "--task", "copa", "--embedder", str(t / "no-embedder")),
        "embedder folder not found",
    ),
    Cli("fit-unknown-task", lambda t, a: fit_args(t, "--task", "copaa"), "copaa"),
    # trex intuition show
    Cli("show-missing-bank", lambda t, a: ["intuition", "show", str(t / "none")], "not an intuition bank"),
    Cli(
        "show-damaged-metadata",
        lambda t, a: ["intuition", "show", str(bank_with(t, a, "intuition_bank.json", b"{cut"))],
        "bank",
    ),
    Cli(
        "show-damaged-centroids",
        lambda t, a: [
            "intuition",
            "show",
            str(bank_with(t, a, "centroids.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")),
        ],
        "centroids.safetensors",
    ),
    Cli("show-negative-examples", lambda t, a: ["intuition", "show", str(a.bank), "--examples", "-1"], "--examples"),
    Cli("show-zero-chars", lambda t, a: ["intuition", "show", str(a.bank), "--max-chars", "0"], "--max-chars"),
    # trex compare / analyze / quickstart / configs
    Cli("compare-missing-config", lambda t, a: ["compare", str(t / "c.yaml")], "c.yaml"),
    Cli("compare-unknown-key", lambda t, a: ["compare", str(write(t / "c.yaml", "methodz: [trex]\n"))], "methodz"),
    Cli("compare-bad-yaml", lambda t, a: ["compare", str(write(t / "c.yaml", "a: [\n"))], "c.yaml"),
    Cli("analyze-missing-run", lambda t, a: ["analyze", str(t / "run")], "run"),
    Cli("analyze-zero-per-task", lambda t, a: ["analyze", str(t), "--per-task", "0"], "--per-task must be >= 1"),
    Cli("quickstart-zero-limit", lambda t, a: ["quickstart", "--eval-limit", "0"], "--eval-limit must be >= 1"),
    Cli("quickstart-unknown-method", lambda t, a: ["quickstart", "--method", "lorax"], "no CPU recipe for method"),
    Cli("configs-show-unknown", lambda t, a: ["configs", "show", "tiny-cp"], "did you mean tiny-cpu.yaml"),
    Cli(
        "configs-copy-over-file",
        lambda t, a: ["configs", "copy", "tiny-cpu", str(write(t / "r.yaml", "mine"))],
        "exists; pass --overwrite",
    ),
    Cli(
        "configs-copy-missing-folder",
        lambda t, a: ["configs", "copy", "tiny-cpu", str(t / "no" / "r.yaml")],
        "does not exist",
    ),
]


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def check_intact(before: dict[str, str], folder: Path) -> None:
    after = snapshot(folder)
    changed = [name for name, digest in before.items() if after.get(name) != digest]
    assert not changed, f"files changed or lost: {changed}"


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_bad_input_is_one_clear_line(case: Cli, assets: Assets, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # read once at import
    monkeypatch.setenv("TREX_CACHE", str(tmp_path / "trex-cache"))
    monkeypatch.chdir(tmp_path)
    args = case.args(tmp_path, assets)
    before = snapshot(tmp_path)
    result = runner.invoke(app, args)
    output = result.output
    assert "Traceback" not in output, output
    assert result.exit_code == case.code, output
    lines = [line for line in output.splitlines() if line.startswith("error:") or " failed: " in line]
    assert lines, output
    assert any(case.fragment in line for line in lines), output
    check_intact(before, tmp_path)


# --- the Python API -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Api:
    id: str
    call: Callable[[Path, Assets], Any]
    fragment: str
    error: type[BaseException] = ValueError


def _forward(intuition: torch.Tensor) -> Any:
    model = get_trex_model(tiny_random_llama()[0], TRexConfig(r_a=2, r_b=4))
    return model(input_ids=torch.ones(1, 3, dtype=torch.long), intuition=intuition)


def _evaluate(**options: Any) -> Any:
    return evaluate(load_eval_model(TINY), ["copa"], **options)


def _fit(texts: list[str], n: int = 2, **options: Any) -> Any:
    return fit_intuition_bank(texts, n, embedder=FakeEmbedder(), backend="torch", **options)


API_CASES = [
    Api("config-zero-rank", lambda t, a: TRexConfig(r_a=0), "r_a"),
    Api("config-bad-mode", lambda t, a: TRexConfig(mode="square"), "mode"),
    Api("config-nothing-routes", lambda t, a: TRexConfig(use_router=False, use_intuition=False), "nothing to route"),
    Api(
        "config-load-string-bool",
        lambda t, a: TRexConfig.load(adapter_with(t, a, use_intuition="false") / "adapter_config.json"),
        "expected bool",
    ),
    Api("model-nan-intuition", lambda t, a: _forward(torch.full((1, 8), math.nan)), "finite"),
    Api("model-wrong-intuition-width", lambda t, a: _forward(torch.rand(1, 3)), "intuition"),
    Api(
        "from-pretrained-missing",
        lambda t, a: TRexModel.from_pretrained(tiny_random_llama()[0], t / "none"),
        "none",
        OSError,
    ),
    Api(
        "load-adapter-damaged",
        lambda t, a: TRexModel.from_pretrained(tiny_random_llama()[0], damaged_weights(t, a)),
        "adapter_model.safetensors",
    ),
    Api("load-base-missing", lambda t, a: load_base_model(str(t / "m")), "does not exist"),
    Api("load-eval-missing-adapter", lambda t, a: load_eval_model(TINY, t / "x"), "does not exist"),
    Api("evaluate-negative-limit", lambda t, a: _evaluate(limit=-1), "--limit must be a positive number"),
    Api("evaluate-zero-batch", lambda t, a: _evaluate(batch_size=0), "batch size must be at least 1"),
    Api("evaluate-resume-without-output", lambda t, a: _evaluate(resume=True), "resume needs the output folder"),
    Api("recipe-missing", lambda t, a: load_recipe(t / "r.yaml"), "no recipe at", FileNotFoundError),
    Api(
        "recipe-zero-batch",
        lambda t, a: recipe_from_dict({"training": {"per_device_batch_size": 0}}),
        "per_device_batch_size must be >= 1",
    ),
    Api("bank-missing", lambda t, a: IntuitionBank.load(t / "none"), "not an intuition bank", FileNotFoundError),
    Api("fit-empty-text", lambda t, a: _fit(["one", "", "three"]), "text 1 is empty"),
    Api("fit-zero-clusters", lambda t, a: _fit(["a b", "c d"], 0), "n_clusters must be an integer >= 1"),
    Api("fit-more-clusters-than-texts", lambda t, a: _fit(["a b", "c d"], 5), "fewer instances (2) than clusters"),
    Api("cap-negative", lambda t, a: cap_per_label(["a", "b"], ["x", "x"], -1), "cap must be >= 1"),
    Api("sample-tasks-negative-cap", lambda t, a: sample_task_texts(["copa"], cap=-2), "cap must be >= 1"),
    Api("jsonl-texts-not-utf8", lambda t, a: read_jsonl_texts([prompts(t, b"\xff\n")]), "prompts.jsonl:1: not UTF-8"),
    Api(
        "user-task-missing-options",
        lambda t, a: load_jsonl_task(jsonl(t / "mine.jsonl", [{"question": "q", "label": 0}])),
        "mine.jsonl:1: missing field 'options'",
    ),
    Api("configs-unknown", lambda t, a: config_path("nope"), "no shipped config"),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_api_bad_input_raises_a_user_error(case: Api, assets: Assets, tmp_path: Path) -> None:
    with pytest.raises(case.error) as caught:
        case.call(tmp_path, assets)
    message = user_message(caught.value)
    assert message is not None, f"{type(caught.value).__name__} would show as a bug: {caught.value}"
    assert "\n" not in message and case.fragment in message, message


def test_the_catalogue_covers_every_command() -> None:
    """At least 80 cases, and every command of the CLI has some (a new command needs its own)."""
    assert len(CLI_CASES) + len(API_CASES) >= 80
    first_words = {c.id.split("-")[0] for c in CLI_CASES}
    assert {"train", "eval", "params", "fit", "show", "compare", "analyze", "quickstart", "configs"} <= first_words


def test_every_command_turns_errors_into_lines() -> None:
    """Each command's callback goes through trex.errors.cli_command (one place for the exit-code convention)."""
    import typer.main

    def commands(group) -> list:
        found = []
        for name, command in group.commands.items():
            found += commands(command) if hasattr(command, "commands") else [(name, command)]
        return found

    listed = commands(typer.main.get_command(app))
    assert len(listed) >= 12
    for name, command in listed:
        assert getattr(command.callback, "__wrapped__", None) is not None, name
        wrapped = command.callback
        while not getattr(wrapped, "__trex_cli_command__", False) and hasattr(wrapped, "__wrapped__"):
            wrapped = wrapped.__wrapped__
        assert getattr(wrapped, "__trex_cli_command__", False), f"{name} does not go through cli_command"


def test_a_bug_keeps_its_traceback(monkeypatch) -> None:
    """Not everything is a user error: an unexpected exception is shown with its traceback and exit code 70."""
    import trex.configs

    def broken() -> list[str]:
        raise KeyError("a bug")

    monkeypatch.setattr(trex.configs, "list_configs", broken)
    result = runner.invoke(app, ["configs", "list"])
    assert result.exit_code == 70 and "Traceback" in result.output and "bug in trex" in result.output


def test_user_error_is_a_value_error() -> None:
    assert issubclass(UserError, ValueError)
