"""A thin loader for Hugging Face `datasets` names, for users who are online.

Rows are mapped by column name onto the user JSONL schema (`trex.data.user`), so the same validation and
error messages apply. Not exercised offline; the test suite mocks `datasets.load_dataset`.
"""

from __future__ import annotations

from trex.data.errors import DataError
from trex.data.instance import TaskInstance
from trex.data.user import instance_from_record


def load_hf_task(
    path: str,
    split: str,
    *,
    config: str | None = None,
    task: str | None = None,
    question: str = "question",
    options: str = "options",
    label: str = "label",
    passage: str | None = None,
    limit: int | None = None,
) -> list[TaskInstance]:
    """Load `datasets.load_dataset(path, config, split=split)` as TaskInstances.

    `question`, `options`, `label` and `passage` name the dataset's columns; `options` must be a column of
    string lists and `label` an integer index into it.
    """
    import datasets  # imported here: optional at run time and slow to import

    name = task or path.rsplit("/", 1)[-1]
    rows = datasets.load_dataset(path, config, split=split)
    instances = []
    for number, row in enumerate(rows, start=1):
        if limit is not None and number > limit:
            break
        missing = [c for c in (question, options, label, passage) if c is not None and c not in row]
        if missing:
            raise DataError(f"{path}[{split}] row {number}: missing column {missing[0]!r} (columns: {sorted(row)})")
        record = {"question": row[question], "options": list(row[options]), "label": row[label]}
        if passage is not None:
            record["passage"] = row[passage]
        instances.append(
            instance_from_record(record, name, f"{path}/{split}:{number}", f"{path}[{split}] row {number}")
        )
    if not instances:
        raise DataError(f"{path}[{split}] has no rows")
    return instances
