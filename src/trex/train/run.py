"""``trex train``: recipe -> mixture -> (intuition bank) -> Trainer -> adapter folder, resumable at every checkpoint.

Every method goes through this one pipeline: ``adapter.method`` picks the adapter model (``trex.methods``), and
the bank is fitted only for methods whose prior is intuition. The run folder holds everything needed to use or
continue the run: ``recipe.yaml`` (resolved), ``metrics.jsonl``, ``tensorboard/``, ``checkpoint-N/`` (adapter +
safe optimizer state), and finally ``adapter/`` (with the intuition bank inside, for T-REX), loadable by
``trex.methods.load_adapter_model``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from transformers import TrainerCallback, TrainingArguments
from transformers.integrations import TensorBoardCallback

from trex.data import intuition_text, mixture_table, tokenize_instances
from trex.data.chat_formats import apply_chat_format
from trex.intuition import CachedEmbedder, IntuitionBank, fit_intuition_bank
from trex.intuition.inputs import cap_per_label
from trex.io import write_text_atomic
from trex.methods import build_adapter_model
from trex.methods.base import AdapterModel, find_target_modules
from trex.pretrained import cache_root, load_base_model
from trex.train import checkpoint as ckpt
from trex.train.dataset import IntuitionCollator, IntuitionExamples, build_training_mixture
from trex.train.metrics import MetricsLogger, logged_training
from trex.train.recipe import IntuitionSection, Recipe
from trex.train.trainer import AdapterTrainer

logger = logging.getLogger(__name__)

TRAINING_RECORD = "trex_training.json"
RECIPE_FILE = "recipe.yaml"
MAY_CHANGE_ON_RESUME = {
    "training.logging_steps", "training.save_steps", "training.save_total_limit", "training.routing_probe_steps",
    "intuition.cache_dir", "data.data_root", "output_dir",
}  # fmt: skip
"""Recipe keys a resumed run may change: they decide what is logged, kept or where files are, never what is learnt
(``output_dir`` too: a run folder moved or checked out elsewhere is still the same run)."""
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BANK_DIR = "intuition_bank"


@dataclass
class TrainResult:
    run_dir: Path
    adapter_dir: Path
    steps: int
    train_loss: float | None  # mean over every logged step, of every sitting of a resumed run


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def gradient_accumulation(recipe: Recipe) -> int:
    t = recipe.training
    per_step = t.per_device_batch_size * world_size()
    if t.global_batch_size % per_step:
        raise ValueError(
            f"training.global_batch_size={t.global_batch_size} is not a multiple of per_device_batch_size="
            f"{t.per_device_batch_size} x {world_size()} processes"
        )
    return t.global_batch_size // per_step


def build_embedder(section: IntuitionSection):
    """The embedder the recipe's intuition section names: the packaged MiniLM or a sentence-transformers folder."""
    from trex.intuition import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(
        section.embedder, prefix=section.prefix, batch_size=section.batch_size,
        trust_remote_code=section.trust_remote_code, max_seq_length=section.max_seq_length,
    )  # fmt: skip


def prepare_bank(recipe: Recipe, texts: list[str], labels: list[str], run_dir: Path) -> IntuitionBank:
    """Fit (or load) the bank on the mixture's prompts; it scores through the on-disk embedding cache."""
    section = recipe.intuition
    width = recipe.adapter.prior_width
    cache_dir = Path(section.cache_dir) if section.cache_dir else cache_root() / "embeddings"
    embedder = CachedEmbedder(build_embedder(section), cache_dir)
    bank_dir = run_dir / BANK_DIR
    if section.bank:
        bank = IntuitionBank.load(section.bank, embedder=embedder)
    elif bank_dir.is_dir():  # written atomically, so present means complete; a resumed run keeps its bank
        bank = IntuitionBank.load(bank_dir, embedder=embedder)
    else:
        sample, sample_labels = cap_per_label(texts, labels, section.max_per_task, section.seed)
        bank = fit_intuition_bank(
            sample, width, embedder=embedder, seed=section.seed, backend=section.backend, labels=sample_labels,
            scoring=section.scoring, max_points=section.max_points, n_iter=section.n_iter,
        )  # fmt: skip
        bank.save(bank_dir)
    if bank.n_clusters != width:
        raise ValueError(f"intuition bank has {bank.n_clusters} clusters but the adapter expects {width}")
    return bank


