"""Readers that turn one staged file of the suite into `TaskInstance`s.

One function per upstream schema. Each takes the file path, a `source` string (the path relative to the
data root, used in uids and error messages) and the task name, and yields instances. The task-specific
question wording lives here, next to the schema it reads; the prompt layout (letters / cloze / official) lives
in `trex.data.templates`.

The upstream fields the authors' templates (`official` format) print and that the instance does not already
hold verbatim are kept in `meta["official"]` (for example BoolQ's raw lower-case question, WiC's word and
sentences), so that format can print them exactly as the authors' code does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trex.data.errors import DataError
from trex.data.instance import TaskInstance
from trex.data.io import read_json, read_json_array, read_jsonl, read_tsv, require

Reader = Callable[[Path, str, str], Iterator[TaskInstance]]

YES_NO = ["yes", "no"]
TRUE_FALSE = ["true", "false"]
ANLI_OPTIONS = ["true", "neither", "false"]  # entailment / neutral / contradiction, as lm-eval words them
ANLI_LABELS = {"e": 0, "n": 1, "c": 2}
RTE_LABELS = {"entailment": 0, "not_entailment": 1}
OFFICIAL = "official"
"""meta key of the upstream fields the `official` format prints (see `trex.data.templates`)."""


def make_instance(
    where: str,
    task: str,
    uid: str,
    question: str,
    options: list[str],
    label: int | None,
    *,
    passage: str | None = None,
    target_text: str | None = None,
    meta: dict[str, Any] | None = None,
) -> TaskInstance:
    """Build an instance after checking what every consumer relies on: a question and a valid label."""
    if not isinstance(question, str):
        raise DataError(f"{where}: the question must be text, got {type(question).__name__} {question!r}")
    if not isinstance(options, list) or not all(isinstance(option, str) for option in options):
        raise DataError(f"{where}: the options must be a list of strings, got {options!r}")
    if label is not None and (isinstance(label, bool) or not isinstance(label, int)):
        raise DataError(f"{where}: field 'label' must be an integer, got {type(label).__name__} {label!r}")
    if passage is not None and not isinstance(passage, str):
        raise DataError(f"{where}: the passage must be text, got {type(passage).__name__}")
    if not question.strip():
        raise DataError(f"{where}: empty question")
    empty = [i for i, option in enumerate(options) if not option.strip()]
    if empty:
        raise DataError(f"{where}: option {empty[0]} is empty (every option needs text)")
    if label is not None and not 0 <= label < len(options):
        raise DataError(f"{where}: label {label} is outside the {len(options)} options {options}")
    if not options and target_text is None:
        raise DataError(f"{where}: an instance needs either options or a target text")
    return TaskInstance(task, uid, question, options, label, passage, target_text, meta or {}, source=where)


def _bool_label(value: Any, where: str) -> int:
    """SuperGLUE booleans -> index into YES_NO / TRUE_FALSE (True -> 0)."""
    if not isinstance(value, bool):
        raise DataError(f"{where}: field 'label' must be true/false, got {value!r}")
    return 0 if value else 1


def _mapped_label(value: Any, mapping: dict[str, int], where: str) -> int:
    if value not in mapping:
        raise DataError(f"{where}: field 'label' must be one of {sorted(mapping)}, got {value!r}")
    return mapping[value]


def superglue_boolq(path: Path, source: str, task: str) -> Iterator[TaskInstance]:
    """BoolQ with passages: yes/no question about a Wikipedia paragraph."""
    for line, r in read_jsonl(path):
        where = f"{path}:{line}"
        require(r, ("question", "passage", "label"), where)
        question = r["question"].strip().rstrip("?") + "?"
        yield make_instance(
            where, task, f"{source}:{line}", question[0].upper() + question[1:], YES_NO,
            _bool_label(r["label"], where), passage=r["passage"], meta={OFFICIAL: {"question": r["question"]}},
        )  # fmt: skip


_LLM_ADAPTERS_BOOLQ = re.compile(r"question:\s*(?P<q>.*?)\s*\n\nAnswer format", re.S)


def llm_adapters_boolq(path: Path, source: str, task: str) -> Iterator[TaskInstance]:
    """LLM-Adapters BoolQ (question only, no passage): the question is cut out of the instruction."""
    for item, r in read_json_array(path):
        where = f"{path}: item {item}"
        require(r, ("instruction", "answer"), where)
        match = _LLM_ADAPTERS_BOOLQ.search(r["instruction"])
        if match is None:
            raise DataError(f"{where}: field 'instruction' does not contain 'question: ... Answer format'")
        question = match["q"].rstrip("?") + "?"
        label = _mapped_label(r["answer"].strip().lower(), {"true": 0, "false": 1}, where)
        yield make_instance(
            where, task, f"{source}:{item}", question[0].upper() + question[1:], YES_NO, label,
            meta={"passage_available": False, OFFICIAL: {"question": match["q"]}},
        )  # fmt: skip


def superglue_multirc(path: Path, source: str, task: str) -> Iterator[TaskInstance]:
    """MultiRC: one instance per (question, candidate answer), judged true or false, as the paper does.

    The paragraph/question ids are kept in `meta` so exact-match and F1a can be computed per question later.
    """
    for line, r in read_jsonl(path):
        where = f"{path}:{line}"
        require(r, ("passage",), where)
        require(r["passage"], ("text", "questions"), f"{where}: passage")
        for q in r["passage"]["questions"]:
            require(q, ("question", "answers", "idx"), f"{where}: question")
            for a in q["answers"]:
                require(a, ("text", "label", "idx"), f"{where}: question {q['idx']}: answer")
                question = f"{q['question']}\nCandidate answer: {a['text']}\nIs the candidate answer true or false?"
                yield make_instance(
                    where, task, f"{source}:{line}/{q['idx']}/{a['idx']}", question, TRUE_FALSE,
                    0 if a["label"] == 1 else 1, passage=r["passage"]["text"],
                    meta={"paragraph": r.get("idx"), "question_idx": q["idx"],
                          OFFICIAL: {"question": q["question"], "answer": a["text"]}},
                )  # fmt: skip


def superglue_wic(path: Path, source: str, task: str) -> Iterator[TaskInstance]:
    """WiC: is a word used with the same sense in two sentences."""
    for line, r in read_jsonl(path):
        where = f"{path}:{line}"
        require(r, ("word", "sentence1", "sentence2", "label"), where)
        question = (
            f"Sentence 1: {r['sentence1']}\nSentence 2: {r['sentence2']}\n"
            f'Is the word "{r["word"]}" used with the same meaning in both sentences?'
        )
        fields = {k: r[k] for k in ("word", "sentence1", "sentence2")}
        yield make_instance(
            where, task, f"{source}:{line}", question, YES_NO, _bool_label(r["label"], where),
            meta={OFFICIAL: fields},
        )  # fmt: skip


def superglue_wsc(path: Path, source: str, task: str) -> Iterator[TaskInstance]:
    """WSC (SuperGLUE form): does the pronoun refer to the candidate noun phrase."""
    for line, r in read_jsonl(path):
        where = f"{path}:{line}"
        require(r, ("text", "target", "label"), where)
        require(r["target"], ("span1_text", "span2_text"), f"{where}: target")
        span1, span2 = r["target"]["span1_text"], r["target"]["span2_text"]
        question = f'{r["text"]}\nIn the passage above, does the pronoun "{span2}" refer to "{span1}"?'
        fields = {"text": r["text"], "span1_text": span1, "span2_text": span2}
        yield make_instance(
            where, task, f"{source}:{line}", question, YES_NO, _bool_label(r["label"], where),
            meta={OFFICIAL: fields},
        )  # fmt: skip


def superglue_rte(path: Path, source: str, task: str) -> Iterator[TaskInstance]:
    """RTE: does the premise (kept as the passage) entail the hypothesis."""
    for line, r in read_jsonl(path):
        where = f"{path}:{line}"
        require(r, ("premise", "hypothesis", "label"), where)
        question = f"Hypothesis: {r['hypothesis']}\nDoes the passage entail the hypothesis?"
        label = _mapped_label(r["label"], RTE_LABELS, where)
        yield make_instance(
            where, task, f"{source}:{line}", question, YES_NO, label, passage=r["premise"],
            meta={OFFICIAL: {"hypothesis": r["hypothesis"]}},
        )  # fmt: skip


def superglue_copa(path: Path, source: str, task: str) -> Iterator[TaskInstance]:
    """COPA: pick the more plausible cause or effect of a premise."""
    for line, r in read_jsonl(path):
        where = f"{path}:{line}"
        require(r, ("premise", "choice1", "choice2", "question", "label"), where)
        relation = _mapped_label(r["question"], {"cause": 0, "effect": 1}, where)
        question = f"{r['premise']}\nWhat was the {('cause', 'effect')[relation]} of this?"
        yield make_instance(
            where, task, f"{source}:{line}", question, [r["choice1"], r["choice2"]], r["label"],
            meta={OFFICIAL: {"premise": r["premise"], "question": r["question"]}},
        )  # fmt: skip


def superglue_record(path: Path, source: str, task: str) -> Iterator[TaskInstance]:
    """ReCoRD: fill @placeholder in a query with one of the entities marked in the news passage.

    Options are the distinct entity strings in passage order; the label is the first gold answer.
    """
    for line, r in read_jsonl(path):
        where = f"{path}:{line}"
        require(r, ("passage", "qas"), where)
        require(r["passage"], ("text", "entities"), f"{where}: passage")
        text = r["passage"]["text"]
        entities = list(dict.fromkeys(text[e["start"] : e["end"] + 1] for e in r["passage"]["entities"]))
        passage = text.replace("@highlight\n", "- ")
        for qa in r["qas"]:
            require(qa, ("query", "answers", "idx"), f"{where}: qas")
            gold = next((entities.index(a["text"]) for a in qa["answers"] if a["text"] in entities), None)
            if gold is None:
                raise DataError(f"{where}: query {qa['idx']}: no gold answer is among the passage entities")
            question = f"{qa['query']}\nWhich entity should replace @placeholder?"
            yield make_instance(
                where, task, f"{source}:{line}/{qa['idx']}", question, entities, gold, passage=passage,
                target_text=entities[gold], meta={OFFICIAL: {"query": qa["query"]}},
            )  # fmt: skip


def anli(path: Path, source: str, task: str) -> Iterator[TaskInstance]:
    """ANLI: the hypothesis is true, neither, or false given the context (the passage)."""
    for line, r in read_jsonl(path):
        where = f"{path}:{line}"
        require(r, ("uid", "context", "hypothesis", "label"), where)
        question = f"Hypothesis: {r['hypothesis']}\nIs the hypothesis true, false, or neither, given the passage?"
        label = _mapped_label(r["label"], ANLI_LABELS, where)
        yield make_instance(
            where, task, f"{source}:{r['uid']}", question, ANLI_OPTIONS, label, passage=r["context"],
            meta={"genre": r.get("genre"), OFFICIAL: {"hypothesis": r["hypothesis"]}},
        )  # fmt: skip


def nutcracker(path: Path, source: str, task: str) -> Iterator[TaskInstance]:
    """nutcracker-db's unified multiple-choice schema (MMLU, PIQA, SIQA, WinoGrande, HellaSwag train, ARC)."""
    for line, r in read_jsonl(path):
        where = f"{path}:{line}"
        require(r, ("centerpiece", "options", "correct_options_idx"), where)
        if len(r["correct_options_idx"]) != 1:
            raise DataError(f"{where}: field 'correct_options_idx' must hold exactly one index")
        meta = {"subject": r["subject"]} if "subject" in r else {}
        options = [o.strip() for o in r["options"]]
        yield make_instance(
            where, task, f"{source}:{line}", r["centerpiece"].strip(), options, r["correct_options_idx"][0],
            passage=r.get("context"), meta=meta,
        )  # fmt: skip


