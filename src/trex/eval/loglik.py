"""Log-likelihood of option continuations, with lm-evaluation-harness' tokenisation and the prompt run once.

Tokenisation (the conventions of lm-eval 0.4, see ../shared/research/lm-eval-conventions.md): trailing
whitespace of the context moves into the continuation; the context is encoded alone, and the continuation is
the tokens of ``encode(context + continuation)`` after the first ``len(encode(context))`` (so when a token
merges across the boundary, the model sees the context's own tokens and is scored on what follows the merge);
special tokens follow the tokenizer's default unless the string already starts with BOS; an empty context is
conditioned on BOS (EOS without BOS); inputs longer than the context window lose tokens from the left.

Speed: the options of one instance share their prompt, so the prompt is run once (left-padded batch, KV cache
kept) and only the option tokens are run, against that cache gathered once per option row (one batched
``index_select`` per layer); when every option is one token (the letters format) the prompt's last position
already scores them all and no second pass runs. Items are batched by prompt length (then by their longest option),
on the CPU cut where prompt lengths jump, and the option rows of a batch are split into groups of similar length
(``_length_groups``) so that a short option is not padded to the longest one of the batch. A token's log-probability
is its logit minus the log-sum-exp of its position (no vocabulary-wide log-softmax is written out). Consecutive items
whose prompts start with the same passage (MultiRC's questions on one paragraph) run it once, one cache row
copied to each batch after it (``trex.eval.sharing`` says when that is exact). Without sharing (for benchmarks)
each option is its own item and pays for its own prompt.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from trex.eval.lm import EvalModel, select_rows
from trex.eval.progress import progress
from trex.eval.sharing import prior_inputs, shared_start, sharing_groups


@dataclass(frozen=True)
class LoglikItem:
    """One instance to score: a context, its option continuations, and what its per-instance prior comes from
    (the text T-REX's intuition embeds; the task, for the task-category prior)."""

    context: str
    continuations: list[str]
    intuition_text: str
    task: str | None = None


@dataclass(frozen=True)
class OptionScore:
    """Summed log-probability of a continuation and whether greedy decoding would have produced it."""

    logprob: float
    greedy: bool


def encode_text(tokenizer, text: str) -> list[int]:
    """Token ids of a prompt: the tokenizer's default special tokens, none when the text already starts with BOS
    (a chat template that writes its own); the same rule for scoring options and for generation."""
    bos = tokenizer.bos_token
    special = not (bos is not None and text.startswith(bos))
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context tokens, continuation tokens) exactly as lm-evaluation-harness splits them."""
    if not context:
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        return [prefix], list(tokenizer(continuation, add_special_tokens=False)["input_ids"])
    stripped = context.rstrip()
    continuation = context[len(stripped) :] + continuation
    whole = encode_text(tokenizer, stripped + continuation)
    context_ids = encode_text(tokenizer, stripped)
    return context_ids, whole[len(context_ids) :]


@dataclass
class _Prepared:
    """Token lists to run together: one shared prefix, then per option row the remaining tokens, how many of
    them are scored, and whose option the row is ((item, option) pairs; several items when they share a
    passage, see ``trex.eval.sharing``)."""

    prefix: list[int]
    rests: list[list[int]]
    n_scored: list[int]
    options: list[tuple[int, int]]

    @property
    def item(self) -> int:
        """The item whose per-instance inputs the prefix runs with (all items of a group have the same)."""
        return self.options[0][0]


@dataclass
class _Encoded:
    """An item's option sequences (context + continuation tokens, left-truncated to the window)."""

    tokens: list[list[int]]
    scored: list[int]
    truncated: bool

    @property
    def context(self) -> list[int]:
        """The tokens before the first scored token of any option (all of them, for an untruncated item)."""
        return self.tokens[0][: min(len(t) - n for t, n in zip(self.tokens, self.scored, strict=True))]

    def without_start(self, n: int) -> _Encoded:
        """The sequences after their first ``n`` tokens (a passage run once for several items)."""
        return _Encoded([t[n:] for t in self.tokens], self.scored, self.truncated)