def instance_priors(
    recipe: Recipe, model: AdapterModel, mixture: list, examples: list, run_dir: Path
) -> torch.Tensor | None:
    """One prior row per training example, from ``model.instance_inputs`` (the call evaluation makes too)."""
    if not model.needs_instance_inputs:
        return None
    unique = {(i.task, i.uid): i for i in mixture}
    keys = list(unique)
    texts, tasks = [intuition_text(unique[k]) for k in keys], [k[0] for k in keys]
    if recipe.adapter.intuition_source == "bank":
        model.attach_intuition_bank(prepare_bank(recipe, texts, tasks, run_dir))
    rows = model.instance_inputs(texts, tasks)
    row_of = {key: row for row, key in enumerate(keys)}
    return rows[[row_of[(e.task, e.uid)] for e in examples]]


def changed_keys(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two recipe dicts (nested sections compared key by key)."""
    keys = []
    for key in sorted(set(saved) | set(current)):
        a, b, name = saved.get(key), current.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_keys(a, b, f"{name}.")
        elif a != b:
            keys.append(name)
    return keys


def check_run_folder(run_dir: Path, recipe: Recipe, resume: bool) -> None:
    """Refuse what would silently train something other than asked: a folder holding another run, a changed
    recipe on resume, a finished run; a folder of another program is never used."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"output_dir {run_dir} is a file; pick another output_dir")
    saved_path = run_dir / RECIPE_FILE
    if not saved_path.is_file():
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ValueError(
                f"{run_dir} is not empty and holds no trex run (no {RECIPE_FILE}); pick another output_dir"
            )
        return
    try:
        saved = yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{saved_path} is damaged ({err}); pick another output_dir") from err
    changed = [k for k in changed_keys(saved, recipe.to_dict()) if k not in MAY_CHANGE_ON_RESUME]
    if changed:
        raise ValueError(
            f"{run_dir} holds a run with other settings ({', '.join(changed)} differ from {saved_path}); "
            "use the same recipe to continue it, or pick another output_dir"
        )
    if (run_dir / "adapter" / TRAINING_RECORD).is_file():
        raise ValueError(f"{run_dir} holds a finished run (adapter/ is saved); nothing to resume")
    if not resume and ckpt.complete_checkpoints(run_dir):
        raise ValueError(f"{run_dir} already holds a run; pass --resume to continue it or pick another output_dir")


def write_training_record(adapter_dir: Path, recipe: Recipe) -> None:
    """``trex_training.json``: the prompt settings the adapter learnt; ``trex eval`` uses them unless told so."""
    record = {
        "format": recipe.data.format,
        "chat_template": recipe.data.chat_template,
        "chat_format": recipe.data.chat_format,
        "max_length": recipe.data.max_length,
        "tasks": recipe.data.tasks,
        "base_model": recipe.model.name_or_path,
    }
    write_text_atomic(adapter_dir / TRAINING_RECORD, json.dumps(record, indent=2) + "\n")


def training_arguments(recipe: Recipe, run_dir: Path) -> TrainingArguments:
    t = recipe.training
    return TrainingArguments(
        output_dir=str(run_dir),
        per_device_train_batch_size=t.per_device_batch_size,
        gradient_accumulation_steps=gradient_accumulation(recipe),
        learning_rate=t.learning_rate,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=int(t.warmup_steps) if t.warmup_steps >= 1 else t.warmup_steps,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        seed=t.seed,
        data_seed=t.seed,
        bf16=t.bf16,
        fp16=t.fp16,
        activation_checkpointing=t.gradient_checkpointing,  # transformers 5 name of gradient_checkpointing
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        report_to=[],  # TensorBoard is added as a callback writing into the run folder
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
    )


def tensorboard_callback(log_dir: Path) -> TensorBoardCallback:
    from torch.utils.tensorboard import SummaryWriter

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))


def wait_for_checked_folder(run_dir: Path, poll_s: float = 0.2) -> None:
    """Hold a non-main process of a multi-process launch until the main process has checked the run folder and
    written its recipe.yaml: a file of this process (the intuition bank) appearing first made the main process
    refuse the folder as another program's. If the main process fails its check, the launcher stops this one."""
    while not (run_dir / RECIPE_FILE).is_file():
        time.sleep(poll_s)


