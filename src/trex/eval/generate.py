"""Generate scoring: greedy decoding after "Answer:", batched with left padding and the KV cache.

Generation budgets (new tokens) per answer type, and how the answer is read from the generated text:

- ``letter`` (the 14 tasks, letters format): 2 tokens, so a tokenizer that emits the space on its own does not
  cost the answer; the first non-space character (after an opening bracket) is the predicted letter, compared
  with the gold letter case-insensitively. This is the T-REX authors' scoring (1-token greedy exact match).
- BBH ``multiple_choice`` ("(A)".."(R)"): 5 tokens; read the same way, so "(B)", "B)" and "b" all mean B.
- BBH ``binary`` (Yes/No, True/False, valid/invalid, ...): the longest answer word plus 2 tokens; the first word
  of the generation, stripped of punctuation, compared with the answer words case-insensitively.
- BBH ``free_text`` (dyck_languages, multistep_arithmetic_two, object_counting, word_sorting): the task's longest
  target plus 2 tokens; the first line of the generation with whitespace collapsed must equal the target; when
  the target is a number, the first number in the generation is compared instead. Characters in the request's
  `ignore_chars` are removed from the generation first (the authors' form of word_sorting drops "," and ".").

With ``map_yes_no`` (the T-REX authors' reading, chat.py:409-419), a letter answer that is not a letter but
the word yes/no/true/false is mapped to the letter of the option showing that word, or else its synonym (yes =
true, no = false): under the `official` prompts "yes" and "true" mean B ("B. Yes", "B. True") and "no" and "false"
mean A, exactly the authors' mapping on BoolQ, MultiRC, WiC and WSC. Unlike their fixed yes->B table it never
maps to an option that does not say yes/no/true/false (their table also maps RTE's "yes" to "B. not
entailment" and BBH's "yes" to "B. No"). Mapped answers are counted (`mapped` in results.json).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from transformers import GenerationConfig

from trex.eval.lm import EvalModel, select_rows
from trex.eval.loglik import encode_text, pad_rows, run_passage, select_cache
from trex.eval.progress import progress
from trex.eval.requests import EvalRequest
from trex.eval.sharing import prior_inputs, sharing_groups

LETTER_TOKENS = 2
CHOICE_TOKENS = 5
EXTRA_TOKENS = 2
"""Room beyond the longest answer, for a leading space or newline token."""

_LETTER = re.compile(r"^\s*[\(\[]?\s*([A-Za-z])(?![A-Za-z])")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_WORD = re.compile(r"[\w'-]+")
YES_NO_SYNONYMS = {"yes": "true", "true": "yes", "no": "false", "false": "no"}


def generation_budget(requests: Sequence[EvalRequest], tokenizer) -> int:
    """New tokens to generate for these requests (all of one task): enough for the longest answer needed."""
    kinds = {r.answer_type for r in requests}
    budget = 0
    if "letter" in kinds:
        budget = LETTER_TOKENS
    if "multiple_choice" in kinds:
        budget = max(budget, CHOICE_TOKENS)
    answers = [a for r in requests if r.answer_type in ("binary", "free_text") for a in (*r.options, r.target)]
    if answers:
        longest = max(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)
        budget = max(budget, longest + EXTRA_TOKENS)
    return budget


def read_letter(text: str) -> str | None:
    """The answer letter at the start of a generation ("B", " (b)", "B. Paris"), upper-case; None if none."""
    match = _LETTER.match(text)
    return match.group(1).upper() if match else None


def _normalise(text: str) -> str:
    return " ".join(text.split())


def yes_no_index(request: EvalRequest, generated: str) -> int | None:
    """The option a generated yes/no/true/false names (the option showing that word, else its synonym); None
    when the generation is not one of those words or no option shows it."""
    words = _WORD.findall(generated)
    word = words[0].lower() if words else ""
    if word not in YES_NO_SYNONYMS:
        return None
    shown = [_normalise(c).lower() for c in request.choices]
    for candidate in (word, YES_NO_SYNONYMS[word]):
        if candidate in shown:
            return shown.index(candidate)
    return None


def predict_detail(request: EvalRequest, generated: str, map_yes_no: bool = False) -> tuple[int | None, bool, bool]:
    """(predicted option index or None, correct, mapped): `predict`, and whether the yes/no mapping gave it."""
    if request.answer_type in ("letter", "multiple_choice"):
        letter = read_letter(generated)
        index = request.letters.index(letter) if letter in request.letters else None
        mapped = False
        if index is None and map_yes_no:
            index = yes_no_index(request, generated)
            mapped = index is not None
        return index, index is not None and index == request.gold, mapped
    index, correct = _predict_other(request, generated)
    return index, correct, False


def predict(request: EvalRequest, generated: str, map_yes_no: bool = False) -> tuple[int | None, bool]:
    """(predicted option index or None, correct) for a generation, following the rules in the module docstring."""
    index, correct, _ = predict_detail(request, generated, map_yes_no)
    return index, correct


def _predict_other(request: EvalRequest, generated: str) -> tuple[int | None, bool]:
    if request.answer_type == "binary":
        words = _WORD.findall(generated)
        answers = [_normalise(o).lower() for o in request.options]
        first = words[0].lower() if words else ""
        index = answers.index(first) if first in answers else None
        return index, index is not None and index == request.gold
    target = _normalise(request.target)
    if request.ignore_chars:
        generated = generated.translate(str.maketrans("", "", request.ignore_chars))
    if _NUMBER.fullmatch(target):
        number = _NUMBER.search(generated)
        return None, number is not None and float(number.group()) == float(target)
    lines = generated.strip().splitlines()
    return None, bool(lines) and _normalise(lines[0]) == target


@torch.no_grad()
def generate_batch(
    lm: EvalModel,
    prompts: Sequence[str],
    intuition_texts: Sequence[str],
    max_new_tokens: int,
    stop_strings: Sequence[str] = (),
    tasks: Sequence[str | None] | None = None,
) -> list[str]:
    """Greedy continuations of `prompts` (left-padded batch, KV cache), decoded without special tokens."""
    rows = [_prompt_ids(lm, p, max_new_tokens) for p in prompts]
    extras = lm.extra_inputs(intuition_texts, tasks)
    return _generate_rows(lm, rows, extras, max_new_tokens, stop_strings)


def _prompt_ids(lm: EvalModel, prompt: str, max_new_tokens: int) -> list[int]:
    room = max(lm.context_length - max_new_tokens, 1)
    return encode_text(lm.tokenizer, prompt)[-room:]  # requests are built to fit; others lose the left


def _generate_rows(
    lm: EvalModel, rows: Sequence[list[int]], extras: dict[str, torch.Tensor], max_new_tokens: int,
    stop_strings: Sequence[str] = (), passage: tuple[list[int], object] | None = None,
) -> list[str]:  # fmt: skip
    """Greedy continuations of token rows (left-padded). With ``passage`` = (its tokens, its one-row KV cache),
    every row continues that passage: the rows run after a copy of its cache, their padding between the passage
    and their own tokens (masked; positions follow the attention mask, as for left padding)."""
    tokenizer, pad = lm.tokenizer, lm.pad_token_id
    ids, mask = pad_rows(rows, pad, "left")
    ids, mask = ids.to(lm.device), mask.to(lm.device)
    past = {}
    if passage is not None:
        passage_ids, cache = passage
        head = torch.tensor([passage_ids], device=lm.device).expand(len(rows), -1)
        ids, mask = torch.cat([head, ids], 1), torch.cat([torch.ones_like(head), mask], 1)
        past = {"past_key_values": select_cache(cache, torch.zeros(len(rows), dtype=torch.long, device=lm.device))}
    width = ids.shape[1]
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, pad_token_id=pad,
        eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    stopping = {"stop_strings": list(stop_strings), "tokenizer": tokenizer} if stop_strings else {}
    out = lm.model.generate(input_ids=ids, attention_mask=mask, generation_config=config, **past, **stopping, **extras)
    texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
    return [_cut(text, stop_strings) for text in texts]


def _cut(text: str, stop_strings: Sequence[str]) -> str:
    """The text before the first stop string (generation stops after the token that completes one)."""
    ends = [text.find(s) for s in stop_strings if s and s in text]
    return text[: min(ends)] if ends else text


def generate_answers(lm: EvalModel, requests: Sequence[EvalRequest], batch_size: int) -> list[str]:
    """Generations for every request, returned in request order. Requests that continue one shared passage
    (``trex.eval.sharing``) run it once and then go in batches of `batch_size`; the others run longest prompt
    first, `batch_size` a batch."""
    budget = generation_budget(requests, lm.tokenizer)
    rows = [_prompt_ids(lm, r.prompt, budget) for r in requests]
    extras_all, keys = prior_inputs(lm, [r.intuition_text for r in requests], [r.task for r in requests])
    jobs: list[tuple[list[int], int, int]] = []  # (request indices, tokens of the passage they share, its group)
    alone = []
    for group, (indices, shared) in enumerate(sharing_groups(rows, keys)):
        if shared:
            jobs += [(indices[i : i + batch_size], shared, group) for i in range(0, len(indices), batch_size)]
        else:
            alone += indices
    alone.sort(key=lambda i: -len(requests[i].prompt))
    jobs += [(alone[i : i + batch_size], 0, -1) for i in range(0, len(alone), batch_size)]
    texts: list[str] = [""] * len(requests)
    passage, running = None, None
    for chunk, shared, group in progress(jobs, desc="generating", unit="batch", leave=False):
        if shared and group != running:  # a new passage: run it once for all its batches
            passage_ids = rows[chunk[0]][:shared]
            passage = passage_ids, run_passage(lm, passage_ids, select_rows(extras_all, torch.tensor(chunk[:1])))
            running = group
        outputs = _generate_rows(lm, [rows[i][shared:] for i in chunk], select_rows(extras_all, torch.tensor(chunk)),
                                 budget, passage=passage if shared else None)  # fmt: skip
        for i, text in zip(chunk, outputs, strict=True):
            texts[i] = text
    return texts
