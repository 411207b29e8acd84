"""lm-evaluation-harness bridge: the model class `trex`, scoring with this package's loglik and generate code.

    python -m trex.eval.lm_eval_model --model trex --model_args pretrained=smollm2-135m,adapter=PATH --tasks copa

(lm-eval finds models through its registry, filled on import; this module registers `trex` and then runs
lm-eval's own command line.) From Python, ``import trex.eval.lm_eval_model`` makes ``model="trex"`` available to
``lm_eval.simple_evaluate``, or pass ``TRexLM(eval_model=...)`` for a model already in memory.

Intuition is computed per request: from the document's ``intuition_text`` field when the task's documents carry
one (the requests written by ``trex eval --dump-requests`` do, so both harnesses route the same way), otherwise
from the request's context string. Contexts are scored verbatim: lm-eval's ``--apply_chat_template`` applies
the tokenizer's template before they reach this class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lm_eval.models  # noqa: F401  (registers lm-eval's own models before ours, so both are found)
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from trex.eval.generate import generate_batch
from trex.eval.lm import EvalModel
from trex.eval.loading import load_eval_model
from trex.eval.loglik import LoglikItem, score_continuations
from trex.pretrained import DEFAULT_MODEL

DEFAULT_GEN_TOKENS = 256
"""lm-eval's default `max_gen_toks`."""


def _intuition_text(request: Instance) -> str:
    doc = request.doc
    if isinstance(doc, dict) and isinstance(doc.get("intuition_text"), str):
        return doc["intuition_text"]
    return request.args[0]


def _task(request: Instance) -> str | None:
    """The trex task of a request (for the task-category prior): the document's ``task``, else lm-eval's task name."""
    doc = request.doc
    if isinstance(doc, dict) and isinstance(doc.get("task"), str):
        return doc["task"]
    return getattr(request, "task_name", None)


@register_model("trex")
class TRexLM(LM):
    """lm-eval model: a base model (`pretrained`) with an optional adapter folder of any method (`adapter`)."""

    def __init__(
        self,
        pretrained: str = DEFAULT_MODEL,
        adapter: str | None = None,
        batch_size: int | str = 8,
        max_length: int | None = None,
        eval_model: EvalModel | None = None,
        **_: Any,
    ) -> None:
        super().__init__()
        self.lm = eval_model or load_eval_model(pretrained, adapter, chat_template=False, max_length=max_length)
        self.batch_size = int(batch_size) if str(batch_size).isdigit() else 8  # "auto" is not supported: default

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.lm.tokenizer, "name_or_path", "")).replace("/", "__")

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.lm.tokenizer.apply_chat_template(
            chat_history, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """(log-probability, is greedy) of each (context, continuation) request, lm-eval's tokenisation."""
        items = [LoglikItem(r.args[0], [r.args[1]], _intuition_text(r), _task(r)) for r in requests]
        scores, _ = score_continuations(self.lm, items, self.batch_size)
        return [(s[0].logprob, s[0].greedy) for s in scores]

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        raise NotImplementedError(
            "trex does not score perplexity tasks (loglikelihood_rolling): T-REX routes each instance by its "
            "intuition, which a rolling window over a document has no single value of; use multiple-choice or "
            "generation tasks"
        )

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Greedy generations, cut at the request's `until` strings, batched per generation setting."""
        outputs: list[str] = [""] * len(requests)
        groups: dict[tuple[tuple[str, ...], int], list[int]] = {}
        for i, request in enumerate(requests):
            context, kwargs = request.args
            if kwargs.get("do_sample"):
                raise NotImplementedError("trex generates greedily; set do_sample=false in the task")
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            key = (tuple(until), int(kwargs.get("max_gen_toks", DEFAULT_GEN_TOKENS)))
            groups.setdefault(key, []).append(i)
        for (until, max_tokens), indices in groups.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                texts = generate_batch(
                    self.lm, [requests[i].args[0] for i in chunk], [_intuition_text(requests[i]) for i in chunk],
                    max_tokens, until, tasks=[_task(requests[i]) for i in chunk],
                )  # fmt: skip
                for i, text in zip(chunk, texts, strict=True):
                    outputs[i] = text
        return outputs


def main(argv: Sequence[str] | None = None) -> None:
    """lm-eval's command line with `--model trex` available."""
    import sys

    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()


if __name__ == "__main__":
    main()
