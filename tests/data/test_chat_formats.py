"""The authors' Llama-2 chat format, rendered through a tokenizer, against their template's pieces."""

from __future__ import annotations

import pytest

from trex.data.chat_formats import apply_chat_format
from trex.pretrained import load_base_model

# RoyZry98/T-REX-Pytorch @a6b909a, component/template.py lines 218-231: system_format, user_format, system
AUTHORS_SYSTEM = (
    "You are a helpful, respectful and honest assistant. "
    "Always answer as helpfully as possible, while being safe. "
    "Your answers should not include any harmful, unethical, "
    "racist, sexist, toxic, dangerous, or illegal content. "
    "Please ensure that your responses are socially unbiased and positive in nature.\n\n"
    "If a question does not make any sense, or is not factually coherent, "
    "explain why instead of answering something not correct. "
    "If you don't know the answer to a question, please don't share false information."
)


def test_llama2_authors_format_is_their_system_and_inst_tags():
    _, tokenizer = load_base_model("tiny-random-llama")
    apply_chat_format(tokenizer, "llama2-authors")
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Question?"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<<SYS>>\n" + AUTHORS_SYSTEM + "\n<</SYS>>\n\n" + "[INST]Question?[/INST]"


def test_unknown_chat_format_is_named():
    _, tokenizer = load_base_model("tiny-random-llama")
    with pytest.raises(ValueError, match="unknown chat format 'llama3'; known: llama2-authors"):
        apply_chat_format(tokenizer, "llama3")
