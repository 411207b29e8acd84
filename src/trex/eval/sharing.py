"""Which instances can run the start of their prompts once, together.

MultiRC asks about twenty questions, each with several candidate answers, on one paragraph, and makes each
(question, answer) an instance: the first 200 instances of its validation split repeat 6 paragraphs, so a
scorer that runs every prompt in full runs the same paragraph ~34 times, and MultiRC alone took about half of
a comparison unit's evaluation. Consecutive instances whose prompts start with the same long run of tokens
(the paragraph) share one forward of it and its KV cache; only what follows is run per instance.

Sharing is exact only when the shared tokens' hidden states are the same for every instance, i.e. when the
instances' per-instance inputs are equal: always for a base model or LoRA (none), per task for the
task-category prior, and for T-REX's intuition only between instances with the same intuition text (MultiRC's
intuition embeds the candidate answer, so T-REX runs each paragraph in full, as its routing requires).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

from trex.eval.lm import EvalModel

MIN_SHARED_TOKENS = 64
"""Shorter common starts (a chat template's system prompt, a task's instruction) are not worth a separate pass."""


def prior_inputs(
    lm: EvalModel, texts: Sequence[str], tasks: Sequence[str | None]
) -> tuple[dict[str, torch.Tensor], list[Hashable]]:
    """Every instance's per-instance inputs (computed once; one row each) and a key per instance that is equal
    exactly when two instances' rows are equal (None for all when the model takes no per-instance inputs)."""
    inputs = lm.extra_inputs(texts, tasks) if texts else {}
    if not inputs:
        return {}, [None] * len(texts)
    names = sorted(inputs)
    keys = [tuple(inputs[name][i].detach().cpu().numpy().tobytes() for name in names) for i in range(len(texts))]
    return inputs, keys


def shared_start(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest start that every token row has in common."""
    n = min(len(r) for r in rows)
    first = rows[0]
    for i in range(n):
        if any(r[i] != first[i] for r in rows[1:]):
            return i
    return n


def sharing_groups(
    rows: Sequence[Sequence[int]],
    keys: Sequence[Hashable],
    shareable: Sequence[bool] | None = None,
    min_tokens: int = MIN_SHARED_TOKENS,
) -> list[tuple[list[int], int]]:
    """Consecutive instances that share the start of their token rows: (indices, shared length) per group.

    An instance joins the group before it when their keys are equal and the tokens all members share are at
    least ``min_tokens`` and at least half of every member's row (the shared part is what is saved; the rest
    runs per instance); every member keeps at least one token of its own. Instances marked not ``shareable``
    (left-truncated ones) stay alone; a group of one has shared length 0.
    """
    groups: list[tuple[list[int], int]] = []
    members: list[int] = []
    shared = 0
    for i, row in enumerate(rows):
        if members and (shareable is None or shareable[i]) and keys[i] == keys[members[0]]:
            first = rows[members[0]]
            common = min(shared_start([first, row]), shared or len(first), len(row) - 1, len(first) - 1)
            if common >= min_tokens and 2 * common >= max(len(rows[m]) for m in (*members, i)):
                members.append(i)
                shared = common
                continue
        if members:
            groups.append((members, shared))
        members, shared = [i], 0
        if shareable is not None and not shareable[i]:
            groups.append((members, 0))
            members = []
    if members:
        groups.append((members, shared))
    return groups
