"""The per-call routing context shared by every T-REX layer of one model.

Intuition is a per-instance input of ``TRexModel.forward``; layers deep inside a transformers model cannot
receive it as an argument, so the model puts it on one small object that all its layers hold, for the
duration of the call only. Gradient checkpointing recomputes layers during backward, after the call has
returned: ``checkpoint_contexts`` (a ``torch.utils.checkpoint`` ``context_fn``) snapshots the context when a
block runs forward and restores exactly that snapshot for its recomputation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class RoutingContext:
    intuition: torch.Tensor | None = None
    disabled: bool = False

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

    def checkpoint_contexts(self) -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
        """``context_fn`` for non-reentrant checkpointing: the recomputation sees the forward's context."""
        return contextlib.nullcontext(), self.use(self.intuition, self.disabled)