_OBQA_CHOICES = re.compile(r"^\(A\)\s*(.*)\s\(B\)\s*(.*)\s\(C\)\s*(.*)\s\(D\)\s*(.*)$")
"""Greedy groups: one upstream train row has "(D)" inside choice C; greedy matching reads it as LLM-Adapters does."""


def obqa_tsv(path: Path, source: str, task: str) -> Iterator[TaskInstance]:
    """OpenBookQA original TSV: choices are one string "(A) .. (B) .. (C) .. (D) ..", the answer a letter."""
    for line, r in read_tsv(path):
        where = f"{path}:{line}"
        require(r, ("ID", "Question Stem", "Choices", "Answer Key"), where)
        match = _OBQA_CHOICES.match(r["Choices"].strip())
        if match is None:
            raise DataError(f"{where}: cannot parse field 'Choices' as four options (A)..(D): {r['Choices']!r}")
        label = _mapped_label(r["Answer Key"], {"A": 0, "B": 1, "C": 2, "D": 3}, where)
        options = [g.strip() for g in match.groups()]
        yield make_instance(where, task, f"{source}:{r['ID']}", r["Question Stem"].strip(), options, label)


def csqa(path: Path, source: str, task: str) -> Iterator[TaskInstance]:
    """CommonsenseQA original JSONL: stem, five labelled choices, answerKey."""
    for line, r in read_jsonl(path):
        where = f"{path}:{line}"
        require(r, ("id", "question", "answerKey"), where)
        require(r["question"], ("stem", "choices"), f"{where}: question")
        letters = [c["label"] for c in r["question"]["choices"]]
        label = _mapped_label(r["answerKey"], {k: i for i, k in enumerate(letters)}, where)
        options = [c["text"] for c in r["question"]["choices"]]
        concept = {"question_concept": r["question"].get("question_concept", "")}
        yield make_instance(
            where, task, f"{source}:{r['id']}", r["question"]["stem"], options, label, meta={OFFICIAL: concept}
        )


