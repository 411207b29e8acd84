"""The task registry: one declarative entry per task, saying which staged files make each split.

Copies chosen (the suite often stages several; see ../shared/data/MANIFEST.md):

- original files where they exist (SuperGLUE jsonl, ANLI, CommonsenseQA, OpenBookQA TSV), because they are
  verbatim upstream bytes;
- nutcracker-db conversions where no original is staged (MMLU, SIQA, WinoGrande, PIQA train, HellaSwag train,
  ARC test). PIQA evaluation also uses the nutcracker copy, so train and eval share one schema and reader;
- LLM-Adapters copies only for what exists nowhere else (ARC train, BoolQ train without passages).

Splits the paper does not evaluate are carved into training data where the staged suite has no train split:
ANLI trains on R2+R3 dev and test and evaluates on R1 dev; SIQA trains on the labelled v1.4 test set and
evaluates on dev; MMLU trains on its 285 dev exemplars. PIQA, WinoGrande and HellaSwag keep their 100 staged
train examples.

Evaluation splits come in two choices (`eval_split` of `load_task`): ``full`` (the `eval` sources above, trex's
default) and ``official`` (the split the T-REX authors' code evaluates, RoyZry98/T-REX-Pytorch chat.py:279-327).
They differ for two tasks: OpenBookQA (authors: validation, staged as openbookqa/dev.tsv) and MMLU (authors:
cais/mmlu validation, 1,531 instances, which is not staged, so `official` fails for MMLU). Every other task is
evaluated on the same split either way.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from trex.data import readers
from trex.data.errors import DataError
from trex.data.instance import TaskInstance
from trex.data.user import load_jsonl_instances

logger = logging.getLogger(__name__)

Split = Literal["train", "eval"]
EvalSplit = Literal["full", "official"]
EVAL_SPLITS: tuple[EvalSplit, ...] = ("full", "official")
Kind = Literal["all", "eval", "train", "bbh"]

SHIPPED_DATA = Path(__file__).resolve().parents[1] / "assets" / "data"
"""The small subset of the suite that ships inside the package (made by scripts/make_data_subset.py)."""
DATA_ENV_VAR = "TREX_DATA"
INSTANCES_INDEX = "index.json"
"""A data root holding this file is in the common instance format: `<root>/<task>/<split>.jsonl`."""
OFFICIAL_EVAL_FILE = "eval_official"
"""File stem of a task's `official` evaluation split in the common instance format, where it differs from `eval`."""


@dataclass(frozen=True)
class Source:
    """One staged file (relative to the data root) and the reader for its schema."""

    path: str
    reader: readers.Reader