def _encode(lm: EvalModel, item: LoglikItem) -> _Encoded:
    tokens, scored, truncated = [], [], False
    window = lm.context_length
    for continuation in item.continuations:
        context_ids, continuation_ids = encode_pair(lm.tokenizer, item.context, continuation)
        if not continuation_ids:
            raise ValueError(
                f"continuation {continuation!r} encodes to no tokens after context {item.context[-40:]!r}"
            )
        full = context_ids + continuation_ids
        if len(full) - 1 > window:  # the last token is never an input
            full, truncated = full[-(window + 1) :], True
        tokens.append(full)
        scored.append(min(len(continuation_ids), window))
    return _Encoded(tokens, scored, truncated)


def _prepare(index: int, encoded: _Encoded, share_prefix: bool) -> list[_Prepared]:
    """One item's options: their common start run once (``share_prefix``), or each option on its own."""
    tokens, scored = encoded.tokens, encoded.scored
    groups = [list(range(len(tokens)))] if share_prefix else [[j] for j in range(len(tokens))]
    prepared = []
    for group in groups:
        seqs = [tokens[j] for j in group]
        shared = min(shared_start(seqs), *(len(s) - scored[j] for s, j in zip(seqs, group, strict=True)))
        if shared < 1:  # left truncation left the options no common start: score them one by one
            for j in group:
                cut = len(tokens[j]) - scored[j]  # at least 1: the window keeps one input before the last token
                prepared.append(_Prepared(tokens[j][:cut], [tokens[j][cut:]], [scored[j]], [(index, j)]))
            continue
        rests = [s[shared:] for s in seqs]
        options = [(index, j) for j in group]
        prepared.append(_Prepared(seqs[0][:shared], rests, [scored[j] for j in group], options))
    return prepared