def hellaswag(path: Path, source: str, task: str) -> Iterator[TaskInstance]:
    """HellaSwag validation as converted from the klosax dump: context and four endings.

    The dump's `ctx` is "<activity_label>: <ctx>"; the two are split at the first ": " for the `official` format.
    """
    for line, r in read_jsonl(path):
        where = f"{path}:{line}"
        require(r, ("ctx", "endings", "label"), where)
        activity, _, ctx = r["ctx"].strip().partition(": ")
        fields = {"activity_label": activity, "ctx": ctx} if ctx else {"activity_label": "", "ctx": activity}
        yield make_instance(
            where, task, f"{source}:{line}", r["ctx"].strip(), r["endings"], r["label"], meta={OFFICIAL: fields}
        )


_LLM_ADAPTERS_CHOICE = re.compile(r"Answer(\d+):\s*")
_LLM_ADAPTERS_STEM = re.compile(r"question:\s*(?P<q>.*?)\s*\n\n(?P<choices>Answer1:.*?)\s*\n\nAnswer format", re.S)


def llm_adapters_choice(path: Path, source: str, task: str) -> Iterator[TaskInstance]:
    """LLM-Adapters multiple choice (ARC train): "Answer1: .. Answer2: .." inside the instruction."""
    for item, r in read_json_array(path):
        where = f"{path}: item {item}"
        require(r, ("instruction", "answer"), where)
        match = _LLM_ADAPTERS_STEM.search(r["instruction"])
        if match is None:
            raise DataError(f"{where}: field 'instruction' has no 'question: ... Answer1: ... Answer format'")
        parts = _LLM_ADAPTERS_CHOICE.split(match["choices"])[1:]
        numbers, options = parts[0::2], [p.strip() for p in parts[1::2]]
        if numbers != [str(i + 1) for i in range(len(numbers))]:
            raise DataError(f"{where}: cannot parse the answer choices in field 'instruction'")
        label = _mapped_label(r["answer"].strip(), {f"answer{n}": i for i, n in enumerate(numbers)}, where)
        yield make_instance(where, task, f"{source}:{item}", match["q"], options, label)


