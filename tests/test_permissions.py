"""Every kind of file and folder trex writes gets the mode `open()` / `mkdir()` would give, never a private one.

safetensors' ``save_file``, ``mkstemp`` and ``mkdtemp`` all create 0600/0700 entries; on a shared machine
that hid adapters, banks, checkpoints and caches from the other users while the JSON beside them was readable.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import torch
from intuition.fakes import FakeEmbedder, make_corpus
from trex_testing import tiny_llama

from trex import TRexConfig, get_trex_model, pretrained
from trex.eval import EvalModel, evaluate
from trex.intuition import CachedEmbedder, fit_intuition_bank
from trex.io import DIR_MODE, FILE_MODE
from trex.train import checkpoint as ckpt


def modes(root: Path) -> dict[str, str]:
    """Entries under ``root`` (pytest makes it 0700) whose mode is not what open()/mkdir() give."""
    wrong = {}
    for path in root.rglob("*"):
        expected = DIR_MODE if path.is_dir() else FILE_MODE
        if stat.S_IMODE(path.stat().st_mode) != expected:
            wrong[str(path.relative_to(root))] = oct(stat.S_IMODE(path.stat().st_mode))
    return wrong


def test_the_modes_are_those_of_open_and_mkdir(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    (tmp_path / "folder").mkdir()
    assert modes(tmp_path) == {}


def test_adapter_with_its_bank(tmp_path: Path) -> None:
    texts, labels = make_corpus(per_topic=12)
    model = get_trex_model(tiny_llama(0), TRexConfig())
    model.attach_intuition_bank(fit_intuition_bank(texts, 32, embedder=FakeEmbedder(dim=64), labels=labels))
    model.save_pretrained(tmp_path / "adapter")
    assert {p.suffix for p in (tmp_path / "adapter").rglob("*.*")} == {".json", ".safetensors"}
    assert modes(tmp_path) == {}


def test_embedding_cache_shards(tmp_path: Path) -> None:
    CachedEmbedder(FakeEmbedder(), tmp_path / "cache", flush_every=2).embed(["a b", "c d", "e f"])
    assert len(list((tmp_path / "cache").rglob("shard-*.safetensors"))) == 2
    assert modes(tmp_path) == {}


def test_checkpoint_state(tmp_path: Path) -> None:
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([param])
    param.grad = torch.ones(3)
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    folder = tmp_path / "checkpoint-1"
    ckpt.begin_checkpoint(folder)
    ckpt.save_optimizer(optimizer, folder)
    ckpt.save_scheduler(scheduler, folder)
    ckpt.save_rng(folder, 0)
    ckpt.mark_complete(folder)
    assert len(list(folder.iterdir())) == 6
    assert modes(tmp_path) == {}


def test_evaluation_outputs(tmp_path: Path) -> None:
    lm = EvalModel.wrap(*pretrained.tiny_random_llama(), "tiny", max_length=400)
    evaluate(lm, ["copa"], scoring="loglik", limit=2, output_dir=tmp_path / "eval", dump_requests=tmp_path / "r.jsonl")
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["predictions.jsonl", "results.json", "table.md"]
    assert modes(tmp_path) == {}


def test_converted_smollm2_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GGUF conversion is replaced by the tiny model; what is checked is how the cache folder is written."""
    monkeypatch.setenv("TREX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(pretrained, "smollm2_gguf", lambda: tmp_path / "package" / "model.gguf")
    monkeypatch.setattr(pretrained.AutoTokenizer, "from_pretrained", lambda *a, **k: pretrained.byte_tokenizer())
    monkeypatch.setattr(
        pretrained.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: pretrained.tiny_random_llama()[0]
    )
    folder = pretrained.smollm2_folder()
    assert json.loads((folder / "config.json").read_text())["hidden_size"] == 64
    assert list(folder.glob("*.safetensors"))
    assert modes(tmp_path) == {}
