"""A comparison: one shared recipe, the methods with their adapter sections and seeds, and one evaluation protocol.

Every method trains on the same mixture (the recipe's data section and its data seed), with the same learning-rate
schedule and number of optimizer steps, and is evaluated on the same instances; only ``adapter`` and the training
seed differ between units. A method may override other recipe keys (``overrides``), which the report lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from trex.fields import check_value, checked_fields, suggest
from trex.train.recipe import Recipe, parse_override, recipe_from_dict

BASE = "base"
"""The untrained base model's unit, evaluated once."""


@dataclass
class EvaluationSection:
    tasks: list[str] = field(default_factory=lambda: ["suite"], metadata={"help": "Tasks, 'suite' or 'bbh'."})
    limit: int | None = field(default=200, metadata={"help": "First N instances of each task (None: all)."})
    max_length: int | None = field(
        default=None, metadata={"help": "Context length; longer prompts lose passage text (None: the model's)."}
    )
    scoring: Literal["loglik", "generate"] = field(default="loglik", metadata={"help": "Scoring mode."})
    format: Literal["letters", "cloze"] = field(default="cloze", metadata={"help": "Prompt format."})
    metric: Literal["acc", "acc_norm"] = field(default="acc_norm", metadata={"help": "Headline metric."})
    batch_size: int = field(default=8, metadata={"help": "Instances per forward."})
    data_root: str | None = field(default=None, metadata={"help": "Suite root (None: the recipe's data_root)."})


@dataclass
class MethodEntry:
    name: str
    adapter: dict[str, Any]
    seeds: list[int]
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class CompareConfig:
    output_dir: Path
    recipe: dict[str, Any]
    evaluation: EvaluationSection
    methods: dict[str, MethodEntry]
    source: str = "compare config"

    def base_recipe(self) -> Recipe:
        """The shared recipe alone (for the base model's evaluation: its model and prompt settings)."""
        return recipe_from_dict({**self.recipe, "output_dir": str(self.output_dir / BASE)}, source=self.source)

    def unit_recipe(self, method: str, seed: int) -> Recipe:
        """The full training recipe of one unit: the shared recipe, the method's adapter and overrides, the seed."""
        entry = self.methods[method]
        data = _deep_merge(self.recipe, entry.overrides)
        data = {
            **data,
            "adapter": entry.adapter,
            "output_dir": str(self.output_dir / method / f"seed-{seed}" / "train"),
        }
        data.setdefault("training", {})
        data["training"] = {**data["training"], "seed": seed}
        return recipe_from_dict(data, source=f"{self.source}: methods.{method}")


def _deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping, got {value!r}")
    return value


def load_compare_config(path: str | Path, overrides: list[str] | None = None) -> CompareConfig:
    """Read and check a comparison config; every unit's recipe is built once here, so errors come before any work."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no comparison config at {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a comparison config is a mapping with output_dir, recipe, evaluation, methods")
    for override in overrides or []:
        keys, value = parse_override(override)
        target = data
        for part in keys[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ValueError(f"override {override!r}: {part!r} is not a section")
        target[keys[-1]] = value
    known = ["output_dir", "recipe", "evaluation", "methods"]
    for key in data:
        if key not in known:
            raise ValueError(f"{path}: unknown key {key!r}{suggest(key, known)}")
    output_dir = Path(check_value(data.get("output_dir"), str, f"{path}: output_dir"))
    recipe = _mapping(data.get("recipe"), f"{path}: recipe")
    if "adapter" in recipe or "output_dir" in recipe:
        raise ValueError(f"{path}: recipe must not set adapter or output_dir (each method and unit sets its own)")
    evaluation = EvaluationSection(
        **checked_fields(EvaluationSection, _mapping(data.get("evaluation"), ""), f"{path}: evaluation")
    )
    methods_data = _mapping(data.get("methods"), f"{path}: methods")
    if not methods_data:
        raise ValueError(f"{path}: methods is empty; list at least one method")
    methods = {}
    for name, entry in methods_data.items():
        where = f"{path}: methods.{name}"
        if name == BASE:
            raise ValueError(f"{where}: 'base' is evaluated once by itself; do not list it")
        entry = _mapping(entry, where)
        unknown = [k for k in entry if k not in ("adapter", "seeds", "overrides")]
        if unknown:
            raise ValueError(
                f"{where}: unknown key {unknown[0]!r}{suggest(unknown[0], ['adapter', 'seeds', 'overrides'])}"
            )
        seeds = check_value(entry.get("seeds", [0]), list[int], f"{where}.seeds")
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"{where}.seeds must be a non-empty list of distinct integers, got {seeds!r}")
        methods[name] = MethodEntry(name, _mapping(entry.get("adapter"), f"{where}.adapter"), seeds,
                                    _mapping(entry.get("overrides"), f"{where}.overrides"))  # fmt: skip
    config = CompareConfig(output_dir, recipe, evaluation, methods, source=str(path))
    for name, entry in methods.items():
        for seed in entry.seeds:
            config.unit_recipe(name, seed)
    return config