def alpaca(path: Path, source: str, task: str) -> Iterator[TaskInstance]:
    """Alpaca instruction data: free text; the input, when present, follows the instruction."""
    for item, r in read_json_array(path):
        where = f"{path}: item {item}"
        require(r, ("instruction", "input", "output"), where)
        question = r["instruction"].strip() + (f"\n\n{r['input'].strip()}" if r["input"].strip() else "")
        yield make_instance(where, task, f"{source}:{item}", question, [], None, target_text=r["output"].strip())


_BBH_LETTER = re.compile(r"^\(([A-R])\)$")
_BBH_OPTION_LINE = re.compile(r"^\(([A-R])\)\s", re.M)


def bbh(path: Path, source: str, task: str) -> Iterator[TaskInstance]:
    """BIG-Bench Hard: the input is kept verbatim (its options, if any, stay inline) and the target string kept.

    `meta["answer_type"]` says how to score: "multiple_choice" (target "(X)", options are "(A)".."(X)"),
    "binary" (the task's two answer words), or "free_text" (exact match on the target string; no options).
    A few upstream instances of multiple-choice tasks have a target that is not a letter, or fewer than two
    options (one snarks input is cut short upstream); those become free text.
    """
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("examples"), list):
        raise DataError(f"{path}: expected an object with an 'examples' list")
    examples = data["examples"]
    targets = [e.get("target") for e in examples]
    binary = sorted({t for t in targets if isinstance(t, str)})
    if len(binary) != 2 or any(_BBH_LETTER.match(t) for t in binary):
        binary = []
    for item, r in enumerate(examples, start=1):
        where = f"{path}: example {item}"
        require(r, ("input", "target"), where)
        letters = _BBH_OPTION_LINE.findall(r["input"])
        letter = _BBH_LETTER.match(r["target"])
        if letter and letter[1] in letters and len(letters) >= 2:
            options, label, kind = [f"({x})" for x in letters], letters.index(letter[1]), "multiple_choice"
        elif binary:
            options, label, kind = binary, binary.index(r["target"]), "binary"
        else:
            options, label, kind = [], None, "free_text"
        yield make_instance(
            where, task, f"{source}:{item}", r["input"], options, label, target_text=r["target"],
            meta={"answer_type": kind, "options_in_question": True},
        )  # fmt: skip
