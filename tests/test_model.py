"""Behavioural invariants of TRexModel on tiny random Llama models."""

from __future__ import annotations

import json

import pytest
import torch
from trex_testing import VOCAB, randomize_adapter, tiny_llama

from trex import TRexConfig, TRexModel, get_trex_model
from trex.config import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME


def make(seed: int = 0, randomize: bool = True, **kwargs) -> TRexModel:
    model = get_trex_model(tiny_llama(seed), TRexConfig(**kwargs))
    if randomize:
        randomize_adapter(model)
    return model


def batch(n: int = 3, length: int = 9, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


def intuition(n: int = 3, width: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, width, generator=torch.Generator().manual_seed(seed))


def test_default_targets_every_linear_but_the_head():
    model = make(randomize=False)
    kinds = {name.rsplit(".", 1)[-1] for name in model.adapted_modules}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert len(model.adapted_modules) == 14
    assert not any("lm_head" in name for name in model.adapted_modules)


def test_target_modules_by_name_and_by_regex():
    assert len(make(randomize=False, target_modules=["q_proj", "v_proj"]).adapted_modules) == 4
    assert len(make(randomize=False, target_modules=r".*layers\.1\.mlp\..*").adapted_modules) == 3
    with pytest.raises(ValueError, match=r"matches no nn.Linear of LlamaForCausalLM; its linear layers are \["):
        make(randomize=False, target_modules=["fc1"])
    with pytest.raises(ValueError, match=r"target_modules \['fc1'\] match no nn.Linear"):
        make(randomize=False, target_modules=["q_proj", "fc1"])


@pytest.mark.parametrize("preset", ["paper", "clean"])
def test_init_is_the_base_model_and_disable_adapter_is_exact(preset):
    ids, s = batch(), intuition()
    reference = tiny_llama(0)(ids).logits
    model = make(randomize=False, preset=preset)
    torch.testing.assert_close(model(input_ids=ids, intuition=s).logits, reference, rtol=0, atol=0)
    randomize_adapter(model)
    assert (model(input_ids=ids, intuition=s).logits - reference).abs().max() > 1e-3
    with model.disable_adapter():
        torch.testing.assert_close(model(input_ids=ids).logits, reference, rtol=0, atol=0)
    assert not model.routing.disabled and model.routing.intuition is None


def test_only_adapter_parameters_change_when_training():
    model = make(randomize=False)
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = batch()
    for _ in range(3):
        loss = model(input_ids=ids, labels=ids, intuition=intuition()).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("trex_" in n for n in changed)
    assert any(n.endswith("trex_B") for n in changed) and any(n.endswith("trex_router.weight") for n in changed)
    frozen = [n for n, p in model.named_parameters() if "trex_" not in n]
    assert frozen and not any(model.get_parameter(n).requires_grad for n in frozen)


def test_intuition_is_not_left_behind_between_calls():
    model = make()
    ids = batch()
    model(input_ids=ids, intuition=intuition())
    assert model.routing.intuition is None
    with pytest.raises(ValueError, match=r"routes with intuition: pass intuition=Tensor\[batch, 32\]"):
        model(input_ids=ids)


def test_bad_intuition_inputs_get_clear_errors():
    model = make()
    ids = batch(n=3)
    with pytest.raises(ValueError, match=r"intuition must have shape \(batch, 32\), got \(3, 16\)"):
        model(input_ids=ids, intuition=intuition(3, 16))
    with pytest.raises(ValueError, match="intuition has 2 rows but the batch has 3 instances"):
        model(input_ids=ids, intuition=intuition(2))
    with pytest.raises(ValueError, match="intuition_text needs an intuition bank"):
        model(input_ids=ids, intuition_text=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"no per-instance input \(built without intuition\); do not pass intuition"):
        make(use_intuition=False)(input_ids=ids, intuition=intuition())


def test_token_only_ablation_needs_no_intuition():
    model = make(use_intuition=False)
    assert model(input_ids=batch()).logits.shape == (3, 9, VOCAB)


def test_intuition_changes_the_output_per_instance():
    model = make()
    ids = batch(n=2)
    s = intuition(2)
    swapped = s.flip(0)
    a, b = model(input_ids=ids, intuition=s).logits, model(input_ids=ids, intuition=swapped).logits
    assert (a - b).abs().max() > 1e-4
    # rows are independent: instance 0 with its own intuition gives the same logits alone as in the batch
    alone = model(input_ids=ids[:1], intuition=s[:1]).logits
    torch.testing.assert_close(alone, a[:1], rtol=1e-5, atol=1e-5)


def test_save_reseed_load_gives_identical_logits(tmp_path):
    model = make(preset="clean", n_clusters=5, intuition_mapping=True)
    ids, s = batch(), intuition(width=5)
    expected = model(input_ids=ids, intuition=s).logits
    model.save_pretrained(tmp_path)
    assert (tmp_path / ADAPTER_CONFIG_NAME).is_file() and (tmp_path / ADAPTER_WEIGHTS_NAME).is_file()
    saved = json.loads((tmp_path / ADAPTER_CONFIG_NAME).read_text())
    assert saved["peft_type"] == "TREX" and saved["n_clusters"] == 5 and saved["preset"] == "clean"
    torch.manual_seed(1234)
    loaded = TRexModel.from_pretrained(tiny_llama(0), tmp_path)
    torch.testing.assert_close(loaded(input_ids=ids, intuition=s).logits, expected, rtol=0, atol=0)
    assert not any(p.requires_grad for p in loaded.parameters())
    trainable = TRexModel.from_pretrained(tiny_llama(0), tmp_path, is_trainable=True)
    assert trainable.parameter_counts()[0] == model.parameter_counts()[0]


def test_loading_onto_another_base_names_module_and_sizes(tmp_path):
    make().save_pretrained(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"module 'model\.layers\.0\.self_attn\.q_proj' has trex_A of shape \(4, 64\) "
        r"in the adapter but \(4, 32\) on this base model",
    ):
        TRexModel.from_pretrained(tiny_llama(0, hidden=32), tmp_path)


def test_loading_an_adapter_with_unknown_modules_names_one(tmp_path):
    get_trex_model(tiny_llama(0, layers=3), TRexConfig()).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"does not adapt, e\.g\. module 'model\.layers\.2\.mlp\.down_proj'"):
        TRexModel.from_pretrained(tiny_llama(0), tmp_path)


