"""Instances from a user's own JSONL file, which is also the format of the shipped subset.

Schema, one JSON object per line (see docs/data.md):

- multiple choice: ``{"question": str, "options": [str, ...], "label": int, "passage": str (optional)}``
- free text: ``{"prompt": str, "target": str}`` (or ``question`` / ``target_text``)
- optional on both: ``"uid": str`` (default: file name and line), ``"meta": {...}``

Lines written by `TaskInstance.to_json` follow this schema, so the shipped subset is read by the same code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trex.data.errors import DataError
from trex.data.instance import TaskInstance
from trex.data.io import read_jsonl
from trex.data.readers import make_instance


def _typed(record: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = record[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise DataError(f"{where}: field {name!r} has the wrong type ({type(value).__name__})")
    return value


def instance_from_record(record: dict[str, Any], task: str, default_uid: str, where: str) -> TaskInstance:
    """Validate one user/common-format record and turn it into a TaskInstance."""
    uid = str(record.get("uid") or default_uid)
    meta = record.get("meta") or {}
    passage = record.get("passage")
    free_text = (
        not record.get("options")
        and record.get("label") is None
        and ("prompt" in record or "target" in record or record.get("target_text") is not None)
    )  # a line with a label is multiple choice: a missing `options` is reported as such
    if free_text:
        question_key = "prompt" if "prompt" in record else "question"
        target_key = "target_text" if "target_text" in record and "target" not in record else "target"
        for name in (question_key, target_key):
            if record.get(name) is None:
                raise DataError(f"{where}: missing field {name!r} (free-text lines need 'prompt' and 'target')")
        question = _typed(record, question_key, str, where)
        target = _typed(record, target_key, str, where)
        return make_instance(where, task, uid, question, [], None, passage=passage, target_text=target, meta=meta)
    for name in ("question", "options", "label"):
        if name not in record or (name != "label" and record[name] is None):
            raise DataError(f"{where}: missing field {name!r} (multiple-choice lines need question, options, label)")
    options = _typed(record, "options", list, where)
    if len(options) < 2 or not all(isinstance(o, str) for o in options):
        raise DataError(f"{where}: field 'options' must be a list of at least two strings")
    label = None if record["label"] is None else _typed(record, "label", int, where)
    return make_instance(
        where, task, uid, _typed(record, "question", str, where), options, label, passage=passage,
        target_text=record.get("target_text"), meta=meta,
    )  # fmt: skip


def load_jsonl_instances(path: Path, task: str) -> list[TaskInstance]:
    """Read a user (or shipped-subset) JSONL file; errors name the file, line and field."""
    return [
        instance_from_record(record, task, f"{path.name}:{line}", f"{path}:{line}")
        for line, record in read_jsonl(Path(path))
    ]


def load_jsonl_task(path: Path | str, task: str | None = None, limit: int | None = None) -> list[TaskInstance]:
    """A user's JSONL file as one task (named after the file unless `task` is given); empty files are errors."""
    path = Path(path)
    instances = load_jsonl_instances(path, task or path.stem)[:limit]
    if not instances:
        raise DataError(f"{path}: no instances")
    return instances
