"""Prompt formats: every template of the suite is in this module.

Three formats, chosen per run:

- ``letters`` (the T-REX authors' layout with trex's wording): the question, the options as "A. ...", then
  "Answer:"; the target and the scored continuations are the letters (" A", " B", ...). Yes/no and true/false
  tasks are two lettered options like any other, in trex's order (yes before no).
- ``official`` (the authors' per-task templates): the prompt strings, option order and option labels of the
  T-REX authors' code (RoyZry98/T-REX-Pytorch, prompt_template.py; the `raw=True` branch that chat.py evaluates),
  e.g. BoolQ "Passage: ...\nQuestion: ...\nChoices:\nA. False\nB. True\nAnswer:". Continuations are letters.
  Their bugs are not reproduced: their MMLU and HellaSwag templates print Python list reprs of a batched
  field ("Question: ['...']", "A. ['...']"); here the text itself is printed. The trailing newline after
  "Answer:" is dropped, as their evaluation does (chat.py strips the query). Tasks without an authors' template
  (user tasks) get their generic one: an optional "Passage:" line, "Question: ...", lettered choices.
- ``cloze`` (lm-evaluation-harness' form for ARC, HellaSwag, PIQA, ...): the question then "Answer:"; the
  target and the continuations are the options' own text.

Free-text instances (Alpaca, free-text BBH) render the same in every format: the question then "Answer:",
continuation = the target text. BBH has two forms (`bbh_form`): ``trex`` keeps the input verbatim (options
inline as "(A) ...", binary tasks answered with their word) and ``authors`` is the authors' form: options
re-written "A. ...", binary tasks as A/B letter choices, and three worked examples for
multistep_arithmetic_two, object_counting and word_sorting. The default is ``authors`` for the letter formats
(`letters`, `official`) and ``trex`` for `cloze`.

Prompts end right after "Answer:" and continuations start with a space, so the boundary between prompt and
answer is a token boundary (lm-eval moves trailing context whitespace into the continuation the same way).
The chat template, when used, is applied at tokenisation (`trex.data.tokenize`), never here.
"""

from __future__ import annotations

import re
import string
from typing import Any, Literal

from trex.data.errors import DataError
from trex.data.instance import RenderedPrompt, TaskInstance
from trex.data.readers import OFFICIAL

Format = Literal["letters", "cloze", "official"]
FORMATS: tuple[Format, ...] = ("letters", "cloze", "official")
LETTER_FORMATS: tuple[Format, ...] = ("letters", "official")
"""Formats whose answers are letters (generate scoring reads a letter)."""
BbhForm = Literal["authors", "trex"]
BBH_FORMS: tuple[BbhForm, ...] = ("authors", "trex")

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


def default_bbh_form(fmt: str) -> BbhForm:
    """The BBH form used when none is chosen: the authors' for the letter formats, trex's for cloze."""
    return "authors" if fmt in LETTER_FORMATS else "trex"


def render(instance: TaskInstance, fmt: Format, bbh_form: BbhForm | None = None) -> RenderedPrompt:
    """Render an instance in `fmt`; the result carries the prompt, gold target and option continuations.

    `bbh_form` chooses the form of BBH instances (default: `default_bbh_form(fmt)`); other tasks ignore it.
    """
    if fmt not in FORMATS:
        raise DataError(f"unknown prompt format {fmt!r}; expected one of {', '.join(FORMATS)}")
    form = default_bbh_form(fmt) if bbh_form is None else bbh_form
    if form not in BBH_FORMS:
        raise DataError(f"unknown BBH form {form!r}; expected one of {', '.join(BBH_FORMS)}")
    if instance.meta.get("options_in_question") and form == "authors":
        return _render_bbh_authors(instance, fmt)
    if instance.is_free_text or instance.meta.get("options_in_question"):
        prompt = CLOZE_TEMPLATE.format(passage_block=_passage_block(instance), question=instance.question.strip())
        options = [_continuation(o) for o in instance.options]
        target = _continuation(instance.target_text) if instance.target_text is not None else ""
        if instance.label is not None:
            target = options[instance.label]
        return RenderedPrompt(prompt, target, options, instance.label, fmt, instance, list(instance.options))
    if fmt == "official":
        return _render_official(instance)
    if fmt == "letters":
        _check_letters(instance, len(instance.options))
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
    return RenderedPrompt(prompt, target, options, instance.label, fmt, instance, list(instance.options))


