"""Evaluation requests: the exact strings a model is scored on, one per instance, shared by every scoring mode.

A request is built once from a `TaskInstance` and holds the model-side prompt (chat template applied when on),
the option continuations, the gold index and the intuition text. Both scoring modes, `--dump-requests` and the
lm-evaluation-harness bridge read the same requests, so all of them score exactly the same strings.

Prompts that do not fit the model's context are re-rendered with the passage cut from its end (as training
does); the question, options and answer are never cut, and a request that cannot fit even without a passage
is dropped and counted.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trex.data import TaskInstance, intuition_text, model_strings, render
from trex.data.templates import LETTER_FORMATS, LETTERS, BbhForm, Format, bbh_name, default_bbh_form
from trex.data.tokenize import uses_chat_template

AnswerType = Literal["letter", "multiple_choice", "binary", "free_text", "option"]
"""How a generated answer is read: a letter (letters format), a BBH "(X)" choice, a BBH answer word, BBH free
text, or an option's own text (cloze format, loglik only)."""


@dataclass(frozen=True)
class EvalRequest:
    """One instance as the model sees it.

    `options` are continuations of `prompt` (with a leading space unless the chat template is on); `gold`
    indexes them (None for free text, whose answer is `target`). `letters` are the answer letters of a
    multiple-choice request in generate scoring (empty when the answer is not a letter). `choices` are the option
    texts the prompt shows, one per option (the yes/no mapping of generate scoring reads them). `ignore_chars`
    are removed from a free-text generation before it is compared (the authors' word_sorting reading).
    """

    task: str
    uid: str
    index: int
    prompt: str
    options: list[str]
    gold: int | None
    target: str
    answer_type: AnswerType
    intuition_text: str
    letters: list[str] = field(default_factory=list)
    truncated: bool = False
    choices: list[str] = field(default_factory=list)
    ignore_chars: str = ""

    def to_json(self) -> str:
        """One line of `--dump-requests`: everything another harness needs to score the same request."""
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)


@dataclass(frozen=True)
class RequestSet:
    """The requests of one task, and the instances that could not be made into a request (too long)."""

    task: str
    requests: list[EvalRequest]
    dropped: list[str] = field(default_factory=list)

    @property
    def n_truncated(self) -> int:
        return sum(r.truncated for r in self.requests)


AUTHORS_IGNORED = {"word_sorting": ",."}
"""Characters the authors' evaluation removes from a generated BBH answer (chat.py:402-404)."""


def answer_type(instance: TaskInstance, fmt: Format, bbh_form: BbhForm | None = None) -> AnswerType:
    """BBH instances keep their own answer type (a binary one becomes a letter in the authors' form); the other
    tasks answer with a letter (letter formats) or an option's text (cloze)."""
    if "answer_type" in instance.meta:
        kind = instance.meta["answer_type"]
        form = default_bbh_form(fmt) if bbh_form is None else bbh_form
        return "letter" if kind == "binary" and form == "authors" else kind
    return "letter" if fmt in LETTER_FORMATS else "option"


def _ignored(instance: TaskInstance, fmt: Format, bbh_form: BbhForm | None) -> str:
    form = default_bbh_form(fmt) if bbh_form is None else bbh_form
    if "answer_type" not in instance.meta or form != "authors":
        return ""
    return AUTHORS_IGNORED.get(bbh_name(instance.task), "")


def _token_count(tokenizer: Any, text: str, special: bool) -> int:
    return len(tokenizer(text, add_special_tokens=special)["input_ids"])


def _make(
    instance: TaskInstance, index: int, fmt: Format, tokenizer: Any, chat: bool, truncated: bool,
    bbh_form: BbhForm | None = None,
) -> EvalRequest:  # fmt: skip
    rendered = render(instance, fmt, bbh_form)
    prompt, target, options = model_strings(rendered, tokenizer, chat)
    kind = answer_type(instance, fmt, bbh_form)
    letters = list(LETTERS[: len(options)]) if kind in ("letter", "multiple_choice") else []
    return EvalRequest(
        instance.task, instance.uid, index, prompt, options, rendered.gold, target, kind, intuition_text(instance),
        letters, truncated, list(rendered.choices), _ignored(instance, fmt, bbh_form),
    )  # fmt: skip


def _length(request: EvalRequest, tokenizer: Any, chat: bool, answer_tokens: int) -> int:
    """Prompt tokens plus the room the answer needs (the longest option, or the generation budget)."""
    answers = [*request.options, request.target]
    longest = max(_token_count(tokenizer, a, special=False) for a in answers) if any(answers) else 0
    return _token_count(tokenizer, request.prompt, special=not chat) + max(longest, answer_tokens)


def build_request(
    instance: TaskInstance,
    index: int,
    fmt: Format,
    tokenizer: Any,
    chat_template: bool,
    max_length: int,
    answer_tokens: int = 0,
    bbh_form: BbhForm | None = None,
) -> EvalRequest | None:
    """The request for one instance, its passage shortened (from the end) until it fits; None if it cannot fit.

    `answer_tokens` is the generation budget in generate scoring (0 in loglik scoring, where the longest option
    is the room needed). `bbh_form` chooses the form of BBH instances (default: by format, see templates).
    """
    chat = uses_chat_template(tokenizer, chat_template)
    request = _make(instance, index, fmt, tokenizer, chat, truncated=False, bbh_form=bbh_form)
    excess = _length(request, tokenizer, chat, answer_tokens) - max_length
    if excess <= 0:
        return request
    if not instance.passage:
        return None
    passage_ids = tokenizer(instance.passage, add_special_tokens=False)["input_ids"]
    keep = len(passage_ids) - excess
    while keep > 0:
        shorter = dataclasses.replace(instance, passage=tokenizer.decode(passage_ids[:keep]).strip() or None)
        request = _make(shorter, index, fmt, tokenizer, chat, truncated=True, bbh_form=bbh_form)
        # intuition stays that of the full instance: the bank embeds untruncated text in training too
        request = dataclasses.replace(request, intuition_text=intuition_text(instance))
        excess = _length(request, tokenizer, chat, answer_tokens) - max_length
        if excess <= 0:
            return request
        keep -= excess
    return None


def build_requests(
    task: str,
    instances: Sequence[TaskInstance],
    fmt: Format,
    tokenizer: Any,
    chat_template: bool,
    max_length: int,
    answer_tokens: int = 0,
    bbh_form: BbhForm | None = None,
) -> RequestSet:
    """Requests for every instance of one task, in file order; over-long instances are truncated or dropped."""
    requests, dropped = [], []
    for index, instance in enumerate(instances):
        request = build_request(instance, index, fmt, tokenizer, chat_template, max_length, answer_tokens, bbh_form)
        if request is None:
            dropped.append(instance.uid)
        else:
            requests.append(request)
    return RequestSet(task, requests, dropped)


def write_requests(path: Path, requests: Iterable[EvalRequest]) -> int:
    """Append requests to a JSONL file (`--dump-requests`); returns how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "a", encoding="utf-8") as handle:
        for request in requests:
            handle.write(request.to_json() + "\n")
            count += 1
    return count


def read_requests(path: Path) -> list[EvalRequest]:
    """Requests written by `write_requests`."""
    with open(path, encoding="utf-8") as handle:
        return [EvalRequest(**json.loads(line)) for line in handle if line.strip()]
