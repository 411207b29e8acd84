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
is its logit minus the log-sum-exp of its position (no vocabulary-wide log-softmax is written out). Without sharing
(for benchmarks) each option is its own item and pays for its own prompt.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from trex.eval.lm import EvalModel, select_rows
from trex.eval.progress import progress


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
    """An item as token lists: one shared prefix, then per option the remaining tokens and how many are scored."""

    item: int
    prefix: list[int]
    rests: list[list[int]]
    n_scored: list[int]
    truncated: bool


def _common_prefix(sequences: list[list[int]]) -> int:
    n = min(len(s) for s in sequences)
    for i in range(n):
        if any(s[i] != sequences[0][i] for s in sequences[1:]):
            return i
    return n


def _prepare(lm: EvalModel, index: int, item: LoglikItem, share_prefix: bool) -> list[_Prepared]:
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
    groups = [list(range(len(tokens)))] if share_prefix else [[j] for j in range(len(tokens))]
    prepared = []
    for group in groups:
        seqs = [tokens[j] for j in group]
        shared = min(_common_prefix(seqs), *(len(s) - scored[j] for s, j in zip(seqs, group, strict=True)))
        if shared < 1:  # left truncation left the options no common start: score them one by one
            for j in group:
                prepared.extend(_prepare(lm, index, LoglikItem(item.context, [item.continuations[j]], ""), False))
            continue
        rests = [s[shared:] for s in seqs]
        prepared.append(_Prepared(index, seqs[0][:shared], rests, [scored[j] for j in group], truncated))
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


@torch.no_grad()
def _score_batch(lm: EvalModel, batch: list[_Prepared], extras: dict[str, torch.Tensor]) -> list[list[OptionScore]]:
    """Run the prefixes once (KV cache kept), then every option's remaining tokens against its prefix's cache."""
    device, pad = lm.device, lm.pad_token_id
    prefix_ids, prefix_mask = pad_rows([p.prefix for p in batch], pad, "left")
    prefix_ids, prefix_mask = prefix_ids.to(device), prefix_mask.to(device)
    positions = (prefix_mask.cumsum(-1) - 1).clamp(min=0)
    out = lm.model(
        input_ids=prefix_ids, attention_mask=prefix_mask, position_ids=positions, use_cache=True, logits_to_keep=1,
        **extras,
    )  # fmt: skip
    rows = [(i, rest) for i, p in enumerate(batch) for rest in p.rests]
    owner = torch.tensor([i for i, _ in rows], device=device)
    first = torch.tensor([rest[0] for _, rest in rows], device=device)
    first_logp, first_greedy = _token_scores(out.logits[:, -1][owner], first)  # each row's first token
    per_token: list[tuple[torch.Tensor, torch.Tensor]] = [
        (first_logp[r, None], first_greedy[r, None]) for r in range(len(rows))
    ]
    if all(len(rest) == 1 for _, rest in rows):  # one-token options (letters): the prefix says all
        return _gather(batch, per_token)
    groups = _length_groups([len(rest) for _, rest in rows])
    for group in groups:
        index = torch.tensor(group, device=device)
        if len(groups) == 1:  # the prefix cache itself, reordered in place
            cache = out.past_key_values
            cache.reorder_cache(owner[index])
        else:
            cache = _select_cache(out.past_key_values, owner[index])
        rests = [rows[r][1] for r in group]
        logits = _run_rests(lm, rests, cache, prefix_mask, owner[index], batch, extras)
        following, _ = pad_rows([rest[1:] for rest in rests], 0, "right")  # position k predicts token k + 1
        logp, greedy = _token_scores(logits[:, : following.shape[1]], following.to(device))
        for k, r in enumerate(group):
            n = len(rows[r][1]) - 1
            per_token[r] = (torch.cat([per_token[r][0], logp[k, :n]]), torch.cat([per_token[r][1], greedy[k, :n]]))
    return _gather(batch, per_token)


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


