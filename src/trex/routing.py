"""The per-call routing context shared by every adapter layer of one model.

Per-instance inputs (T-REX's intuition, a task-category prior) are arguments of the adapter model's ``forward``;
layers deep inside a transformers model cannot receive them as arguments, so the model puts them on one small
object that all its layers hold, for the duration of the call only. Routers add their auxiliary losses to the same
object, and the model collects them after the call. Gradient checkpointing recomputes layers during backward, after
the call has returned: ``checkpoint_contexts`` (a ``torch.utils.checkpoint`` ``context_fn``) snapshots the context
when a block runs forward and restores exactly that snapshot for its recomputation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class RoutingContext:
    intuition: torch.Tensor | None = None
    disabled: bool = False
    losses: dict[str, list[torch.Tensor]] | None = field(default=None, repr=False)
    recomputing: bool = False
    """True while gradient checkpointing recomputes a block: routers must not count its tokens a second time."""
    token_mask: torch.Tensor | None = None
    """(batch, seq) True for real tokens, False for padding, while a training forward runs: routers keep padding
    out of expert capacity and of their auxiliary losses."""
    _views: dict[tuple, torch.Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        # views of the previous intuition must never be served for a new one; generate sets the same tensor again
        # before every decoding step, which keeps them (an in-place change is in the key: its version counter)
        if name == "intuition" and value is not self.__dict__.get("intuition"):
            object.__setattr__(self, "_views", {})
        object.__setattr__(self, name, value)

    def prior_view(self, key: tuple, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The intuition as a layer needs it (checked, cast, viewed to broadcast over tokens), made once per key.

        Every adapted layer of a model (210 on SmolLM2) reads the same intuition in one forward, and in every
        decoding step of a ``generate``; checking and casting it once instead of per layer and step is a measurable
        part of a decoded token's time. ``key`` must hold everything the view depends on besides the intuition.
        """
        key = (self.intuition._version, *key) if self.intuition is not None else key
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = make()
        return view

    @contextlib.contextmanager
    def use(self, intuition: torch.Tensor | None, disabled: bool | None = None) -> Iterator[None]:
        """Set the context for one call and put the previous one back afterwards, even on error."""
        previous = (self.intuition, self.disabled)
        self.intuition = intuition
        if disabled is not None:
            self.disabled = disabled
        try:
            yield
        finally:
            self.intuition, self.disabled = previous

    @contextlib.contextmanager
    def real_tokens(self, mask: torch.Tensor | None) -> Iterator[None]:
        """Name the real (non-padding) tokens of one call; None: every token is real."""
        previous = self.token_mask
        self.token_mask = None if mask is None else mask.bool()
        try:
            yield
        finally:
            self.token_mask = previous

    @contextlib.contextmanager
    def collect_losses(self) -> Iterator[dict[str, list[torch.Tensor]]]:
        """Gather the auxiliary losses routers add during one forward (recomputations add nothing)."""
        self.losses = {}
        try:
            yield self.losses
        finally:
            self.losses = None

    def add_loss(self, name: str, value: torch.Tensor) -> None:
        if self.losses is not None:
            self.losses.setdefault(name, []).append(value)

    def checkpoint_contexts(self) -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
        """``context_fn`` for non-reentrant checkpointing: the recomputation sees the forward's context."""
        return contextlib.nullcontext(), self._recompute(self.intuition, self.disabled, self.token_mask)

    @contextlib.contextmanager
    def _recompute(self, intuition: torch.Tensor | None, disabled: bool, mask: torch.Tensor | None) -> Iterator[None]:
        previous = self.recomputing
        self.recomputing = True
        try:
            with self.use(intuition, disabled), self.real_tokens(mask):
                yield
        finally:
            self.recomputing = previous
