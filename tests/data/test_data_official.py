"""The `official` format and splits against the T-REX authors' code (RoyZry98/T-REX-Pytorch @ a6b909a).

Each expected prompt below is the authors' template copied from prompt_template.py (file and line in the
comment; the `raw=True` branch that chat.py evaluates), filled with one upstream record and stripped as their
chat.py:386 strips the query. Their MMLU and HellaSwag templates print list reprs of batched fields; the
expected strings here print the text (the fix trex makes on purpose).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trex.data import DataError, load_task, render
from trex.data import readers as R
from trex.data.registry import official_eval_differs

# --- the authors' templates, copied verbatim ------------------------------------------------------------------

# prompt_template.py:9-15 (prompt_one_example_on_boolq)
AUTHORS_BOOLQ = """Passage: {passage}
Question: {question}
Choices:
A. False
B. True
Answer:
"""
# prompt_template.py:147-154 (prompt_one_example_on_multirc)
AUTHORS_MULTIRC = """Paragraph: {paragraph}
Question: {question}
Candidate answers: {answer}
Choices:
A. False
B. True
Answer:
"""
# prompt_template.py:207-214 (prompt_one_example_on_wic)
AUTHORS_WIC = """Sentence 1: {sentence1}
Sentence 2: {sentence2}
Is '{word}' in the above two sentenses the same?
Choices:
A. No
B. Yes
Answer:
"""
# prompt_template.py:268-274 (prompt_one_example_on_wsc)
AUTHORS_WSC = """{text}
Do '{span1_text}' and '{span2_text}' refer to the same entity in the above sentence?
Choices:
A. No
B. Yes
Answer:
"""
# prompt_template.py:287-293 (prompt_one_example_on_rte)
AUTHORS_RTE = """Premise: {premise}
Hypothesis: {hypothesis}
Choices:
A. entailment
B. not entailment
Answer:
"""
# prompt_template.py:308-316 (prompt_one_example_on_copa)
AUTHORS_COPA = """Premise: {premise}
Question: What's the {question} for this?
Alternative 1: {choice1}
Alternative 2: {choice2}
Choices:
A. Alternative 1
B. Alternative 2
Answer:
"""
# prompt_template.py:336-340 (prompt_one_example_on_WinoGrande)
AUTHORS_WINOGRANDE = """Context: {sentence}
Choices:
{choices_text}
Answer:
"""
# prompt_template.py:357-361 (prompt_one_example_on_openbookqa)
AUTHORS_OPENBOOKQA = """Question: {question_stem}
Choices:
{choices_text}
Answer:
"""
# prompt_template.py:379-385 (prompt_one_example_on_anli); choices entailment / neutral / contradiction (:375)
AUTHORS_ANLI = """Premise: {premise}
Hypothesis: {hypothesis}
Question: What is the relation between the premise and hypothesis?
Choices:
{choices_text}
Answer:
"""
# prompt_template.py:435-441 (prompt_one_example_on_hellaswag)
AUTHORS_HELLASWAG = """Activity: {activity_label}
Context: {ctx}
Question: Which ending makes the most sense?
Choices:
{choices_text}
Answer:
"""
# prompt_template.py:461-465 (prompt_one_example_on_piqa)
AUTHORS_PIQA = """Goal: {goal}
Choices:
{choices_text}
Answer:
"""
# prompt_template.py:477-484 (prompt_one_example_on_mmlu)
AUTHORS_MMLU = """Question: {question}
Choices:
A. {A}
B. {B}
C. {C}
D. {D}
Answer:
"""
# prompt_template.py:535-540 (prompt_one_example_on_commonsense_qa)
AUTHORS_CSQA = """Concept: {question_concept}
Question: {question}
Choices:
{choices_text}
Answer:
"""
# prompt_template.py:562-567 (prompt_one_example_on_siqa)
AUTHORS_SIQA = """Context: {context}
Question: {question}
Choices:
{choices_text}
Answer:
"""


def choices_text(texts: list[str]) -> str:
    """Their loop (e.g. prompt_template.py:374-377): "<letter>. <text>\\n" per option, then rstrip()."""
    return "".join(f"{la}. {text}\n" for la, text in zip("ABCDE", texts, strict=False)).rstrip()


def authors(template: str, **fields: str) -> str:
    return template.format(**fields).strip()  # chat.py:386: query = query.strip()


# --- one upstream record per task, read by trex's reader --------------------------------------------------------


def _read(tmp_path: Path, reader, name: str, task: str, record: dict | str):
    path = tmp_path / name
    path.write_text(record if isinstance(record, str) else json.dumps(record) + "\n", encoding="utf-8")
    (instance,) = list(reader(path, name, task))
    return instance


NUT = {"correct_options": ["B"], "correct_options_literal": ["x"]}
CASES = {
    "boolq": (
        R.superglue_boolq,
        {"question": "is windows movie maker part of windows essentials", "passage": "Windows Movie Maker is a "
         "discontinued video editing software by Microsoft.", "idx": 0, "label": True},
        lambda r: authors(AUTHORS_BOOLQ, passage=r["passage"], question=r["question"]), " B",
    ),
    "multirc": (
        R.superglue_multirc,
        {"idx": 0, "version": 1.1, "passage": {"text": "<b>Sent 1: </b>Joe ran home.<br>", "questions": [
            {"question": "Who ran?", "idx": 3, "answers": [{"text": "Joe", "idx": 7, "label": 1}]}]}},
        lambda r: authors(AUTHORS_MULTIRC, paragraph=r["passage"]["text"], question="Who ran?", answer="Joe"), " B",
    ),
    "wic": (
        R.superglue_wic,
        {"word": "class", "sentence1": "An emerging professional class.", "sentence2": "He showed real class.",
         "idx": 0, "label": False},
        lambda r: authors(AUTHORS_WIC, sentence1=r["sentence1"], sentence2=r["sentence2"], word=r["word"]), " A",
    ),
    "wsc": (
        R.superglue_wsc,
        {"text": "The trophy does not fit in the suitcase because it is too big.", "idx": 0, "label": True,
         "target": {"span1_text": "The trophy", "span2_text": "it", "span1_index": 0, "span2_index": 9}},
        lambda r: authors(AUTHORS_WSC, text=r["text"], span1_text="The trophy", span2_text="it"), " B",
    ),
    "rte": (
        R.superglue_rte,
        {"premise": "Dana Reeve has died of lung cancer.", "hypothesis": "Christopher Reeve had an accident.",
         "label": "not_entailment", "idx": 0},
        lambda r: authors(AUTHORS_RTE, premise=r["premise"], hypothesis=r["hypothesis"]), " B",
    ),
    "copa": (
        R.superglue_copa,
        {"premise": "The man turned on the faucet.", "choice1": "The toilet filled with water.",
         "choice2": "Water flowed from the spout.", "question": "effect", "label": 1, "idx": 0},
        lambda r: authors(AUTHORS_COPA, premise=r["premise"], question=r["question"], choice1=r["choice1"],
                          choice2=r["choice2"]), " B",
    ),
    "winogrande": (
        R.nutcracker,
        {"centerpiece": "Sarah was a much better surgeon than Maria so _ always got the easier cases.",
         "options": ["Sarah", "Maria"], "correct_options_idx": [1], **NUT},
        lambda r: authors(AUTHORS_WINOGRANDE, sentence=r["centerpiece"], choices_text=choices_text(r["options"])),
        " B",
    ),
    "openbookqa": (
        R.obqa_tsv,
        "ID\tQuestion Stem\tChoices\tComplete Question\tAnswer Key\n"
        "8-376\tFrilled sharks live far beneath the surface of the ocean, which is why they are known as\t"
        "(A) Deep sea animals (B) fish (C) Long Sea Fish (D) Far Sea Animals\tx\tA\n",
        lambda r: authors(AUTHORS_OPENBOOKQA, question_stem="Frilled sharks live far beneath the surface of the "
                          "ocean, which is why they are known as", choices_text=choices_text(
                              ["Deep sea animals", "fish", "Long Sea Fish", "Far Sea Animals"])), " A",
    ),
    "anli": (
        R.anli,
        {"uid": "u0", "context": "Linguistics is the scientific study of language.", "hypothesis": "Form is all.",
         "label": "c", "genre": "wiki"},
        lambda r: authors(AUTHORS_ANLI, premise=r["context"], hypothesis=r["hypothesis"],
                          choices_text=choices_text(["entailment", "neutral", "contradiction"])), " C",
    ),
    "hellaswag": (
        R.hellaswag,
        {"ind": 0, "ctx": "Roof shingle removal: A man is sitting on a roof. he", "label": 3,
         "endings": ["is using wrap.", "is ripping tiles off.", "is holding a cube.", "starts pulling up roofing."]},
        lambda r: authors(AUTHORS_HELLASWAG, activity_label="Roof shingle removal",
                          ctx="A man is sitting on a roof. he", choices_text=choices_text(r["endings"])), " D",
    ),
    "piqa": (
        R.nutcracker,
        {"centerpiece": "How do I ready a guinea pig cage?", "options": ["Use paper strips.", "Use jeans."],
         "correct_options_idx": [0], **NUT},
        lambda r: authors(AUTHORS_PIQA, goal=r["centerpiece"], choices_text=choices_text(r["options"])), " A",
    ),
    "siqa": (
        R.nutcracker,
        {"context": "Tracy didn't go home that evening.", "centerpiece": "What does Tracy need to do before this?",
         "options": ["make a new plan", "Go home", "Find somewhere to go"], "correct_options_idx": [2], **NUT},
        lambda r: authors(AUTHORS_SIQA, context=r["context"], question=r["centerpiece"],
                          choices_text=choices_text(r["options"])), " C",
    ),
    "mmlu": (
        R.nutcracker,
        {"subject": "abstract_algebra", "centerpiece": "Find the degree of Q(sqrt(2)) over Q.",
         "options": ["0", "4", "2", "6"], "correct_options_idx": [2], **NUT},
        lambda r: authors(AUTHORS_MMLU, question=r["centerpiece"], **dict(zip("ABCD", r["options"], strict=True))),
        " C",
    ),
    "commonsenseqa": (
        R.csqa,
        {"id": "q0", "answerKey": "A", "question": {"question_concept": "revolving door", "stem": "A revolving door "
         "is a security measure at a what?", "choices": [{"label": k, "text": t} for k, t in zip(
             "ABCDE", ["bank", "library", "department store", "mall", "new york"], strict=True)]}},
        lambda r: authors(AUTHORS_CSQA, question_concept="revolving door", question=r["question"]["stem"],
                          choices_text=choices_text([c["text"] for c in r["question"]["choices"]])), " A",
    ),
}  # fmt: skip


def test_every_evaluated_task_has_a_case() -> None:
    from trex.data import list_tasks

    assert sorted(CASES) == sorted(list_tasks("eval"))


@pytest.mark.parametrize("task", sorted(CASES))
def test_official_prompt_is_the_authors_string(task: str, tmp_path: Path) -> None:
    reader, record, expected, target = CASES[task]
    instance = _read(tmp_path, reader, "x.tsv" if task == "openbookqa" else "x.jsonl", task, record)
    rendered = render(instance, "official")
    assert rendered.prompt == expected(record)
    assert rendered.target == target
    assert rendered.options == [f" {c}" for c in "ABCDE"[: len(rendered.options)]]
    assert rendered.options[rendered.gold] == target


def test_official_yes_no_order_follows_the_authors_not_trex(tmp_path: Path) -> None:
    reader, record, _, _ = CASES["boolq"]
    instance = _read(tmp_path, reader, "x.jsonl", "boolq", record)
    assert instance.options == ["yes", "no"] and instance.label == 0  # trex: A. yes
    assert render(instance, "letters").target == " A"
    assert render(instance, "official").choices == ["False", "True"] and render(instance, "official").target == " B"


def test_official_renders_every_shipped_instance_of_every_task() -> None:
    from trex.data import list_tasks

    for task in list_tasks("all"):
        for split in ("train", "eval"):
            try:
                instances = load_task(task, split, limit=3)
            except DataError:
                continue  # the task has no such split
            for instance in instances:
                rendered = render(instance, "official")
                assert rendered.prompt.endswith("Answer:") and "['" not in rendered.prompt


def test_official_needs_the_upstream_fields() -> None:
    from trex.data import TaskInstance

    bare = TaskInstance("wic", "u", "Sentence 1: a\nSentence 2: b\nSame?", ["yes", "no"], 0)
    with pytest.raises(DataError, match="needs the upstream field 'sentence1'"):
        render(bare, "official")


def test_user_tasks_get_the_authors_generic_form() -> None:
    from trex.data import TaskInstance

    mine = TaskInstance("mine", "u", "Which?", ["x", "y"], 1, passage="Some text.")
    assert render(mine, "official").prompt == "Passage: Some text.\nQuestion: Which?\nChoices:\nA. x\nB. y\nAnswer:"


# --- BBH in the authors' form -----------------------------------------------------------------------------------

BINARY = {  # task: the choices the authors print (prompt_template.py:580-590, 601-611, 657-663, 811-817, 946-952,
    # 1038-1044)
    "boolean_expressions": ("A. True", "B. False"),
    "causal_judgement": ("A. Yes", "B. No"),
    "formal_fallacies": ("A. valid", "B. invalid"),
    "navigate": ("A. Yes", "B. No"),
    "sports_understanding": ("A. Yes", "B. No"),
    "web_of_lies": ("A. Yes", "B. No"),
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_bbh_binary_prompts_end_in_letter_options(name: str) -> None:
    for instance in load_task(f"bbh_{name}", "eval", limit=5):
        rendered = render(instance, "letters")  # the authors' form is the default of the letter formats
        assert rendered.prompt.endswith("\nChoices:\n" + "\n".join(BINARY[name]) + "\nAnswer:")
        assert rendered.options == [" A", " B"]
        positive = instance.target_text.lower() in ("true", "yes", "valid")
        assert rendered.target == (" A" if positive else " B")
        assert render(instance, "letters", bbh_form="trex").options == [f" {o}" for o in instance.options]
    if name == "boolean_expressions":
        assert rendered.prompt.startswith("Question: ")


def test_bbh_multiple_choice_options_are_rewritten_as_letters() -> None:
    instance = load_task("bbh_date_understanding", "eval", limit=1)[0]
    rendered = render(instance, "official")
    assert "(A) " in instance.question and "(A) " not in rendered.prompt and "\nA. " in rendered.prompt
    assert rendered.target == " " + instance.target_text.strip("()")


# prompt_template.py:783-799, 828-841, 1058-1071 (the worked examples, verbatim)
FEW_SHOT = {
    "multistep_arithmetic_two": """Solve multi-step arithmetic problems.