def test_truncated_or_mismatched_files_are_refused(tmp_path):
    make().save_pretrained(tmp_path)
    weights = tmp_path / ADAPTER_WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="does not match the checksum in adapter_config.json"):
        TRexModel.from_pretrained(tiny_llama(0), tmp_path)
    (tmp_path / ADAPTER_CONFIG_NAME).write_text("{ not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        TRexModel.from_pretrained(tiny_llama(0), tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TRexModel.from_pretrained(tiny_llama(0), tmp_path / "nowhere")


def test_corrupt_safetensors_gets_a_clear_error(tmp_path):
    from trex.io import load_tensors

    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")
    with pytest.raises(ValueError, match="bad.safetensors is corrupt or truncated"):
        load_tensors(path)


def test_interrupted_save_keeps_the_previous_adapter_loadable(tmp_path, monkeypatch):
    model = make()
    model.save_pretrained(tmp_path)
    ids, s = batch(), intuition()
    expected = model(input_ids=ids, intuition=s).logits
    randomize_adapter(model, seed=7)
    import trex.methods.base as trex_model

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trex_model, "atomic_write", crash)  # dies after the weights, before the config
    with pytest.raises(KeyboardInterrupt):
        model.save_pretrained(tmp_path)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="the save was interrupted"):
        TRexModel.from_pretrained(tiny_llama(0), tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))
    model2 = make()
    model2.save_pretrained(tmp_path)
    loaded = TRexModel.from_pretrained(tiny_llama(0), tmp_path)
    torch.testing.assert_close(loaded(input_ids=ids, intuition=s).logits, expected, rtol=0, atol=0)


def test_merge_and_unload_refuses_with_a_reason():
    with pytest.raises(NotImplementedError, match="depends on each token"):
        make().merge_and_unload()


def test_meta_device_models_report_parameter_counts():
    with torch.device("meta"):
        base = tiny_llama(0)
    model = get_trex_model(base, TRexConfig())
    trainable, total = model.parameter_counts()
    d, ff, layers = 64, 128, 2
    per_layer = sum(
        4 * d_in + 8 * d_out + 32 * d_in + 2
        for d_in, d_out in [(d, d), (d, 32), (d, 32), (d, d), (d, ff), (d, ff), (ff, d)]
    )
    assert trainable == layers * per_layer
    assert total == trainable + sum(p.numel() for p in tiny_llama(0).parameters())
    with pytest.raises(ValueError, match="meta device"):
        model.save_pretrained("unused")


