"""A bank inside someone else's adapter is data: it never decides what code runs or where a model loads from.

The payload below is a real attack: a folder whose ``config.json`` maps to a local ``.py`` that writes a
marker file when imported. Before the fix, an edited bank naming that folder with ``trust_remote_code``
made loading and scoring import it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from intuition.fakes import FakeEmbedder, make_corpus
from trex_testing import tiny_llama

from trex import TRexConfig, TRexModel, get_trex_model
from trex.intuition import DEFAULT_EMBEDDER_ID, IntuitionBank, fit_intuition_bank
from trex.intuition import bank as bank_module
from trex.intuition.bank import METADATA_FILE
from trex.io import sha256_file

N_CLUSTERS = 32


def make_payload(tmp_path: Path) -> tuple[Path, Path]:
    """A model folder whose code writes ``marker`` on import; returns (folder, marker)."""
    folder, marker = tmp_path / "evil-embedder", tmp_path / "PAYLOAD_RAN"
    folder.mkdir()
    auto_map = {"AutoConfig": "payload.EvilConfig", "AutoModel": "payload.EvilModel"}
    (folder / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": auto_map}))
    (folder / "payload.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n")
    return folder, marker


def edit_bank(bank_dir: Path, payload: Path, embedder_id: str) -> None:
    """What an attacker ships: the bank's embedder recipe points at the payload and turns remote code on."""
    meta = json.loads((bank_dir / METADATA_FILE).read_text())
    meta["embedder_id"] = embedder_id
    meta["embedder_config"] = {
        "kind": "sentence-transformers",
        "path": str(payload),
        "prefix": "",
        "trust_remote_code": True,
        "base_id": embedder_id,
    }
    (bank_dir / METADATA_FILE).write_text(json.dumps(meta))


def saved_bank(tmp_path: Path, dim: int = 64) -> tuple[Path, list[str]]:
    texts, labels = make_corpus(per_topic=12)
    bank = fit_intuition_bank(texts, N_CLUSTERS, embedder=FakeEmbedder(dim=dim), labels=labels)
    return bank.save(tmp_path / "bank"), texts


def test_an_edited_bank_never_imports_the_folder_it_names(tmp_path: Path) -> None:
    payload, marker = make_payload(tmp_path)
    bank_dir, texts = saved_bank(tmp_path)
    edit_bank(bank_dir, payload, embedder_id=payload.name)
    bank = IntuitionBank.load(bank_dir)
    with pytest.raises(ValueError, match="never loads a model from a folder it names: pass embedder="):
        bank.score(texts[:2])
    with pytest.raises(ValueError, match="embedder mismatch"):
        IntuitionBank.load(bank_dir, embedder=FakeEmbedder(dim=64))
    assert not marker.exists()


def test_an_edited_adapter_never_imports_the_folder_its_bank_names(tmp_path: Path) -> None:
    """The route of `trex eval --adapter X`: load the adapter, route raw prompts through its bank."""
    payload, marker = make_payload(tmp_path)
    texts, labels = make_corpus(per_topic=12)
    model = get_trex_model(tiny_llama(0), TRexConfig())
    model.attach_intuition_bank(fit_intuition_bank(texts, N_CLUSTERS, embedder=FakeEmbedder(dim=64), labels=labels))
    adapter = tmp_path / "adapter"
    model.save_pretrained(adapter)
    edit_bank(adapter / "intuition", payload, embedder_id=payload.name)
    config = json.loads((adapter / "adapter_config.json").read_text())  # checksums are the attacker's to write
    config["files"] = {name: sha256_file(adapter / name) for name in config["files"]}
    (adapter / "adapter_config.json").write_text(json.dumps(config))

    loaded = TRexModel.from_pretrained(tiny_llama(0), adapter)
    with pytest.raises(ValueError, match="pass embedder="):
        loaded(input_ids=torch.tensor([[5, 6, 7]]), intuition_text=texts[:1])
    assert not marker.exists()


def test_a_bank_claiming_the_default_embedder_gets_the_packaged_one(tmp_path: Path) -> None:
    """Naming the default's id while pointing at a payload builds the packaged model, nothing else."""
    payload, marker = make_payload(tmp_path)
    texts, labels = make_corpus(per_topic=12)
    bank = fit_intuition_bank(texts, 4, embedder=FakeEmbedder(dim=384), labels=labels)
    bank_dir = bank.save(tmp_path / "bank")
    edit_bank(bank_dir, payload, embedder_id=DEFAULT_EMBEDDER_ID)
    loaded = IntuitionBank.load(bank_dir)
    assert loaded.score(["Is the sky blue?"]).shape == (1, 4)
    assert loaded.get_embedder().embedder_id == DEFAULT_EMBEDDER_ID
    assert not marker.exists()


def test_banks_of_the_current_release_rebuild_only_the_packaged_default(tmp_path: Path, monkeypatch) -> None:
    """A 0.1 bank of the default embedder recorded path None; the rebuild gets no folder and no remote code."""
    built: list[dict] = []

    class Recorder(FakeEmbedder):
        def __init__(self, *args, **kwargs) -> None:
            built.append({"args": args, **kwargs})
            super().__init__(dim=64, embedder_id=DEFAULT_EMBEDDER_ID)

    monkeypatch.setattr(bank_module, "SentenceTransformerEmbedder", Recorder)
    bank_dir, texts = saved_bank(tmp_path)
    meta = json.loads((bank_dir / METADATA_FILE).read_text())
    meta["embedder_id"] = DEFAULT_EMBEDDER_ID
    meta["embedder_config"] = {"kind": "sentence-transformers", "path": None, "prefix": "", "trust_remote_code": False,
                               "base_id": DEFAULT_EMBEDDER_ID}  # fmt: skip
    (bank_dir / METADATA_FILE).write_text(json.dumps(meta))
    assert IntuitionBank.load(bank_dir).score(texts[:2]).shape == (2, N_CLUSTERS)
    assert built == [{"args": (), "prefix": ""}]


@pytest.mark.parametrize("fixture", ["paper-grid", "clean-diagonal-mapped"])
def test_legacy_banks_load_and_ask_for_their_embedder(fixture: str) -> None:
    bank_dir = Path(__file__).parent / "fixtures" / "legacy-0.1.0" / fixture / "intuition"
    with pytest.raises(ValueError, match="'fake-hash-32', not the packaged default"):
        IntuitionBank.load(bank_dir).score(["x"])
    assert IntuitionBank.load(bank_dir, embedder=FakeEmbedder(dim=32)).score(["x"]).shape[0] == 1


def test_a_reused_bank_is_saved_without_the_old_loading_instructions(tmp_path: Path) -> None:
    """Training with someone else's bank must not copy their folder path or trust_remote_code forward."""
    payload, _ = make_payload(tmp_path)
    bank_dir, _ = saved_bank(tmp_path)
    edit_bank(bank_dir, payload, embedder_id="fake-hash-64")
    IntuitionBank.load(bank_dir, embedder=FakeEmbedder(dim=64)).save(tmp_path / "run" / "intuition")
    saved = json.loads((tmp_path / "run" / "intuition" / METADATA_FILE).read_text())
    assert saved["embedder_config"] == {"kind": "sentence-transformers", "prefix": "", "base_id": "fake-hash-64"}
    assert "trust_remote_code" not in json.dumps(saved) and str(payload) not in json.dumps(saved)