def _check_letters(instance: TaskInstance, n: int) -> None:
    if n > len(LETTERS):
        raise DataError(f"{instance.uid}: {n} options do not fit the letters A-Z")


# --- official: the authors' per-task templates ------------------------------------------------------------------
# Each entry gives the text before "Choices:" (a format string over the instance's fields), and, for tasks whose
# options the authors print as fixed labels, those labels with `order`: the trex option index shown at each
# position (BoolQ shows "A. False / B. True" where trex's options are ["yes", "no"], so order = (1, 0)).
# Sources: RoyZry98/T-REX-Pytorch @ a6b909a, prompt_template.py (line of each template in the comment).

OFFICIAL_CHOICES = "Choices:\n{option_lines}\nAnswer:"
OFFICIAL_HEADS: dict[str, str] = {
    "boolq": "Passage: {passage}\nQuestion: {question}\n",  # prompt_template.py:9-15
    "multirc": "Paragraph: {passage}\nQuestion: {question}\nCandidate answers: {answer}\n",  # :147-154
    # :207-214 ("sentenses" is theirs)
    "wic": "Sentence 1: {sentence1}\nSentence 2: {sentence2}\nIs '{word}' in the above two sentenses the same?\n",
    # :268-274
    "wsc": "{text}\nDo '{span1_text}' and '{span2_text}' refer to the same entity in the above sentence?\n",
    "rte": "Premise: {passage}\nHypothesis: {hypothesis}\n",  # :287-293
    "copa": "Premise: {premise}\nQuestion: What's the {question} for this?\nAlternative 1: {option0}\n"
    "Alternative 2: {option1}\n",  # :308-316
    "winogrande": "Context: {question}\n",  # :336-340
    "openbookqa": "Question: {question}\n",  # :357-361
    "anli": "Premise: {passage}\nHypothesis: {hypothesis}\n"
    "Question: What is the relation between the premise and hypothesis?\n",  # :379-385
    # :435-441 (theirs prints list reprs of the batched fields; the text is printed here)
    "hellaswag": "Activity: {activity_label}\nContext: {ctx}\nQuestion: Which ending makes the most sense?\n",
    "piqa": "Goal: {question}\n",  # :461-465
    "mmlu": "Question: {question}\n",  # :477-484 (theirs prints list reprs; the text is printed here)
    "commonsenseqa": "Concept: {question_concept}\nQuestion: {question}\n",  # :535-540
    "siqa": "Context: {passage}\nQuestion: {question}\n",  # :562-567
    "arc_easy": "Question: {question}\n",  # arce, :511-515
    "arc_challenge": "Question: {question}\n",  # arce, :511-515
}  # fmt: skip
OFFICIAL_LABELS: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "boolq": (("False", "True"), (1, 0)),  # trex options: yes, no
    "multirc": (("False", "True"), (1, 0)),  # trex options: true, false
    "wic": (("No", "Yes"), (1, 0)),
    "wsc": (("No", "Yes"), (1, 0)),
    "rte": (("entailment", "not entailment"), (0, 1)),  # trex: yes (= entailment), no
    "copa": (("Alternative 1", "Alternative 2"), (0, 1)),
    "anli": (("entailment", "neutral", "contradiction"), (0, 1, 2)),  # trex: true, neither, false
}
OFFICIAL_RECORD = (
    'Passage: {passage}\nResult: {query}\nQuestion: What entity does "@placeholder" refer to in the result? \n'
    "Choices:\n{entities}\nAnswer:"
)  # prompt_template.py:406-412 (entities unlettered; the answer is the entity's text)
OFFICIAL_GENERIC = "{passage_line}Question: {question}\n"
"""User tasks: the authors' MMLU/ARC form, with BoolQ's "Passage:" line when the instance has a passage."""


