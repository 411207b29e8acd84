"""Named chat formats that replace a tokenizer's own chat template, for protocols that used another one.

``llama2-authors`` is the T-REX reference code's ``llama2`` template (component/template.py, lines 218-231 of
RoyZry98/T-REX-Pytorch @a6b909a): the default Llama-2 system prompt in ``<<SYS>>`` tags, then ``[INST]...[/INST]``,
no BOS token; their dataset code (component/dataset.py, lines 40-53) joins the pieces without special tokens.
"""

from __future__ import annotations

from typing import Any

LLAMA2_SYSTEM = (
    "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while being safe. "
    "Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous, or illegal content. "
    "Please ensure that your responses are socially unbiased and positive in nature.\n\n"
    "If a question does not make any sense, or is not factually coherent, explain why instead of answering "
    "something not correct. If you don't know the answer to a question, please don't share false information."
)

CHAT_FORMATS: dict[str, str] = {
    "llama2-authors": (
        "{% if messages[0]['role'] != 'system' %}<<SYS>>\n" + LLAMA2_SYSTEM + "\n<</SYS>>\n\n{% endif %}"
        "{% for m in messages %}"
        "{% if m['role'] == 'system' %}<<SYS>>\n{{ m['content'] }}\n<</SYS>>\n\n"
        "{% elif m['role'] == 'user' %}[INST]{{ m['content'] }}[/INST]"
        "{% else %}{{ m['content'] }} </s>{% endif %}"
        "{% endfor %}"
    ),
}


def apply_chat_format(tokenizer: Any, name: str | None) -> None:
    """Give ``tokenizer`` the named chat format (None: keep its own template)."""
    if name is None:
        return
    if name not in CHAT_FORMATS:
        raise ValueError(f"unknown chat format {name!r}; known: {', '.join(sorted(CHAT_FORMATS))}")
    tokenizer.chat_template = CHAT_FORMATS[name]
