"""`trex eval` uses the prompt settings an adapter was trained with, unless told otherwise (then it warns)."""

from __future__ import annotations

import json
import logging

from trex.data.chat_formats import CHAT_FORMATS
from trex.eval.loading import TRAINING_RECORD, load_eval_model
from trex.eval.runner import resolve_format
from trex.methods import build_adapter_model
from trex.methods.lora import LoraMethodConfig
from trex.pretrained import tiny_random_llama
from trex.train.run import TRAINING_RECORD as WRITTEN_BY_TRAINING


def lora_folder(tmp_path, record: dict | None):
    model, _ = tiny_random_llama()
    build_adapter_model(model, LoraMethodConfig(r=2)).save_pretrained(tmp_path / "adapter")
    if record is not None:
        (tmp_path / "adapter" / TRAINING_RECORD).write_text(json.dumps(record))
    return tmp_path / "adapter"


def test_the_recorded_settings_are_the_defaults(tmp_path):
    assert TRAINING_RECORD == WRITTEN_BY_TRAINING
    record = {"format": "cloze", "chat_template": False, "chat_format": "llama2-authors", "max_length": 256}
    lm = load_eval_model("tiny-random-llama", lora_folder(tmp_path, record))
    assert lm.chat_template is False and lm.tokenizer.chat_template == CHAT_FORMATS["llama2-authors"]
    assert resolve_format(lm, None) == "cloze"


def test_other_settings_are_used_with_a_warning(tmp_path, caplog):
    folder = lora_folder(tmp_path, {"format": "cloze", "chat_template": False})
    with caplog.at_level(logging.WARNING):
        lm = load_eval_model("tiny-random-llama", folder, chat_template=True)
        assert resolve_format(lm, "letters") == "letters"
    assert lm.chat_template is True
    text = caplog.text
    assert "trained with chat_template=False; evaluating with chat_template=True" in text
    assert "trained with format='cloze'; evaluating with format='letters'" in text


def test_without_a_record_the_defaults_are_letters_and_the_chat_template(tmp_path):
    lm = load_eval_model("tiny-random-llama", lora_folder(tmp_path, None))
    assert lm.chat_template is True and resolve_format(lm, None) == "letters"