def _official_fields(instance: TaskInstance) -> dict[str, Any]:
    fields: dict[str, Any] = {"passage": instance.passage or "", "question": instance.question}
    fields.update({f"option{i}": option for i, option in enumerate(instance.options)})
    if instance.task == "hellaswag":  # nutcracker's HellaSwag train copy has the context alone, no activity label
        fields.update(activity_label="", ctx=instance.question)
    fields.update(instance.meta.get(OFFICIAL) or {})
    return fields


def _official_head(instance: TaskInstance, template: str) -> str:
    try:
        head = template.format_map(_official_fields(instance))
    except KeyError as err:
        raise DataError(
            f"{instance.uid}: the official template of {instance.task!r} needs the upstream field {err.args[0]!r}, "
            f"which this instance does not carry in meta[{OFFICIAL!r}] (re-read it from the staged files)"
        ) from None
    if instance.task == "boolq" and not instance.passage:  # LLM-Adapters BoolQ train has no passage
        head = head.removeprefix("Passage: \n")
    return head


def _lettered(texts: list[str] | tuple[str, ...]) -> str:
    return "\n".join(
        OPTION_LINE.format(letter=letter, option=text) for letter, text in zip(LETTERS, texts, strict=False)
    )


def _render_official(instance: TaskInstance) -> RenderedPrompt:
    task = instance.task
    if task == "record":
        entities = "\n".join(instance.options)
        prompt = OFFICIAL_RECORD.format_map({**_official_fields(instance), "entities": entities}).strip()
        options = [_continuation(o) for o in instance.options]
        target = options[instance.label] if instance.label is not None else ""
        return RenderedPrompt(prompt, target, options, instance.label, "official", instance, list(instance.options))
    if task in OFFICIAL_HEADS:
        head = _official_head(instance, OFFICIAL_HEADS[task])
    else:
        passage_line = f"Passage: {instance.passage}\n" if instance.passage else ""
        head = OFFICIAL_GENERIC.format(passage_line=passage_line, question=instance.question)
    if task in OFFICIAL_LABELS:
        texts, order = OFFICIAL_LABELS[task]
        if len(order) != len(instance.options):
            raise DataError(f"{instance.uid}: {task} has {len(instance.options)} options, its template {len(order)}")
    else:
        texts, order = tuple(instance.options), tuple(range(len(instance.options)))
    _check_letters(instance, len(texts))
    prompt = (head + OFFICIAL_CHOICES.format(option_lines=_lettered(texts))).strip()
    options = [_continuation(letter) for letter in LETTERS[: len(texts)]]
    gold = order.index(instance.label) if instance.label is not None else None
    target = options[gold] if gold is not None else ""
    return RenderedPrompt(prompt, target, options, gold, "official", instance, list(texts))


# --- BBH in the authors' form ---------------------------------------------------------------------------------
# Sources: RoyZry98/T-REX-Pytorch @ a6b909a, prompt_template.py:572-1073.

