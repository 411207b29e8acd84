"""The common record every task is read into, and the rendered prompt built from it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TaskInstance:
    """One example of one task, independent of the file it came from.

    Multiple-choice instances have `options` and a `label` (index into `options`, None when unknown).
    Free-text instances (Alpaca, some BBH tasks) have no options and carry the answer in `target_text`.
    `passage` is kept apart from `question` because it is the part that may be shortened when a prompt
    is too long (see `trex.data.tokenize`).
    """

    task: str
    uid: str
    question: str
    options: list[str]
    label: int | None
    passage: str | None = None
    target_text: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    source: str | None = field(default=None, compare=False, repr=False)
    """Where the instance was read ("file:line"), for messages; not part of the instance's content."""

    @property
    def is_free_text(self) -> bool:
        """True when the answer is free text rather than a choice among options."""
        return not self.options

    def content_hash(self) -> str:
        """Hash of what a model sees (passage, question, options), used to detect train/eval overlap.

        The uid, label and metadata are left out on purpose: the same text under another id is still a leak.
        Whitespace and case are normalised so trivially reformatted copies also collide.
        """
        parts = [self.passage or "", self.question, *self.options]
        text = "\x1f".join(" ".join(p.lower().split()) for p in parts)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def to_json(self) -> str:
        """One line of the registry's common JSONL format (the format of the shipped subset)."""
        data = asdict(self)
        del data["source"]
        return json.dumps(data, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt ready to tokenise or score.

    `prompt` ends right before the answer; `target` is the gold continuation (what training learns);
    `options` are the continuations to score for log-likelihood (empty for free text); `gold` indexes
    `options`. `instance` and `fmt` are kept so the prompt can be re-rendered with a shorter passage.
    `choices` are the option texts as the prompt shows them, one per continuation, in the same order (the
    `official` format shows BoolQ's as ["False", "True"]); generate scoring maps a yes/no answer with them.
    """

    prompt: str
    target: str
    options: list[str]
    gold: int | None
    fmt: str
    instance: TaskInstance = field(repr=False)
    choices: list[str] = field(default_factory=list)
