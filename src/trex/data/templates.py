"""Prompt formats: every template of the suite is in this module.

Two formats, chosen per run:

- ``letters`` (the T-REX authors' form): the question, the options as "A. ...", then "Answer:"; the target
  and the scored continuations are the letters (" A", " B", ...). Yes/no and true/false tasks are two
  lettered options like any other.
- ``cloze`` (lm-evaluation-harness' form for ARC, HellaSwag, PIQA, ...): the question then "Answer:"; the
  target and the continuations are the options' own text.

Free-text instances (Alpaca, BBH free-text tasks) and BBH instances, whose options are already written in
the question, render the same in both formats: the question then "Answer:", continuation = the target text.

Prompts end right after "Answer:" and continuations start with a space, so the boundary between prompt and
answer is a token boundary (lm-eval moves trailing context whitespace into the continuation the same way).
The chat template, when used, is applied at tokenisation (`trex.data.tokenize`), never here.
"""

from __future__ import annotations

import string
from typing import Literal

from trex.data.errors import DataError
from trex.data.instance import RenderedPrompt, TaskInstance

Format = Literal["letters", "cloze"]
FORMATS: tuple[Format, ...] = ("letters", "cloze")

LETTERS = string.ascii_uppercase
PASSAGE_BLOCK = "{passage}\n\n"
OPTION_LINE = "{letter}. {option}"
LETTERS_TEMPLATE = "{passage_block}{question}\n{option_lines}\nAnswer:"
CLOZE_TEMPLATE = "{passage_block}{question}\nAnswer:"
CONTINUATION = " {answer}"


def _passage_block(instance: TaskInstance) -> str:
    return PASSAGE_BLOCK.format(passage=instance.passage.strip()) if instance.passage else ""


def _continuation(answer: str) -> str:
    return CONTINUATION.format(answer=answer.strip())


def render(instance: TaskInstance, fmt: Format) -> RenderedPrompt:
    """Render an instance in `fmt`; the result carries the prompt, gold target and option continuations."""
    if fmt not in FORMATS:
        raise DataError(f"unknown prompt format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if instance.is_free_text or instance.meta.get("options_in_question"):
        prompt = CLOZE_TEMPLATE.format(passage_block=_passage_block(instance), question=instance.question.strip())
        options = [_continuation(o) for o in instance.options]
        target = _continuation(instance.target_text) if instance.target_text is not None else ""
        if instance.label is not None:
            target = options[instance.label]
        return RenderedPrompt(prompt, target, options, instance.label, fmt, instance)
    if fmt == "letters":
        if len(instance.options) > len(LETTERS):
            raise DataError(f"{instance.uid}: {len(instance.options)} options do not fit the letters A-Z")
        option_lines = "\n".join(
            OPTION_LINE.format(letter=letter, option=option.strip())
            for letter, option in zip(LETTERS, instance.options, strict=False)
        )
        prompt = LETTERS_TEMPLATE.format(
            passage_block=_passage_block(instance), question=instance.question.strip(), option_lines=option_lines
        )
        options = [_continuation(letter) for letter in LETTERS[: len(instance.options)]]
    else:
        prompt = CLOZE_TEMPLATE.format(passage_block=_passage_block(instance), question=instance.question.strip())
        options = [_continuation(o) for o in instance.options]
    target = options[instance.label] if instance.label is not None else ""
    return RenderedPrompt(prompt, target, options, instance.label, fmt, instance)


def intuition_text(instance: TaskInstance) -> str:
    """THE text of an instance that is embedded for intuition, in training and in evaluation alike.

    It is the letters-format prompt without the answer (passage, question, lettered options, "Answer:"),
    untruncated and without any chat template, so the intuition of an instance does not depend on the
    prompt format or the model a run uses. Changing this changes every intuition bank: do it here only.
    """
    return render(instance, "letters").prompt
