"""Training recipes: a YAML file plus ``key=value`` overrides, checked field by field before anything runs.

A recipe has five sections (``model``, ``adapter``, ``data``, ``intuition``, ``training``) and an
``output_dir``. ``adapter.method`` names the method (``trex`` by default; see ``trex.methods``) and the other
``adapter`` keys are the fields of that method's config. Unknown keys are errors that suggest the
closest known key, because a misspelt key silently ignored means a run with settings nobody asked for.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from trex.config import TRexConfig
from trex.fields import check_value, checked_fields, suggest
from trex.intuition.kmeans import DEFAULT_N_ITER
from trex.methods import METHODS, get_method
from trex.methods.config import AdapterConfig


def _at_least(section: Any, minimum: float, *names: str, exclusive: bool = False) -> None:
    """Range checks of a section's numeric keys (None passes: it means 'no cap'), before any work starts."""
    for name in names:
        value = getattr(section, name)
        if value is None:
            continue
        if value < minimum or (exclusive and value == minimum):
            relation = ">" if exclusive else ">="
            raise ValueError(f"{name} must be {relation} {minimum}, got {value!r}")


@dataclass
class ModelSection:
    name_or_path: str = field(
        default="smollm2-135m",
        metadata={"help": "'smollm2-135m' (offline default), 'tiny-random-llama' (tests), a local folder or hub id."},
    )
    dtype: Literal["float32", "bfloat16", "float16"] = field(
        default="float32", metadata={"help": "Dtype of the frozen base weights."}
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Only if you trust the model's code."})


@dataclass
class DataSection:
    tasks: list[str] = field(
        default_factory=lambda: ["suite"],
        metadata={"help": "Task names from the registry, 'suite' for every training task, or paths to JSONL files."},
    )
    data_root: str | None = field(
        default=None, metadata={"help": "The shared suite folder; None: $TREX_DATA, else the shipped subset."}
    )
    format: Literal["letters", "cloze", "official"] = field(default="letters", metadata={"help": "Prompt format."})
    max_per_task: int | None = field(default=None, metadata={"help": "Cap on instances per task in the mixture."})
    sampling: Literal["proportional", "temperature"] = field(default="proportional", metadata={"help": "Mixing."})
    temperature: float = field(default=1.0, metadata={"help": "Temperature for temperature sampling."})
    max_length: int = field(default=512, metadata={"help": "Tokens per instance; passages are shortened to fit."})
    chat_template: bool = field(default=True, metadata={"help": "Apply the tokenizer's chat template if it has one."})
    chat_format: Literal["llama2-authors"] | None = field(
        default=None,
        metadata={"help": "Replace the tokenizer's chat template by a named one (the authors' Llama-2 format)."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the mixture sampling."})

    def __post_init__(self) -> None:
        _at_least(self, 1, "max_per_task", "max_length")
        _at_least(self, 0, "temperature", exclusive=True)


@dataclass
class IntuitionSection:
    """The intuition bank: every option of ``trex intuition fit`` has its key here."""

    embedder: str | None = field(
        default=None,
        metadata={"help": "A sentence-transformers folder; None: the packaged all-MiniLM-L6-v2."},
    )
    prefix: str | None = field(
        default=None,
        metadata={"help": "Text prepended before embedding; None: 'clustering: ' for nomic-embed ('' = none)."},
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run the embedder folder's own code (nomic-embed needs it); only yours."}
    )
    max_seq_length: int | None = field(
        default=None, metadata={"help": "Truncate embedder inputs to this many tokens (None: the model's own)."}
    )
    batch_size: int = field(default=64, metadata={"help": "Texts per embedding batch."})
    max_per_task: int | None = field(
        default=None, metadata={"help": "Cluster a seeded sample of at most this many prompts per task (v1)."}
    )
    max_points: int | None = field(default=None, metadata={"help": "Fit k-means on a seeded subset of this size."})
    n_iter: int = field(default=DEFAULT_N_ITER, metadata={"help": "Maximum k-means iterations."})
    bank: str | None = field(default=None, metadata={"help": "Use this fitted bank folder instead of fitting one."})
    seed: int = field(default=0, metadata={"help": "k-means seed."})
    backend: Literal["auto", "faiss", "torch", "sklearn"] = field(
        default="auto", metadata={"help": "k-means backend."}
    )
    scoring: Literal["cosine", "dot"] = field(
        default="cosine", metadata={"help": "'dot' is the reference code's raw dot product."}
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Embedding cache folder; None: $TREX_CACHE/embeddings."}
    )

    def __post_init__(self) -> None:
        _at_least(self, 1, "max_seq_length", "batch_size", "max_per_task", "max_points", "n_iter")


@dataclass
class TrainingSection:
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW learning rate (paper: 5e-5)."})
    num_train_epochs: float = field(default=3.0, metadata={"help": "Epochs over the mixture (paper: 3)."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimizer steps (-1: epochs)."})
    global_batch_size: int = field(default=64, metadata={"help": "Instances per optimizer step (paper: 64)."})
    per_device_batch_size: int = field(default=4, metadata={"help": "Micro-batch; accumulation makes up the rest."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "transformers scheduler name."})
    warmup_steps: float = field(
        default=0.03, metadata={"help": "Linear warm-up: a number of steps (>= 1) or a share of all steps (< 1)."}
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping."})
    seed: int = field(default=42, metadata={"help": "Training seed (init, data order)."})
    bf16: bool = field(default=False, metadata={"help": "bf16 mixed precision (GPU)."})
    fp16: bool = field(default=False, metadata={"help": "fp16 mixed precision (GPU)."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Recompute blocks in backward."})
    group_by_length: bool = field(
        default=True, metadata={"help": "Batch instances of similar length together: less padding, faster steps."}
    )
    logging_steps: int = field(default=1, metadata={"help": "Log every N optimizer steps."})
    save_steps: int = field(default=50, metadata={"help": "Checkpoint every N optimizer steps."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Complete checkpoints kept."})
    routing_probe_size: int = field(
        default=8, metadata={"help": "Instances of the fixed probe batch used to log routing entropy per layer."}
    )
    routing_probe_steps: int = field(
        default=10, metadata={"help": "Log routing statistics every N optimizer steps (and at step 1)."}
    )

    def __post_init__(self) -> None:
        _at_least(self, 0, "learning_rate", "num_train_epochs", exclusive=True)
        _at_least(self, 0, "warmup_steps", "weight_decay", "max_grad_norm")
        _at_least(self, 1, "global_batch_size", "per_device_batch_size", "logging_steps", "save_steps")
        _at_least(self, 1, "save_total_limit", "routing_probe_size", "routing_probe_steps")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"max_steps must be >= 1, or -1 for num_train_epochs, got {self.max_steps!r}")


SECTIONS = {"model": ModelSection, "data": DataSection, "intuition": IntuitionSection, "training": TrainingSection}


@dataclass
class Recipe:
    output_dir: str = "runs/trex"
    model: ModelSection = field(default_factory=ModelSection)
    adapter: AdapterConfig = field(default_factory=TRexConfig)
    data: DataSection = field(default_factory=DataSection)
    intuition: IntuitionSection = field(default_factory=IntuitionSection)
    training: TrainingSection = field(default_factory=TrainingSection)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as YAML-ready data; the adapter section names its method first."""
        data = dataclasses.asdict(self)
        data["adapter"] = {"method": self.adapter.method, **data["adapter"]}
        return data


def _build_section(cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of keys, got {data!r}")
    values = checked_fields(cls, data, where)
    try:
        return cls(**values)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from err


def _build_adapter(data: Any, where: str) -> AdapterConfig:
    """The adapter section: ``method`` (default ``trex``) picks the config class whose fields the rest must be."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of keys, got {data!r}")
    data = dict(data)
    method = check_value(data.pop("method", "trex"), str, f"{where}.method")
    try:
        config_class = get_method(method).config_class
    except ValueError as err:
        raise ValueError(f"{where}.method: {err}") from None
    foreign = sorted(set(data) - {f.name for f in dataclasses.fields(config_class)})
    if foreign:  # typically a recipe written for one method with adapter.method=... switched to another
        owners = [n for n in METHODS if n != method and not set(foreign) - _field_names(n)]
        if owners:
            raise ValueError(
                f"{where}: {', '.join(foreign)} {'is' if len(foreign) == 1 else 'are'} {owners[0]}'s, not "
                f"{method}'s (adapter.method is {method!r}); remove {'it' if len(foreign) == 1 else 'them'} from the "
                f"adapter section, e.g. with a recipe for {method} (trex configs list)"
            )
    return _build_section(config_class, data, where)


def _field_names(method: str) -> set[str]:
    return {f.name for f in dataclasses.fields(get_method(method).config_class)}


def parse_override(text: str) -> tuple[list[str], Any]:
    """``training.learning_rate=1e-4`` -> (['training', 'learning_rate'], 0.0001), the value read as YAML."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like section.key=value")
    key, _, raw = text.partition("=")
    return key.strip().split("."), yaml.safe_load(raw)


def recipe_from_dict(data: dict[str, Any], source: str = "recipe", overrides: list[str] | None = None) -> Recipe:
    data = dict(data or {})
    for override in overrides or []:
        path, value = parse_override(override)
        target = data
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ValueError(f"override {override!r}: {part!r} is not a section")
        target[path[-1]] = value
    known = ["output_dir", "adapter", *SECTIONS]
    for key in data:
        if key not in known:
            raise ValueError(f"{source}: unknown key {key!r}{suggest(key, known)}")
    sections = {name: _build_section(cls, data.get(name), f"{source}: {name}") for name, cls in SECTIONS.items()}
    adapter_config = _build_adapter(data.get("adapter"), f"{source}: adapter")
    output_dir = check_value(data.get("output_dir", Recipe.output_dir), str, f"{source}: output_dir")
    return Recipe(output_dir=output_dir, adapter=adapter_config, **sections)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no recipe at {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from err
    if data is None:
        raise ValueError(f"{path} is empty; a recipe names at least its model, data and output_dir (see configs/)")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a recipe is a mapping of sections, got {type(data).__name__}")
    return recipe_from_dict(data or {}, source=str(path), overrides=overrides)