Q: ((-5 + 9 * -4 - 0) * (4 + -7 + 0 * -5)) =
Answer:
123

Q: ((-9 * 7 * 7 * -9) + (4 * -9 - 8 - -4)) =
Answer:
3929

Q: ((-3 + 5 * 8 * -4) - (9 - 8 * -7 + -9)) =
Answer:
-219

Q: {input}
Answer:
""",
    "object_counting": """Questions that involve enumerating objects and asking the model to count them.

Question: I have a blackberry, a clarinet, a nectarine, a plum, a strawberry, a banana, a flute, an orange, and a violin. How many fruits do I have?
Answer: 6

Question: I have an orange, a raspberry, two peaches, a blackberry, an apple, a grape, a nectarine, and three plums. How many fruits do I have?
Answer: 11

Question: I have a lettuce head, a head of broccoli, an onion, a stalk of celery, two carrots, a garlic, and a yam. How many vegetables do I have?
Answer: 8

Question: {input}
Answer:
""",  # noqa: E501
    "word_sorting": """Sort a list of words.

Question: Sort the following words alphabetically: List: oven costume counterpart
Answer: costume counterpart oven

Question: Sort the following words alphabetically: List: hypochlorite ponderosa phone credulity
Answer: credulity hypochlorite phone ponderosa

