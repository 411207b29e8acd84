"""Prompt formats checked against hand-written prompts for known instances."""

from __future__ import annotations

import pytest

from trex.data import DataError, TaskInstance, intuition_text, render
from trex.data.readers import superglue_copa

COPA_LINE = (
    '{"premise": "The man turned on the faucet.", "choice1": "The toilet filled with water.", '
    '"choice2": "Water flowed from the spout.", "question": "effect", "label": 1, "idx": 0}\n'
)


@pytest.fixture
def copa(tmp_path) -> TaskInstance:
    path = tmp_path / "val.jsonl"
    path.write_text(COPA_LINE)
    (instance,) = superglue_copa(path, "superglue/copa/val.jsonl", "copa")
    return instance


def test_letters_prompt_of_a_known_copa_instance(copa: TaskInstance) -> None:
    rendered = render(copa, "letters")
    assert rendered.prompt == (
        "The man turned on the faucet.\nWhat was the effect of this?\n"
        "A. The toilet filled with water.\nB. Water flowed from the spout.\nAnswer:"
    )
    assert rendered.target == " B"
    assert rendered.options == [" A", " B"]
    assert rendered.gold == 1


def test_cloze_prompt_of_a_known_copa_instance(copa: TaskInstance) -> None:
    rendered = render(copa, "cloze")
    assert rendered.prompt == "The man turned on the faucet.\nWhat was the effect of this?\nAnswer:"
    assert rendered.options == [" The toilet filled with water.", " Water flowed from the spout."]
    assert rendered.target == " Water flowed from the spout."
    assert rendered.gold == 1


def test_passage_comes_first_and_yes_no_become_letters() -> None:
    boolq = TaskInstance("boolq", "u1", "Is the sky blue?", ["yes", "no"], 0, passage="The sky is blue.")
    assert render(boolq, "letters").prompt == "The sky is blue.\n\nIs the sky blue?\nA. yes\nB. no\nAnswer:"
    assert render(boolq, "cloze").prompt == "The sky is blue.\n\nIs the sky blue?\nAnswer:"
    assert render(boolq, "cloze").target == " yes"


def test_free_text_and_bbh_in_trex_form_render_the_same_in_every_format() -> None:
    alpaca = TaskInstance("alpaca", "a1", "Name a colour.", [], None, target_text="Blue.")
    bbh = TaskInstance(
        "bbh_x", "b1", "Pick one.\nOptions:\n(A) x\n(B) y", ["(A)", "(B)"], 1, target_text="(B)",
        meta={"answer_type": "multiple_choice", "options_in_question": True},
    )  # fmt: skip
    for fmt in ("letters", "cloze", "official"):
        assert render(alpaca, fmt).prompt == "Name a colour.\nAnswer:"
        assert (render(alpaca, fmt).target, render(alpaca, fmt).options, render(alpaca, fmt).gold) == (
            " Blue.",
            [],
            None,
        )
        trex_form = render(bbh, fmt, bbh_form="trex")
        assert trex_form.prompt == "Pick one.\nOptions:\n(A) x\n(B) y\nAnswer:"
        assert trex_form.options == [" (A)", " (B)"] and trex_form.target == " (B)"
    # the authors' form (the default of the letter formats) writes the options "A. x" and answers with the letter
    for fmt in ("letters", "official"):
        authors = render(bbh, fmt)
        assert authors.prompt == "Pick one.\nOptions:\nA. x\nB. y\nAnswer:"
        assert authors.options == [" A", " B"] and authors.target == " B"
    assert render(bbh, "cloze").prompt == "Pick one.\nOptions:\n(A) x\n(B) y\nAnswer:"


def test_intuition_text_is_the_letters_prompt_without_answer(copa: TaskInstance) -> None:
    text = intuition_text(copa)
    assert text == render(copa, "letters").prompt
    assert text.endswith("Answer:") and "Water flowed from the spout." in text


def test_unknown_format_is_an_error(copa: TaskInstance) -> None:
    with pytest.raises(DataError, match="unknown prompt format 'mc'"):
        render(copa, "mc")  # type: ignore[arg-type]