BBH_OPTION = re.compile(r"\(([a-zA-Z])\) ")
"""The authors' re-writing of inline options, "(A) x" -> "A. x" (prompt_template.py:621-623)."""
BBH_VERBATIM = frozenset({
    "boolean_expressions", "causal_judgement", "dyck_languages", "formal_fallacies", "multistep_arithmetic_two",
    "navigate", "object_counting", "web_of_lies",
})  # fmt: skip
"""BBH tasks whose input the authors print without that re-writing."""
BBH_BINARY: dict[str, tuple[str, tuple[str, str]]] = {
    "boolean_expressions": ("Question: {input}\n", ("True", "False")),  # prompt_template.py:580-590
    "causal_judgement": ("{input}\n", ("Yes", "No")),  # :601-611
    "formal_fallacies": ("{input}\n", ("valid", "invalid")),  # :657-663
    "navigate": ("{input}\n", ("Yes", "No")),  # :811-817
    "sports_understanding": ("{input}\n", ("Yes", "No")),  # :946-952 (targets are lower-case yes/no)
    "web_of_lies": ("{input}\n", ("Yes", "No")),  # :1038-1044
}
BBH_FEW_SHOT: dict[str, str] = {
    # prompt_template.py:783-799
    "multistep_arithmetic_two": "Solve multi-step arithmetic problems.\n\n"
    "Q: ((-5 + 9 * -4 - 0) * (4 + -7 + 0 * -5)) =\nAnswer:\n123\n\n"
    "Q: ((-9 * 7 * 7 * -9) + (4 * -9 - 8 - -4)) =\nAnswer:\n3929\n\n"
    "Q: ((-3 + 5 * 8 * -4) - (9 - 8 * -7 + -9)) =\nAnswer:\n-219\n\n"
    "Q: {input}\nAnswer:\n",
    # prompt_template.py:828-841
    "object_counting": "Questions that involve enumerating objects and asking the model to count them.\n\n"
    "Question: I have a blackberry, a clarinet, a nectarine, a plum, a strawberry, a banana, a flute, an orange, "
    "and a violin. How many fruits do I have?\nAnswer: 6\n\n"
    "Question: I have an orange, a raspberry, two peaches, a blackberry, an apple, a grape, a nectarine, and three "
    "plums. How many fruits do I have?\nAnswer: 11\n\n"
    "Question: I have a lettuce head, a head of broccoli, an onion, a stalk of celery, two carrots, a garlic, and a "
    "yam. How many vegetables do I have?\nAnswer: 8\n\n"
    "Question: {input}\nAnswer:\n",
    # prompt_template.py:1058-1071 (the third example's answer ends in "." in their code; kept verbatim)
    "word_sorting": "Sort a list of words.\n\n"
    "Question: Sort the following words alphabetically: List: oven costume counterpart\n"
    "Answer: costume counterpart oven\n\n"
    "Question: Sort the following words alphabetically: List: hypochlorite ponderosa phone credulity\n"
    "Answer: credulity hypochlorite phone ponderosa\n\n"
    "Question: Sort the following words alphabetically: List: newt arson parthia seismography mugho aspect census\n"
    "Answer: arson aspect census mugho newt parthia seismography.\n\n"
    "Question: {input}\nAnswer:\n",
}
BBH_PLAIN = "{input}\nAnswer:\n"
"""Every other BBH task (multiple choice and dyck_languages): the input, then "Answer:"."""


def bbh_name(task: str) -> str:
    """The BBH task name without the registry's "bbh_" prefix."""
    return task.removeprefix("bbh_")


def _render_bbh_authors(instance: TaskInstance, fmt: str) -> RenderedPrompt:
    name, kind = bbh_name(instance.task), instance.meta.get("answer_type")
    text = instance.question if name in BBH_VERBATIM else BBH_OPTION.sub(r"\1. ", instance.question)
    if kind == "binary":
        head, labels = BBH_BINARY.get(name, ("{input}\n", tuple(instance.options)))
        lowered = [o.lower() for o in instance.options]
        if sorted(label.lower() for label in labels) != sorted(lowered):
            raise DataError(f"{instance.uid}: answer words {instance.options} are not {list(labels)}")
        order = [lowered.index(label.lower()) for label in labels]
        body = head.format(input=text) + OFFICIAL_CHOICES.format(option_lines=_lettered(labels))
        options = [_continuation(letter) for letter in LETTERS[: len(labels)]]
        gold = order.index(instance.label) if instance.label is not None else None
        target = options[gold] if gold is not None else ""
        return RenderedPrompt(body.strip(), target, options, gold, fmt, instance, list(labels))
    prompt = BBH_FEW_SHOT.get(name, BBH_PLAIN).format(input=text).strip()
    if kind == "multiple_choice":
        letters = [o.strip("()") for o in instance.options]
        options = [_continuation(letter) for letter in letters]
        target = options[instance.label] if instance.label is not None else ""
        return RenderedPrompt(prompt, target, options, instance.label, fmt, instance, letters)
    target = _continuation(instance.target_text) if instance.target_text is not None else ""
    return RenderedPrompt(prompt, target, [], None, fmt, instance, [])


def intuition_text(instance: TaskInstance) -> str:
    """THE text of an instance that is embedded for intuition, in training and in evaluation alike.

    It is the letters-format prompt without the answer (passage, question, lettered options, "Answer:"),
    untruncated and without any chat template (BBH in trex's form), so the intuition of an instance does not
    depend on the prompt format, the BBH form or the model a run uses. Changing this changes every intuition
    bank: do it here only.
    """
    return render(instance, "letters", bbh_form="trex").prompt