Question: Sort the following words alphabetically: List: newt arson parthia seismography mugho aspect census
Answer: arson aspect census mugho newt parthia seismography.

Question: {input}
Answer:
""",
}


@pytest.mark.parametrize("name", sorted(FEW_SHOT))
def test_bbh_three_shot_examples_are_the_authors(name: str) -> None:
    instance = load_task(f"bbh_{name}", "eval", limit=1)[0]
    rendered = render(instance, "official")
    assert rendered.prompt == FEW_SHOT[name].format(input=instance.question).strip()
    assert rendered.target == " " + instance.target_text
    assert render(instance, "cloze").prompt == instance.question.strip() + "\nAnswer:"  # trex form for cloze


# --- splits -----------------------------------------------------------------------------------------------------


def test_official_split_differs_only_for_mmlu_and_openbookqa() -> None:
    from trex.data import list_tasks

    assert [t for t in list_tasks("all") if official_eval_differs(t)] == ["mmlu", "openbookqa"]
    full, official = load_task("boolq", "eval"), load_task("boolq", "eval", eval_split="official")
    assert [i.uid for i in full] == [i.uid for i in official]


def test_shipped_openbookqa_official_is_validation_and_mmlu_fails_clearly() -> None:
    official = load_task("openbookqa", "eval", eval_split="official")
    assert len(official) == 100 and all(i.uid.startswith("openbookqa/dev.tsv:") for i in official)
    assert all(i.uid.startswith("openbookqa/test.tsv:") for i in load_task("openbookqa", "eval"))
    with pytest.raises(DataError, match="1,531"):
        load_task("mmlu", "eval", eval_split="official")
    with pytest.raises(DataError, match="unknown evaluation split"):
        load_task("copa", "eval", eval_split="test")  # type: ignore[arg-type]


def test_staged_official_split_sizes(shared_data: Path) -> None:
    assert len(load_task("openbookqa", "eval", shared_data, eval_split="official")) == 500
    assert len(load_task("copa", "eval", shared_data, eval_split="official")) == 100
    if not (shared_data / "mmlu" / "validation.jsonl").is_file():
        with pytest.raises(DataError, match="not staged"):
            load_task("mmlu", "eval", shared_data, eval_split="official")
        pytest.skip("MMLU's official split (cais/mmlu validation, 1,531) is not staged in ../shared/data")
    assert len(load_task("mmlu", "eval", shared_data, eval_split="official")) == 1531
