"""lm-evaluation-harness: its `hf` model on our dumped requests agrees with our loglik scoring, and the `trex`
model class runs inside `simple_evaluate` with intuition per request."""

from __future__ import annotations

import json

import pytest
from trex_testing import tiny_llama

from trex.eval import EvalModel, evaluate
from trex.model import TRexModel

lm_eval = pytest.importorskip("lm_eval")


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))


def dumped_task(path) -> dict:
    """An lm-eval task over `--dump-requests` lines: context = prompt, choices = our continuations as they are."""
    return {
        "task": "trex_dumped", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(path)}},
        "test_split": "test", "output_type": "multiple_choice", "doc_to_text": "{{prompt}}",
        "doc_to_choice": "{{options}}", "doc_to_target": "{{gold}}", "target_delimiter": "",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                        {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}],
    }  # fmt: skip


def _ours(run) -> tuple[float, float]:
    n = sum(r.n for r in run.results.values())
    return (sum(r.correct for r in run.results.values()) / n, sum(r.correct_norm for r in run.results.values()) / n)


def test_our_loglik_equals_lm_eval_hf_on_dumped_requests(tiny, tokenizer, tmp_path) -> None:
    from lm_eval.models.huggingface import HFLM

    lm = EvalModel.wrap(tiny, tokenizer, "tiny", chat_template=False)
    dump = tmp_path / "requests.jsonl"
    run = evaluate(lm, ["copa", "siqa", "hellaswag"], scoring="loglik", fmt="cloze", limit=8, output_dir=tmp_path,
                   dump_requests=dump)  # fmt: skip
    hf = HFLM(pretrained=tiny, tokenizer=tokenizer, batch_size=4)
    out = lm_eval.simple_evaluate(model=hf, tasks=[dumped_task(dump)], log_samples=True)
    metrics = out["results"]["trex_dumped"]
    assert (metrics["acc,none"], metrics["acc_norm,none"]) == pytest.approx(_ours(run), abs=1e-12)
    ours = {(p["task"], p["uid"]): p["scores"]
            for p in map(json.loads, (tmp_path / "predictions.jsonl").read_text().splitlines())}  # fmt: skip
    for sample in out["samples"]["trex_dumped"]:
        theirs = [resp[0][0] for resp in sample["resps"]]
        assert theirs == pytest.approx(ours[(sample["doc"]["task"], sample["doc"]["uid"])], rel=1e-5, abs=1e-4)


def test_trex_model_class_in_simple_evaluate(tokenizer, adapter_dir, fixed_bank, tmp_path) -> None:
    from lm_eval.api.registry import get_model

    from trex.eval.lm_eval_model import TRexLM

    assert get_model("trex") is TRexLM
    model = TRexModel.from_pretrained(tiny_llama(0), adapter_dir)
    model.attach_intuition_bank(fixed_bank(model.trex_config.intuition_width))
    lm = EvalModel.wrap(model, tokenizer, "tiny", str(adapter_dir), chat_template=False)
    dump = tmp_path / "requests.jsonl"
    run = evaluate(lm, ["copa", "anli"], scoring="loglik", limit=6, dump_requests=dump)
    out = lm_eval.simple_evaluate(model=TRexLM(eval_model=lm, batch_size=3), tasks=[dumped_task(dump)])
    metrics = out["results"]["trex_dumped"]
    assert (metrics["acc,none"], metrics["acc_norm,none"]) == pytest.approx(_ours(run), abs=1e-12)


def test_trex_model_class_generate_until_and_rolling(tiny, tokenizer) -> None:
    from lm_eval.api.instance import Instance

    from trex.eval.generate import generate_batch
    from trex.eval.lm_eval_model import TRexLM

    lm = EvalModel.wrap(tiny, tokenizer, "tiny", chat_template=False)
    bridge = TRexLM(eval_model=lm, batch_size=2)
    prompts = ["Q?\nAnswer:", "Another question\nAnswer:", "Third\nAnswer:"]
    requests = [Instance("generate_until", {}, (p, {"until": ["\n\n"], "max_gen_toks": 3}), i)
                for i, p in enumerate(prompts)]  # fmt: skip
    assert bridge.generate_until(requests) == generate_batch(lm, prompts, prompts, 3, ["\n\n"])
    with pytest.raises(NotImplementedError, match="loglikelihood_rolling"):
        bridge.loglikelihood_rolling(requests)