def _select_cache(cache, index: torch.Tensor):
    """A new cache holding rows ``index`` of ``cache`` (one batched gather per layer), ``cache`` left as it is."""
    selected = copy.copy(cache)
    selected.layers = [copy.copy(layer) for layer in cache.layers]
    for layer in selected.layers:
        layer.keys, layer.values = layer.keys.index_select(0, index), layer.values.index_select(0, index)
    return selected


def _run_rests(
    lm: EvalModel, rests: list[list[int]], cache, prefix_mask: torch.Tensor, owner: torch.Tensor,
    batch: list[_Prepared], extras: dict[str, torch.Tensor],
) -> torch.Tensor:  # fmt: skip
    """Logits (rows, width, vocab) of option tokens run against their prefixes' cache rows."""
    device, pad = lm.device, lm.pad_token_id
    rest_ids, rest_mask = pad_rows(rests, pad, "right")
    rest_ids, rest_mask = rest_ids.to(device), rest_mask.to(device)
    prefix_len = torch.tensor([len(p.prefix) for p in batch], device=device)[owner]
    out = lm.model(
        input_ids=rest_ids,
        attention_mask=torch.cat([prefix_mask[owner], rest_mask], dim=1),
        position_ids=prefix_len[:, None] + torch.arange(rest_ids.shape[1], device=device),
        past_key_values=cache,
        use_cache=True,
        **select_rows(extras, owner),
    )
    return out.logits


def _gather(batch: list[_Prepared], per_token: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[list[OptionScore]]:
    """Per option row (entry k of ``per_token`` scores token k of the row's rest): the summed log-prob of the
    scored tokens (the last ``n_scored``; fewer after left truncation) and whether greedy decoding gives them all."""
    scores, row = [], 0
    for p in batch:
        per_option = []
        for n in p.n_scored:
            logp, greedy = per_token[row]
            per_option.append(OptionScore(float(logp[-n:].sum()), bool(greedy[-n:].all())))
            row += 1
        scores.append(per_option)
    return scores


def score_continuations(
    lm: EvalModel, items: Sequence[LoglikItem], batch_size: int = 8, share_prefix: bool = True
) -> tuple[list[list[OptionScore]], int]:
    """Log-likelihood of every continuation of every item, and how many items were left-truncated.

    Items are run longest prompt first (then longest option) in batches of at most `batch_size` items (each with
    all its options); results come back in the order of `items`. On the CPU, where a padded token costs as much
    as a real one, a batch is cut short where the next prompts are much shorter (the split of ``_length_groups``:
    BoolQ's long-tailed passages padded 22% of the prompt tokens of 16 instances in batches of 8, 10% of 200);
    elsewhere padding below the device's saturation is nearly free, and batches stay whole.
    """
    prepared = [p for i, item in enumerate(items) for p in _prepare(lm, i, item, share_prefix)]
    order = sorted(range(len(prepared)), key=lambda k: (-len(prepared[k].prefix), -max(map(len, prepared[k].rests))))
    if lm.device.type == "cpu":
        groups = _length_groups([len(prepared[k].prefix) for k in order], max_size=batch_size)
        batches = [[order[r] for r in group] for group in groups]
    else:
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    results: list[list[OptionScore]] = [[] for _ in items]
    pieces: dict[int, list[OptionScore]] = {}
    for keys in progress(batches, desc="scoring options", unit="batch", leave=False):
        batch = [prepared[k] for k in keys]
        extras = lm.extra_inputs([items[p.item].intuition_text for p in batch], [items[p.item].task for p in batch])
        for k, scores in zip(keys, _score_batch(lm, batch, extras), strict=True):
            pieces[k] = scores
    for k, p in enumerate(prepared):  # prepared pieces of one item are consecutive and in option order
        results[p.item].extend(pieces[k])
    truncated = len({p.item for p in prepared if p.truncated})
    return results, truncated
