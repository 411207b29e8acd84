"""Real-model checks on SmolLM2-135M (slow): loglik against plain forwards, and generate reading real letters."""

from __future__ import annotations

import pytest
import torch

from trex.eval import encode_pair, evaluate, load_eval_model
from trex.eval.requests import build_requests

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    try:
        return load_eval_model("smollm2-135m")
    except FileNotFoundError as err:
        pytest.skip(str(err))


def test_loglik_matches_plain_forward(smollm2) -> None:
    from trex.data import load_task
    from trex.eval.scoring import score_loglik

    requests = build_requests("copa", load_task("copa", "eval", limit=4), "cloze", smollm2.tokenizer, True, 8192)
    rows, _ = score_loglik(smollm2, requests.requests, batch_size=4)
    for request, row in zip(requests.requests, rows, strict=True):
        for option, score in zip(request.options, row["scores"], strict=True):
            context, continuation = encode_pair(smollm2.tokenizer, request.prompt, option)
            with torch.no_grad():
                logits = smollm2.model(input_ids=torch.tensor([context + continuation])).logits[0]
            logp = torch.log_softmax(logits.double(), -1)
            expected = sum(float(logp[len(context) - 1 + i, t]) for i, t in enumerate(continuation))
            assert score == pytest.approx(expected, abs=2e-3)


def test_generate_reads_letters(smollm2, tmp_path) -> None:
    run = evaluate(smollm2, ["copa", "mmlu"], scoring="generate", limit=8, output_dir=tmp_path)
    for result in run.results.values():
        assert result.n == 8 and result.unreadable < 8  # the instruct model answers with letters
