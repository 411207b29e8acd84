"""Tokenisation for training: answer-only labels, passage-side truncation, and the chat-template switch.

The prompt and the answer are tokenised separately and concatenated, so the label mask covers exactly the
prompt tokens whatever the tokenizer does at the boundary (the rendered prompt ends in "Answer:" and the
answer starts with a space, which keeps the split at a token boundary for BPE vocabularies).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from trex.data.errors import DataError
from trex.data.instance import RenderedPrompt, TaskInstance
from trex.data.templates import Format, render

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
"""Label value that torch's cross-entropy (and transformers' causal-LM loss) skips."""


@dataclass(frozen=True)
class TokenizedExample:
    """One training example as lists of ints (what a padding collator expects), plus where it came from."""

    task: str
    uid: str
    input_ids: list[int]
    attention_mask: list[int]
    labels: list[int]
    truncated: bool = False

    def features(self) -> dict[str, list[int]]:
        """The model inputs only, for `DataCollatorForSeq2Seq`-style padding collators."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "labels": self.labels}


@dataclass
class TokenizationReport:
    """How many instances per task were kept as is, kept with a shortened passage, or dropped."""

    kept: Counter[str] = field(default_factory=Counter)
    truncated: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)

    def log(self) -> None:
        """Log the totals, and per task where anything was truncated or dropped."""
        logger.info(
            "tokenised %d instances: %d with a shortened passage, %d dropped (too long even without passage)",
            sum(self.kept.values()), sum(self.truncated.values()), sum(self.dropped.values()),
        )  # fmt: skip
        for task in sorted(set(self.truncated) | set(self.dropped)):
            logger.info("  %s: %d truncated, %d dropped", task, self.truncated[task], self.dropped[task])


def uses_chat_template(tokenizer: Any, chat_template: bool) -> bool:
    """Whether prompts get the chat template: asked for, and the tokenizer has one."""
    return bool(chat_template and getattr(tokenizer, "chat_template", None))


def model_strings(rendered: RenderedPrompt, tokenizer: Any, chat_template: bool) -> tuple[str, str, list[str]]:
    """(prompt, target, option continuations) exactly as the model sees them.

    With the chat template, the prompt is the user turn followed by the assistant header, and the answers
    lose their leading space (the assistant turn starts on a fresh line). Evaluation must use this too,
    so that it scores what training taught.
    """
    if not uses_chat_template(tokenizer, chat_template):
        return rendered.prompt, rendered.target, list(rendered.options)
    messages = [{"role": "user", "content": rendered.prompt}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return prompt, rendered.target.lstrip(), [o.lstrip() for o in rendered.options]


def _encode(tokenizer: Any, text: str, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def _pieces(
    rendered: RenderedPrompt, tokenizer: Any, chat_template: bool, add_eos: bool
) -> tuple[list[int], list[int]]:
    prompt, target, _ = model_strings(rendered, tokenizer, chat_template)
    # The chat template writes its own special tokens; a plain prompt gets the tokenizer's default (e.g. BOS).
    prompt_ids = _encode(tokenizer, prompt, special=not uses_chat_template(tokenizer, chat_template))
    target_ids = _encode(tokenizer, target, special=False)
    if add_eos and tokenizer.eos_token_id is not None:
        target_ids.append(tokenizer.eos_token_id)
    return prompt_ids, target_ids


def _example(
    rendered: RenderedPrompt, prompt_ids: list[int], target_ids: list[int], truncated: bool
) -> TokenizedExample:
    ids = prompt_ids + target_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + target_ids
    return TokenizedExample(rendered.instance.task, rendered.instance.uid, ids, [1] * len(ids), labels, truncated)


def tokenize_for_training(
    rendered: RenderedPrompt, tokenizer: Any, max_length: int, chat_template: bool = True, add_eos: bool = True
) -> TokenizedExample | None:
    """Tokenise prompt + answer with the prompt masked out of the loss; None when it cannot fit.

    An over-long instance is re-rendered with its passage cut from the end, as little as needed; the
    question, options and answer are never cut. It is dropped (None) when it does not fit even with an
    empty passage, or has no passage to shorten.
    """
    if not rendered.target:
        instance = rendered.instance
        raise DataError(f"{instance.source or instance.uid}: no target to train on (field 'label' is missing or null)")
    prompt_ids, target_ids = _pieces(rendered, tokenizer, chat_template, add_eos)
    if len(prompt_ids) + len(target_ids) <= max_length:
        return _example(rendered, prompt_ids, target_ids, truncated=False)
    instance = rendered.instance
    if not instance.passage:
        return None
    passage_ids = _encode(tokenizer, instance.passage, special=False)
    keep = len(passage_ids) - (len(prompt_ids) + len(target_ids) - max_length)
    while keep > 0:
        shorter = dataclasses.replace(instance, passage=tokenizer.decode(passage_ids[:keep]).strip() or None)
        retry = render(shorter, rendered.fmt)  # type: ignore[arg-type]
        prompt_ids, target_ids = _pieces(retry, tokenizer, chat_template, add_eos)
        excess = len(prompt_ids) + len(target_ids) - max_length
        if excess <= 0:
            return _example(retry, prompt_ids, target_ids, truncated=True)
        keep -= excess
    return None


def tokenize_instances(
    instances: Iterable[TaskInstance],
    fmt: Format,
    tokenizer: Any,
    max_length: int,
    chat_template: bool = True,
    add_eos: bool = True,
) -> tuple[list[TokenizedExample], TokenizationReport]:
    """Render and tokenise many instances; the report counts truncated and dropped ones per task."""
    if max_length < 2:
        raise DataError(f"max_length must be at least 2 tokens, got {max_length}")
    examples, report = [], TokenizationReport()
    for instance in instances:
        example = tokenize_for_training(render(instance, fmt), tokenizer, max_length, chat_template, add_eos)
        if example is None:
            report.dropped[instance.task] += 1
            continue
        examples.append(example)
        report.kept[instance.task] += 1
        if example.truncated:
            report.truncated[instance.task] += 1
    report.log()
    return examples, report
