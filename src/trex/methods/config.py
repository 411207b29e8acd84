"""What every adapter config shares: its JSON form, type-checked loading, target modules and the per-instance prior.

Each method's config is a dataclass mixing in ``AdapterConfig``. The saved ``adapter_config.json`` records
``peft_type`` (``TREX`` for every method of this package) and ``method``; files written before methods existed
have no ``method`` and are T-REX adapters.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from trex import __version__
from trex.fields import checked_fields

PEFT_TYPE = "TREX"
BOOKKEEPING_KEYS = ("peft_type", "method", "trex_version", "files")

IntuitionSource = Literal["bank", "task_category"]


class AdapterConfig:
    """Mixin for the method configs (dataclasses): serialisation, validation and the prior's width.

    Fields the prior logic reads, when a config has them: ``use_intuition``, ``intuition_source``, ``n_clusters``,
    ``intuition_mapping`` and the ``n_experts`` property.
    """

    method: ClassVar[str]
    display_name: ClassVar[str]

    @property
    def prior_width(self) -> int | None:
        """Width of the per-instance prior each instance must come with (None: the method takes none)."""
        if not getattr(self, "use_intuition", False):
            return None
        if getattr(self, "intuition_source", "bank") == "task_category":
            from trex.methods.categories import CATEGORIES

            return len(CATEGORIES)
        n_clusters = getattr(self, "n_clusters", None)
        return self.n_experts if n_clusters is None else n_clusters

    @property
    def intuition_width(self) -> int:
        """Width of the intuition vector (kept for the T-REX API; the prior's width when the method has one)."""
        width = self.prior_width
        return self.n_experts if width is None else width

    def _check_targets(self) -> None:
        name, targets = type(self).__name__, self.target_modules
        if isinstance(targets, str):
            try:
                re.compile(targets)
            except re.error as err:
                raise ValueError(f"{name}.target_modules is not a valid regex: {targets!r} ({err})") from err
        elif targets is not None:
            if not targets or not all(isinstance(t, str) and t for t in targets):
                raise ValueError(
                    f"{name}.target_modules must be None, a regex or a non-empty list of names, got {targets!r}"
                )
            self.target_modules = list(targets)

    def _check_positive_ints(self, *names: str) -> None:
        for field_name in names:
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{type(self).__name__}.{field_name} must be a positive integer, got {value!r}")

    def _check_prior(self) -> None:
        name = type(self).__name__
        if self.n_clusters is not None and (
            isinstance(self.n_clusters, bool) or not isinstance(self.n_clusters, int) or self.n_clusters < 1
        ):
            raise ValueError(f"{name}.n_clusters must be a positive integer or None, got {self.n_clusters!r}")
        if self.intuition_source not in ("bank", "task_category"):
            raise ValueError(
                f"{name}.intuition_source must be 'bank' or 'task_category', got {self.intuition_source!r}"
            )
        width = self.prior_width
        if width is not None and width != self.n_experts and not self.intuition_mapping:
            what = (
                f"the task-category prior has {width} categories"
                if self.intuition_source == "task_category"
                else f"n_clusters={self.n_clusters} differs from the number of experts ({self.n_experts})"
            )
            raise ValueError(
                f"{name}: {what}; set intuition_mapping=True to learn a map from clusters to experts"
                + (", or n_clusters=None" if self.intuition_source == "bank" else "")
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{name}.dropout must be in [0, 1), got {self.dropout!r}")
        for loss in ("load_balance_loss", "router_z_loss"):
            if getattr(self, loss, 0.0) < 0:
                raise ValueError(f"{name}.{loss} must be >= 0, got {getattr(self, loss)!r}")

    def to_dict(self) -> dict[str, Any]:
        """The fields plus the peft-style bookkeeping keys written to ``adapter_config.json``."""
        return {"peft_type": PEFT_TYPE, "method": self.method, "trex_version": __version__, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> AdapterConfig:
        """Build a config from a dict, type-checking every field and naming unknown keys (with the closest one)."""
        data = {k: v for k, v in data.items() if k not in BOOKKEEPING_KEYS}
        return cls(**checked_fields(cls, data, f"{source}: {cls.display_name} config"))

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write the config as JSON (callers make the write atomic)."""
        Path(path).write_text(json.dumps({**self.to_dict(), **(extra or {})}, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> AdapterConfig:
        """Read a saved config; the file's ``method`` picks the class, which must be ``cls`` or a subclass."""
        from trex.methods import method_of_config

        data = read_config_file(path)
        if data.get("peft_type") != PEFT_TYPE:
            raise ValueError(
                f"{path} is not a T-REX adapter config (peft_type={data.get('peft_type')!r}, expected {PEFT_TYPE!r})"
            )
        config_class = method_of_config(data, source=str(path)).config_class
        if not issubclass(config_class, cls):
            raise ValueError(f"{path} holds a {config_class.method!r} adapter, not a {cls.method!r} one")
        return config_class.from_dict(data, source=str(path))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The JSON object in an ``adapter_config.json``, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no adapter config at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); the adapter folder is corrupt") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}, not an adapter config object")
    return data