def left_padded(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = r
        mask[i, width - len(r) :] = 1
    return ids, mask


def test_generate_batched_with_padding_equals_row_by_row():
    model = make().double()
    prompts = [batch(1, n, seed=n)[0] for n in (5, 9, 7)]
    s = intuition(3).double()
    ids, mask = left_padded(prompts)
    together = model.generate(input_ids=ids, attention_mask=mask, intuition=s, max_new_tokens=6, do_sample=False)
    for i, prompt in enumerate(prompts):
        alone = model.generate(input_ids=prompt[None], intuition=s[i : i + 1], max_new_tokens=6, do_sample=False)
        assert torch.equal(together[i, -6:], alone[0, -6:])


def test_generate_with_kv_cache_matches_without():
    model = make().double()
    ids, s = batch(2), intuition(2).double()
    cached = model.generate(input_ids=ids, intuition=s, max_new_tokens=6, do_sample=False, use_cache=True)
    uncached = model.generate(input_ids=ids, intuition=s, max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


def test_beams_and_return_sequences_follow_each_instance():
    model = make().double()
    ids, s = batch(2), intuition(2).double()
    kwargs = dict(max_new_tokens=5, num_beams=3, num_return_sequences=2, do_sample=False)
    together = model.generate(input_ids=ids, intuition=s, **kwargs)
    assert together.shape == (4, 9 + 5)
    for i in range(2):
        alone = model.generate(input_ids=ids[i : i + 1], intuition=s[i : i + 1], **kwargs)
        assert torch.equal(together[2 * i : 2 * i + 2], alone)
    sampled = model.generate(input_ids=ids, intuition=s, max_new_tokens=3, do_sample=True, num_return_sequences=3)
    assert sampled.shape == (6, 12)


def test_gradient_checkpointing_recomputes_with_the_right_intuition():
    ids = batch(2)
    grads = []
    for checkpointing in (False, True):
        model = make()
        model.train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        # two forwards before one backward: the recomputation of the first must not see the second's intuition
        loss = model(input_ids=ids, labels=ids, intuition=intuition(2, seed=1)).loss
        loss = loss + model(input_ids=ids, labels=ids, intuition=intuition(2, seed=2)).loss
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="non-reentrant"):
        make().gradient_checkpointing_enable({"use_reentrant": True})


def test_default_targets_on_phi_are_its_linear_layers():
    from transformers import PhiConfig, PhiForCausalLM

    config = PhiConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=100
    )
    model = get_trex_model(PhiForCausalLM(config), TRexConfig())
    assert {name.rsplit(".", 1)[-1] for name in model.adapted_modules} == {
        "q_proj",
        "k_proj",
        "v_proj",
        "dense",
        "fc1",
        "fc2",
    }


def test_whole_model_under_bf16_autocast_stays_close():
    model = make()
    ids, s = batch(), intuition()
    reference = model(input_ids=ids, intuition=s).logits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(input_ids=ids, intuition=s).logits
    assert (low.float() - reference).abs().max() < 0.1 * reference.abs().max()


def fitted_bank(n_clusters: int = 32):
    from intuition.fakes import FakeEmbedder, make_corpus

    from trex.intuition import fit_intuition_bank

    texts, labels = make_corpus(per_topic=12)
    return fit_intuition_bank(texts, n_clusters, embedder=FakeEmbedder(dim=64), labels=labels), texts


def test_bank_is_saved_inside_the_adapter_and_routes_raw_text(tmp_path):
    from intuition.fakes import FakeEmbedder

    from trex.intuition import IntuitionBank

    bank, texts = fitted_bank()
    model = make()
    model.attach_intuition_bank(bank)
    ids = batch(n=2)
    prompts = texts[:2]
    by_text = model(input_ids=ids, intuition_text=prompts).logits
    by_vector = model(input_ids=ids, intuition=bank.score(prompts)).logits
    torch.testing.assert_close(by_text, by_vector, rtol=0, atol=0)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "intuition").is_dir()
    loaded = TRexModel.from_pretrained(tiny_llama(0), tmp_path)
    torch.testing.assert_close(loaded.intuition_bank.centroids, bank.centroids, rtol=0, atol=0)
    loaded.intuition_bank = IntuitionBank.load(tmp_path / "intuition", embedder=FakeEmbedder(dim=64))
    torch.testing.assert_close(loaded(input_ids=ids, intuition_text=prompts).logits, by_text, rtol=0, atol=0)
    generated = loaded.generate(input_ids=ids, intuition_text=prompts, max_new_tokens=4, do_sample=False)
    expected = loaded.generate(input_ids=ids, intuition=bank.score(prompts), max_new_tokens=4, do_sample=False)
    assert torch.equal(generated, expected)


def test_a_bank_of_the_wrong_width_is_refused():
    bank, _ = fitted_bank(n_clusters=8)
    with pytest.raises(ValueError, match="the intuition bank has 8 clusters but this adapter expects intuition of"):
        make().attach_intuition_bank(bank)


def test_saving_without_a_bank_removes_a_stale_one(tmp_path):
    bank, _ = fitted_bank()
    model = make()
    model.attach_intuition_bank(bank)
    model.save_pretrained(tmp_path)
    model.intuition_bank = None
    model.save_pretrained(tmp_path)
    assert not (tmp_path / "intuition").exists()
    assert TRexModel.from_pretrained(tiny_llama(0), tmp_path).intuition_bank is None