def run_training(recipe: Recipe, resume: bool = False, callbacks: list[TrainerCallback] | None = None) -> TrainResult:
    """Check everything, then train; with ``resume`` continue from the newest complete checkpoint."""
    run_dir = Path(recipe.output_dir)
    main_process = os.environ.get("RANK", "0") == "0"
    if main_process:  # before minutes of loading and tokenising; other processes would see its files appear
        check_run_folder(run_dir, recipe, resume)
    torch.manual_seed(recipe.training.seed)
    model, tokenizer = load_base_model(
        recipe.model.name_or_path, DTYPES[recipe.model.dtype], recipe.model.trust_remote_code
    )
    find_target_modules(model, recipe.adapter)  # an adapter that does not fit the model fails here, before data
    apply_chat_format(tokenizer, recipe.data.chat_format)
    mixture, tasks = build_training_mixture(recipe.data)
    examples, report = tokenize_instances(
        mixture, recipe.data.format, tokenizer, recipe.data.max_length, chat_template=recipe.data.chat_template
    )
    if not examples:
        raise ValueError(f"every instance is longer than data.max_length={recipe.data.max_length}; raise it")
    gradient_accumulation(recipe)  # a batch size that does not split over processes fails here, before the bank fit

    if not main_process and world_size() > 1:
        wait_for_checked_folder(run_dir)
    resume_from = None
    if resume and run_dir.exists():
        if main_process:
            for path in ckpt.remove_incomplete_checkpoints(run_dir):
                logger.warning("removed incomplete checkpoint %s", path)
        complete = ckpt.complete_checkpoints(run_dir)
        resume_from = str(complete[-1]) if complete else None
    run_dir.mkdir(parents=True, exist_ok=True)
    if main_process:
        write_text_atomic(run_dir / RECIPE_FILE, yaml.safe_dump(recipe.to_dict(), sort_keys=False))

    adapter_model = build_adapter_model(model, recipe.adapter)
    dataset = IntuitionExamples(examples, instance_priors(recipe, adapter_model, mixture, examples, run_dir))
    collator = IntuitionCollator(tokenizer.pad_token_id)
    probe = collator([dataset[i] for i in range(min(recipe.training.routing_probe_size, len(dataset)))])
    trainer = AdapterTrainer(
        model=adapter_model,
        args=training_arguments(recipe, run_dir),
        train_dataset=dataset,
        data_collator=collator,
        callbacks=[
            MetricsLogger(run_dir / "metrics.jsonl", probe, recipe.training.routing_probe_steps),
            tensorboard_callback(run_dir / "tensorboard"),
            *(callbacks or []),
        ],
    )
    if trainer.is_world_process_zero():
        from rich.console import Console

        console = Console()
        console.print(mixture_table(mixture, tasks))
        console.print(
            f"{len(examples)} training examples ({sum(report.truncated.values())} with a shortened passage, "
            f"{sum(report.dropped.values())} dropped as too long); {recipe.adapter.display_name} adapter on "
            f"{len(adapter_model.adapted_modules)} modules, {adapter_model.parameter_counts()[0]:,d} trainable "
            "parameters"
        )
        if resume_from:
            console.print(f"resuming from {resume_from}")
    max_steps = trainer.args.max_steps
    if resume_from and max_steps > 0 and ckpt.checkpoint_step(Path(resume_from)) >= max_steps:
        # killed after its last checkpoint, before the adapter was saved: transformers' Trainer would take one step
        # past max_steps, so the finished weights are loaded instead
        trainer._load_from_checkpoint(resume_from)
        steps = ckpt.checkpoint_step(Path(resume_from))
    else:
        steps = trainer.train(resume_from_checkpoint=resume_from).global_step
    adapter_dir = run_dir / "adapter"
    if trainer.is_world_process_zero():
        adapter_model.save_pretrained(adapter_dir)
        tokenizer.save_pretrained(adapter_dir / "tokenizer")
        write_training_record(adapter_dir, recipe)
    trainer.accelerator.wait_for_everyone()
    return TrainResult(run_dir, adapter_dir, steps, logged_training(run_dir / "metrics.jsonl")[1])
