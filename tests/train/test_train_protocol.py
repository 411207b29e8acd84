"""The protocol settings a recipe controls: the embedder's options, the clustering sample, and the record of the
prompt settings an adapter was trained with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trex.intuition import IntuitionBank
from trex.intuition.embedder import default_embedder_path
from trex.intuition.inputs import cap_per_label
from trex.train.recipe import load_recipe
from trex.train.run import TRAINING_RECORD, run_training

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "tiny-cpu.yaml"


@pytest.fixture(scope="module")
def nomic_standin(tmp_path_factory) -> Path:
    """A local folder named like nomic-embed-text-v1 (MiniLM's files inside): nothing in the tests needs the hub."""
    folder = tmp_path_factory.mktemp("models") / "nomic-embed-text-v1"
    source = default_embedder_path()
    for item in source.iterdir():
        (folder / item.name).parent.mkdir(parents=True, exist_ok=True)
        (folder / item.name).symlink_to(item, target_is_directory=item.is_dir())
    return folder


def train(tmp_path: Path, name: str, *overrides: str):
    recipe = load_recipe(
        RECIPE,
        [f"output_dir={tmp_path / name}", f"intuition.cache_dir={tmp_path / 'cache'}", "training.max_steps=1",
         "training.save_steps=1", *overrides],
    )  # fmt: skip
    return run_training(recipe)


def test_authors_embedder_settings_from_the_recipe(tmp_path, nomic_standin):
    """No prefix and 512-token truncation (the reference code's nomic settings) are recipe keys, and a bank
    fitted with them is used by a recipe that names the same settings, refused by one that does not."""
    authors = [f"intuition.embedder={nomic_standin}", "intuition.prefix=''", "intuition.max_seq_length=512"]
    result = train(tmp_path, "authors", *authors)
    bank = IntuitionBank.load(result.run_dir / "intuition_bank", embedder=None)
    assert bank.embedder_id == "nomic-embed-text-v1|max_seq_length=512"  # no prefix part: the prefix is empty
    reuse = [f"intuition.bank={result.run_dir / 'intuition_bank'}"]
    assert train(tmp_path, "reuse", *authors, *reuse).steps == 1
    with pytest.raises(ValueError, match="embedder mismatch"):  # default nomic prefix 'clustering: ', no truncation
        train(tmp_path, "mismatch", f"intuition.embedder={nomic_standin}", *reuse)


def test_adapter_records_its_prompt_settings(tmp_path):
    result = train(tmp_path, "run", "data.format=cloze", "data.chat_template=false", "data.max_length=200")
    record = json.loads((result.adapter_dir / TRAINING_RECORD).read_text())
    assert record["format"] == "cloze" and record["chat_template"] is False and record["max_length"] == 200
    assert record["tasks"] == ["copa", "boolq", "piqa"]


def test_cap_per_label_is_a_seeded_sample_per_task():
    texts = [f"{task}-{i}" for task in ("a", "b") for i in range(10)] + ["c-0"]
    labels = [t.split("-")[0] for t in texts]
    kept, kept_labels = cap_per_label(texts, labels, 3, seed=0)
    assert kept_labels == ["a"] * 3 + ["b"] * 3 + ["c"]
    assert all(t.startswith(label) for t, label in zip(kept, kept_labels, strict=True))
    assert kept == cap_per_label(texts, labels, 3, seed=0)[0]
    assert kept != cap_per_label(texts, labels, 3, seed=1)[0]  # another seed, another sample
    alone = cap_per_label(texts[:10], labels[:10], 3, seed=0)[0]
    assert alone == kept[:3]  # adding task b changes nothing of task a's sample
    assert cap_per_label(texts, labels, None) == (texts, labels)
    with pytest.raises(ValueError, match="per-task cap must be >= 1, got 0"):
        cap_per_label(texts, labels, 0)