@dataclass(frozen=True)
class TaskSpec:
    """A task of the suite: where its splits come from and whether the paper evaluates it."""

    name: str
    train: tuple[Source, ...]
    eval: tuple[Source, ...]
    evaluated: bool = False
    bbh: bool = False
    note: str = ""
    exclude_train: frozenset[str] = frozenset()
    """uids of staged train records whose text is also an evaluation instance (upstream duplicates); dropped."""
    official_eval: tuple[Source, ...] | None = None
    """The authors' evaluation split where it is not `eval` (None: they evaluate on `eval` too)."""
    official_missing: str = ""
    """What to say when the authors' evaluation split is not in the data root (it is not staged everywhere)."""
    sources: dict[str, tuple[Source, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", {"train": self.train, "eval": self.eval})


def _task(
    name: str, reader: readers.Reader, train: tuple[str | Source, ...] = (), eval: tuple[str | Source, ...] = (), **kw
) -> TaskSpec:
    """A TaskSpec whose files are all read by `reader`, except those given as an explicit Source."""

    def sources(paths: tuple[str | Source, ...]) -> tuple[Source, ...]:
        return tuple(p if isinstance(p, Source) else Source(p, reader) for p in paths)

    return TaskSpec(name, sources(train), sources(eval), **kw)


_R = readers
_EVALUATED = (
    _task(
        "multirc", _R.superglue_multirc, ("superglue/multirc/train.jsonl",), ("superglue/multirc/val.jsonl",),
        evaluated=True, note="one true/false instance per (question, candidate answer)",
    ),
    _task(
        "mmlu", _R.nutcracker, ("mmlu/dev.jsonl",), ("mmlu/test.jsonl",), evaluated=True,
        note="train = the 285 five-shot dev exemplars",
        official_eval=(Source("mmlu/validation.jsonl", _R.nutcracker),),
        official_missing="the authors evaluate MMLU on cais/mmlu 'validation' (1,531 instances), which is not "
        "staged in ../shared/data (only dev and test are) nor shipped; when online, stage it with "
        "`trex data stage-mmlu-validation --data-root DIR`, or use --split full (test, 14,042)",
        exclude_train=frozenset(f"mmlu/dev.jsonl:{n}" for n in (21, 25, 46, 47, 50)),
    ),
    _task(
        "boolq", _R.superglue_boolq,
        ("superglue/boolq/train_fewglue32.jsonl", "superglue/boolq/train_fewglue_dev32.jsonl",
         Source("llm_adapters/boolq/train.json", _R.llm_adapters_boolq)),
        ("superglue/boolq/val.jsonl",), evaluated=True,
        note="train = 64 FewGLUE examples with passages + 9427 question-only (train with passages not staged)",
    ),
    _task("wic", _R.superglue_wic, ("superglue/wic/train.jsonl",), ("superglue/wic/val.jsonl",), evaluated=True),
    _task(
        "winogrande", _R.nutcracker, ("winogrande/nutcracker_dev.jsonl",), ("winogrande/nutcracker_test.jsonl",),
        evaluated=True, note="train = first 100 of WinoGrande train; eval = 1.1 dev",
    ),
    _task("wsc", _R.superglue_wsc, ("superglue/wsc/train.jsonl",), ("superglue/wsc/val.jsonl",), evaluated=True),
    _task(
        "anli", _R.anli, ("anli/R2/dev.jsonl", "anli/R2/test.jsonl", "anli/R3/dev.jsonl", "anli/R3/test.jsonl"),
        ("anli/R1/dev.jsonl",), evaluated=True,
        note="train carved from R2/R3 dev+test (train files not staged); eval = R1 dev as in the paper",
    ),
    _task(
        "piqa", _R.nutcracker, ("piqa/nutcracker_dev.jsonl",), ("piqa/nutcracker_test.jsonl",), evaluated=True,
        note="train = first 100 of PIQA train",
    ),
    _task(
        "siqa", _R.nutcracker, ("siqa/nutcracker_test.jsonl",), ("siqa/nutcracker_dev.jsonl",), evaluated=True,
        note="train carved from the labelled v1.4 test set; eval = dev",
    ),
    _task("rte", _R.superglue_rte, ("superglue/rte/train.jsonl",), ("superglue/rte/val.jsonl",), evaluated=True),
    _task("copa", _R.superglue_copa, ("superglue/copa/train.jsonl",), ("superglue/copa/val.jsonl",), evaluated=True),
    _task(
        "openbookqa", _R.obqa_tsv, ("openbookqa/train.tsv",), ("openbookqa/test.tsv",), evaluated=True,
        official_eval=(Source("openbookqa/dev.tsv", _R.obqa_tsv),), note="official eval = validation (dev.tsv)",
    ),
    _task(
        "commonsenseqa", _R.csqa, ("commonsenseqa/train_rand_split.jsonl",), ("commonsenseqa/dev_rand_split.jsonl",),
        evaluated=True, note="eval = dev (test labels are hidden)",
    ),
    _task(
        "hellaswag", _R.nutcracker, ("hellaswag/nutcracker_dev.jsonl",),
        (Source("hellaswag/val.jsonl", _R.hellaswag),), evaluated=True, note="train = first 100 of HellaSwag train",
    ),
)  # fmt: skip
_TRAIN_ONLY = (
    _task(
        "arc_easy", _R.llm_adapters_choice, ("llm_adapters/ARC-Easy/train.json",),
        (Source("arc_easy/nutcracker_test.jsonl", _R.nutcracker),),
        note="train only in the paper; test kept for checks",
        exclude_train=frozenset({"llm_adapters/ARC-Easy/train.json:1088", "llm_adapters/ARC-Easy/train.json:2247"}),
    ),
    _task(
        "arc_challenge", _R.llm_adapters_choice, ("llm_adapters/ARC-Challenge/train.json",),
        (Source("arc_challenge/nutcracker_test.jsonl", _R.nutcracker),),
        note="train only in the paper; test kept for checks",
    ),
    _task(
        "record", _R.superglue_record,
        ("superglue/record/train_fewglue32.jsonl", "superglue/record/train_fewglue_dev32.jsonl"),
        note="64 FewGLUE passages (full ReCoRD not staged)",
    ),
    _task("alpaca", _R.alpaca, ("alpaca/alpaca_data_1k.json",), note="free text; 1000-record sample"),
)  # fmt: skip
BBH_TASKS = (
    "boolean_expressions", "causal_judgement", "date_understanding", "disambiguation_qa", "dyck_languages",
    "formal_fallacies", "geometric_shapes", "hyperbaton", "logical_deduction_five_objects",
    "logical_deduction_seven_objects", "logical_deduction_three_objects", "movie_recommendation",
    "multistep_arithmetic_two", "navigate", "object_counting", "penguins_in_a_table",
    "reasoning_about_colored_objects", "ruin_names", "salient_translation_error_detection", "snarks",
    "sports_understanding", "temporal_sequences", "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects", "web_of_lies",
    "word_sorting",
)  # fmt: skip
_BBH = tuple(
    _task(f"bbh_{name}", _R.bbh, eval=(f"bbh/{name}.json",), bbh=True, note="zero-shot OOD eval") for name in BBH_TASKS
)

REGISTRY: dict[str, TaskSpec] = {spec.name: spec for spec in (*_EVALUATED, *_TRAIN_ONLY, *_BBH)}
"""All tasks by name. The 14 paper-evaluated tasks come first, in the column order of the paper's Table 1."""


def list_tasks(kind: Kind = "all") -> list[str]:
    """Task names: "eval" = the paper's 14, "train" = tasks with a train split, "bbh" = the 27 BBH tasks."""
    if kind == "all":
        return list(REGISTRY)
    if kind == "eval":
        return [n for n, s in REGISTRY.items() if s.evaluated]
    if kind == "train":
        return [n for n, s in REGISTRY.items() if s.train]
    if kind == "bbh":
        return [n for n, s in REGISTRY.items() if s.bbh]
    raise DataError(f"unknown task kind {kind!r}; expected one of all, eval, train, bbh")


def get_task(name: str) -> TaskSpec:
    """The registry entry for `name`, or a DataError suggesting the closest known names."""
    if name in REGISTRY:
        return REGISTRY[name]
    close = difflib.get_close_matches(name, REGISTRY, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else f"; known: {', '.join(REGISTRY)}"
    raise DataError(f"unknown task {name!r}{hint}")


def resolve_data_root(data_root: Path | str | None = None) -> Path:
    """Where to read the suite from: the explicit argument, else $TREX_DATA, else the shipped subset.

    The root is either the staged suite layout (../shared/data, read with the raw readers) or a folder in the
    common instance format (it holds `index.json`; the shipped subset is one).
    """
    if data_root is not None:
        root, origin = Path(data_root), "argument"
    elif os.environ.get(DATA_ENV_VAR):
        root, origin = Path(os.environ[DATA_ENV_VAR]), f"${DATA_ENV_VAR}"
    else:
        root, origin = SHIPPED_DATA, "shipped subset"
    if not root.is_dir():
        raise DataError(f"data root from {origin} is not a directory: {root}")
    return root


def is_instance_root(root: Path) -> bool:
    """True for a data root in the common instance format (for example the shipped subset)."""
    return (root / INSTANCES_INDEX).is_file()


def official_eval_differs(name: str) -> bool:
    """True when the authors evaluate `name` on another split than trex's `full` one."""
    return get_task(name).official_eval is not None


def _eval_sources(spec: TaskSpec, split: Split, eval_split: EvalSplit) -> tuple[Source, ...]:
    if split == "eval" and eval_split == "official" and spec.official_eval is not None:
        return spec.official_eval
    return spec.sources[split]


def _missing_official(spec: TaskSpec, where: Path) -> DataError:
    reason = spec.official_missing or "it is not in this data root"
    return DataError(f"task {spec.name!r} has no official evaluation split under {where}: {reason}")


def _iter_raw(spec: TaskSpec, split: Split, root: Path, eval_split: EvalSplit = "full") -> Iterator[TaskInstance]:
    excluded = spec.exclude_train if split == "train" else frozenset()
    for source in _eval_sources(spec, split, eval_split):
        for instance in source.reader(root / source.path, source.path, spec.name):
            if instance.uid not in excluded:
                yield instance


def load_task(
    name: str,
    split: Split,
    data_root: Path | str | None = None,
    limit: int | None = None,
    eval_split: EvalSplit = "full",
) -> list[TaskInstance]:
    """Load one split of one task as TaskInstances, in file order (the first `limit` when given).

    `eval_split` chooses the evaluation split: "full" (trex's, the larger test split where there is one) or
    "official" (the one the T-REX authors' code evaluates); it does not change "train". A task whose official
    split is not available offline (MMLU) raises DataError rather than falling back to another split.

    Raises DataError for an unknown task or split, a task without that split, missing or malformed files,
    and an empty result, so a run stops here rather than part-way through training.
    """
    spec = get_task(name)
    if split not in ("train", "eval"):
        raise DataError(f"unknown split {split!r}; expected 'train' or 'eval'")
    if eval_split not in EVAL_SPLITS:
        raise DataError(f"unknown evaluation split {eval_split!r}; expected one of {', '.join(EVAL_SPLITS)}")
    if not spec.sources[split]:
        raise DataError(f"task {name!r} has no {split} split (available: {[k for k, v in spec.sources.items() if v]})")
    if limit is not None and limit < 1:
        raise DataError(f"limit must be a positive number of instances, got {limit}")
    root = resolve_data_root(data_root)
    official = split == "eval" and eval_split == "official" and spec.official_eval is not None
    if is_instance_root(root):
        path = root / name / f"{OFFICIAL_EVAL_FILE if official else split}.jsonl"
        if official and not path.is_file():
            raise _missing_official(spec, root)
        instances = load_jsonl_instances(path, name)
    else:
        if official and not all((root / s.path).is_file() for s in spec.official_eval or ()):
            raise _missing_official(spec, root)
        instances = []
        for instance in _iter_raw(spec, split, root, eval_split):
            instances.append(instance)
            if limit is not None and len(instances) >= limit:
                break
    instances = instances[:limit]
    if not instances:
        raise DataError(f"task {name!r} split {split!r} is empty under {root}")
    logger.debug("loaded %d %s instances of %s from %s", len(instances), split, name, root)
    return instances