def pad_rows(rows: Sequence[list[int]], pad: int, side: Literal["left", "right"]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows as one padded batch and its attention mask. Prompts are padded on the left, so that their
    last tokens line up for the KV cache and generation; continuations after a cached prefix on the right."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def _token_scores(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``log p(target)`` and whether the target is the argmax, per position of ``logits`` (..., vocab): the logit
    minus the log-sum-exp, so no vocabulary-wide log-softmax is written out (the argmax is the logits')."""
    logits = logits.float()
    picked = logits.gather(-1, targets[..., None]).squeeze(-1)
    return picked - logits.logsumexp(-1), logits.argmax(-1) == targets


@dataclass
class _Passage:
    """The KV cache of a passage that several items' prompts start with (run once, one row), and its length."""

    cache: object
    length: int

    def rows(self, n: int, device: torch.device) -> tuple[object, torch.Tensor]:
        """A copy of the cache for ``n`` rows, and the passage's part of their attention mask."""
        cache = select_cache(self.cache, torch.zeros(n, dtype=torch.long, device=device))
        return cache, torch.ones((n, self.length), dtype=torch.long, device=device)


@torch.no_grad()
def _score_batch(
    lm: EvalModel, batch: list[_Prepared], extras: dict[str, torch.Tensor], passage: _Passage | None = None
) -> list[OptionScore]:
    """Run the prefixes once (KV cache kept; after the ``passage`` they all start with, when given), then every
    option row's remaining tokens against its prefix's cache; one score per option row, in the batch's order."""
    device, pad = lm.device, lm.pad_token_id
    prefix_ids, prefix_mask = pad_rows([p.prefix for p in batch], pad, "left")
    prefix_ids, prefix_mask = prefix_ids.to(device), prefix_mask.to(device)
    positions = (prefix_mask.cumsum(-1) - 1).clamp(min=0)
    past, start = None, 0
    if passage is not None:  # the prefixes continue the passage: its cache, mask and positions come first
        past, passage_mask = passage.rows(len(batch), device)
        prefix_mask, positions = torch.cat([passage_mask, prefix_mask], 1), positions + passage.length
        start = passage.length
    out = lm.model(
        input_ids=prefix_ids, attention_mask=prefix_mask, position_ids=positions, past_key_values=past,
        use_cache=True, logits_to_keep=1, **extras,
    )  # fmt: skip
    rows = [(i, rest) for i, p in enumerate(batch) for rest in p.rests]
    owner = torch.tensor([i for i, _ in rows], device=device)
    first = torch.tensor([rest[0] for _, rest in rows], device=device)
    first_logp, first_greedy = _token_scores(out.logits[:, -1][owner], first)  # each row's first token
    per_token: list[tuple[torch.Tensor, torch.Tensor]] = [
        (first_logp[r, None], first_greedy[r, None]) for r in range(len(rows))
    ]
    n_scored = [n for p in batch for n in p.n_scored]
    if all(len(rest) == 1 for _, rest in rows):  # one-token options (letters): the prefix says all
        return _gather(n_scored, per_token)
    groups = _length_groups([len(rest) for _, rest in rows])
    prefix_len = torch.tensor([start + len(p.prefix) for p in batch], device=device)
    for group in groups:
        index = torch.tensor(group, device=device)
        if len(groups) == 1:  # the prefix cache itself, reordered in place
            cache = out.past_key_values
            cache.reorder_cache(owner[index])
        else:
            cache = select_cache(out.past_key_values, owner[index])
        rests = [rows[r][1] for r in group]
        logits = _run_rests(lm, rests, cache, prefix_mask[owner[index]], prefix_len[owner[index]],
                            select_rows(extras, owner[index]))  # fmt: skip
        following, _ = pad_rows([rest[1:] for rest in rests], 0, "right")  # position k predicts token k + 1
        logp, greedy = _token_scores(logits[:, : following.shape[1]], following.to(device))
        for k, r in enumerate(group):
            n = len(rows[r][1]) - 1
            per_token[r] = (torch.cat([per_token[r][0], logp[k, :n]]), torch.cat([per_token[r][1], greedy[k, :n]]))
    return _gather(n_scored, per_token)


GROUP_OVERHEAD_TOKENS = 24
"""What one more forward pass costs, in padded option tokens, when option rows are split into length groups."""


def _length_groups(lengths: list[int], overhead: int | None = None, max_size: int | None = None) -> list[list[int]]:
    """Row indices split into groups of similar length: the split of the rows sorted by length (longest first;
    equal lengths keep their order) that minimises ``Σ (rows in group · longest in group) + overhead · groups``
    (padded tokens plus a cost per forward pass, ``GROUP_OVERHEAD_TOKENS`` unless given), with at most
    ``max_size`` rows a group."""
    overhead = GROUP_OVERHEAD_TOKENS if overhead is None else overhead
    order = sorted(range(len(lengths)), key=lambda r: -lengths[r])
    n = len(order)
    widest = n if max_size is None else max_size
    best = [0.0] + [float("inf")] * n  # best[k]: cost of the first k rows (longest first)
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(max(0, end - widest), end):
            cost = best[start] + (end - start) * lengths[order[start]] + overhead
            if cost <= best[end]:  # on a tie the later cut: earlier groups are filled first
                best[end], cut[end] = cost, start
    groups, end = [], n
    while end:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]


def select_cache(cache, index: torch.Tensor):
    """A new cache holding rows ``index`` of ``cache`` (one batched gather per layer), ``cache`` left as it is."""
    selected = copy.copy(cache)
    selected.layers = [copy.copy(layer) for layer in cache.layers]
    for layer in selected.layers:
        layer.keys, layer.values = layer.keys.index_select(0, index), layer.values.index_select(0, index)
    return selected


def _run_rests(
    lm: EvalModel, rests: list[list[int]], cache, prefix_mask: torch.Tensor, prefix_len: torch.Tensor,
    extras: dict[str, torch.Tensor],
) -> torch.Tensor:  # fmt: skip
    """Logits (rows, width, vocab) of option tokens run against their prefixes' cache rows (whose attention mask
    and real length each row gets)."""
    device, pad = lm.device, lm.pad_token_id
    rest_ids, rest_mask = pad_rows(rests, pad, "right")
    rest_ids, rest_mask = rest_ids.to(device), rest_mask.to(device)
    out = lm.model(
        input_ids=rest_ids,
        attention_mask=torch.cat([prefix_mask, rest_mask], dim=1),
        position_ids=prefix_len[:, None] + torch.arange(rest_ids.shape[1], device=device),
        past_key_values=cache,
        use_cache=True,
        **extras,
    )
    return out.logits


def _gather(n_scored: Sequence[int], per_token: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[OptionScore]:
    """Per option row (``per_token`` ends with the row's last token): the summed log-prob of the scored tokens (the
    last ``n_scored``; fewer after left truncation) and whether greedy decoding gives them all."""
    return [
        OptionScore(float(logp[-n:].sum()), bool(greedy[-n:].all()))
        for n, (logp, greedy) in zip(n_scored, per_token, strict=True)
    ]


def _batches(prepared: list[_Prepared], batch_size: int, device: torch.device) -> list[list[_Prepared]]:
    """Longest prompt first (then longest option), at most `batch_size` items a batch. On the CPU, where a padded
    token costs as much as a real one, a batch is cut short where the next prompts are much shorter (the split of
    ``_length_groups``: BoolQ's long-tailed passages padded 22% of the prompt tokens of 16 instances in batches of
    8, 10% of 200); elsewhere padding below the device's saturation is nearly free, and batches stay whole."""
    order = sorted(prepared, key=lambda p: (-len(p.prefix), -max(map(len, p.rests))))
    if device.type == "cpu":
        groups = _length_groups([len(p.prefix) for p in order], max_size=batch_size)
        return [[order[r] for r in group] for group in groups]
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def score_continuations(
    lm: EvalModel, items: Sequence[LoglikItem], batch_size: int = 8, share_prefix: bool = True
) -> tuple[list[list[OptionScore]], int]:
    """Log-likelihood of every continuation of every item, and how many items were left-truncated.

    Items run in batches of at most `batch_size` items, each with all its options (``_batches``); results come
    back in the order of `items`. With `share_prefix` (the default) an item's prompt runs once for all its
    options, and consecutive items whose prompts start with the same passage (and whose per-instance inputs are
    equal) run that passage once (``trex.eval.sharing``); without it (for benchmarks) every option pays for its
    own prompt.
    """
    encoded = [_encode(lm, item) for item in items]
    extras_all, keys = prior_inputs(lm, [item.intuition_text for item in items], [item.task for item in items])
    groups = [([i], 0) for i in range(len(items))]
    if share_prefix:
        groups = sharing_groups([e.context for e in encoded], keys, [not e.truncated for e in encoded])
    work: list[tuple[list[int], list[list[_Prepared]]]] = []  # (passage tokens, batches after it)
    alone: list[_Prepared] = []
    for indices, shared in groups:
        if shared:
            after = [p for i in indices for p in _prepare(i, encoded[i].without_start(shared), True)]
            work.append((encoded[indices[0]].tokens[0][:shared], _batches(after, batch_size, lm.device)))
        else:
            alone += [p for i in indices for p in _prepare(i, encoded[i], share_prefix)]
    work.append(([], _batches(alone, batch_size, lm.device)))
    results: list[list[OptionScore | None]] = [[None] * len(item.continuations) for item in items]
    jobs = [(passage_ids, batch) for passage_ids, batches in work for batch in batches]
    passage, running = None, None
    for passage_ids, batch in progress(jobs, desc="scoring options", unit="batch", leave=False):
        if passage_ids is not running:  # a new passage: run it once for all its batches
            first = select_rows(extras_all, torch.tensor([batch[0].item]))
            passage = _Passage(run_passage(lm, passage_ids, first), len(passage_ids)) if passage_ids else None
            running = passage_ids
        extras = select_rows(extras_all, torch.tensor([p.item for p in batch]))
        scores = iter(_score_batch(lm, batch, extras, passage))
        for p in batch:
            for item, option in p.options:
                results[item][option] = next(scores)
    return results, sum(e.truncated for e in encoded)  # type: ignore[return-value]  # every option is scored


@torch.no_grad()
def run_passage(lm: EvalModel, passage_ids: list[int], extras: dict[str, torch.Tensor]):
    """The KV cache of a passage several items share (one row; their per-instance inputs are equal, so one row
    serves them all)."""
    ids = torch.tensor([passage_ids], device=lm.device)
    out = lm.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True, logits_to_keep=1, **extras)
    return out.past_key_values
