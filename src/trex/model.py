"""``TRexModel``: a transformers causal LM with T-REX layers, intuition as an explicit input, peft-style files."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trex.config import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, TRexConfig
from trex.io import atomic_write, load_tensors, save_tensors_atomic, sha256_file
from trex.layer import TRexLinear
from trex.routing import RoutingContext

if TYPE_CHECKING:
    from trex.intuition import IntuitionBank

logger = logging.getLogger(__name__)

ADAPTER_PREFIX = "base_model.model."  # peft's key prefix, so tools that read peft checkpoints find familiar names
INTUITION_DIR = "intuition"


def find_target_modules(model: nn.Module, config: TRexConfig) -> list[str]:
    """Paths of the ``nn.Linear`` modules the config adapts; the output head is never one of them."""
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    linear = [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and m is not head and name]
    targets = config.target_modules
    if isinstance(targets, str):
        chosen = [name for name in linear if re.fullmatch(targets, name)]
    elif targets is not None:
        chosen = [name for name in linear if any(name == t or name.endswith("." + t) for t in targets)]
        unmatched = [t for t in targets if not any(name == t or name.endswith("." + t) for name in linear)]
        if unmatched and chosen:
            raise ValueError(f"target_modules {unmatched} match no nn.Linear of {type(model).__name__}")
    else:
        chosen = linear
    if not chosen:
        kinds = sorted({name.rsplit(".", 1)[-1] for name in linear})
        raise ValueError(
            f"target_modules={targets!r} matches no nn.Linear of {type(model).__name__}; its linear layers are {kinds}"
        )
    return chosen


def inject_trex_layers(model: nn.Module, config: TRexConfig, routing: RoutingContext) -> list[str]:
    """Replace each target ``nn.Linear`` by a ``TRexLinear`` wrapping it, in place."""
    if any(isinstance(m, TRexLinear) for m in model.modules()):
        raise ValueError("this model already has T-REX layers; load adapters onto a fresh base model")
    names = find_target_modules(model, config)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, TRexLinear(getattr(parent, child), config, routing))
    return names


def _expand_rows(intuition: torch.Tensor, rows: int) -> torch.Tensor:
    """Follow transformers' batch expansion in ``generate`` (beams, return sequences: ``repeat_interleave``)."""
    if rows == intuition.shape[0]:
        return intuition
    if rows % intuition.shape[0]:
        raise ValueError(
            f"generate runs {rows} rows, which is not a multiple of the {intuition.shape[0]} intuition rows given"
        )
    return intuition.repeat_interleave(rows // intuition.shape[0], dim=0)


def _batch_size(args: Sequence[Any], kwargs: dict[str, Any]) -> int | None:
    for value in (kwargs.get("input_ids"), kwargs.get("inputs_embeds"), args[0] if args else None):
        if isinstance(value, torch.Tensor):
            return value.shape[0]
    return None


class TRexModel(nn.Module):
    """A causal LM whose linear layers carry T-REX adapters.

    Intuition (one row per instance, ``(batch, n_clusters)``) is an argument of ``forward`` and ``generate``, held
    by the layers' shared ``RoutingContext`` only while that call runs. Everything else is delegated to the wrapped
    transformers model, so ``model.config``, ``model.device`` and friends work as users expect.
    """

    def __init__(self, base_model: nn.Module, config: TRexConfig, intuition_bank: IntuitionBank | None = None) -> None:
        super().__init__()
        self.base_model = base_model
        self.trex_config = config
        self.routing = RoutingContext()
        self.adapted_modules = inject_trex_layers(base_model, config, self.routing)
        for name, param in base_model.named_parameters():
            param.requires_grad = "trex_" in name
        self.intuition_bank = None
        if intuition_bank is not None:
            self.attach_intuition_bank(intuition_bank)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_model":
                raise
            return getattr(self.base_model, name)

    # ---- intuition -------------------------------------------------------------------------------------------

    def attach_intuition_bank(self, bank: IntuitionBank) -> None:
        """Use ``bank`` to turn ``intuition_text`` into intuition; it is saved inside the adapter folder."""
        if self.trex_config.use_intuition and bank.n_clusters != self.trex_config.intuition_width:
            raise ValueError(
                f"the intuition bank has {bank.n_clusters} clusters but this adapter expects intuition of width "
                f"{self.trex_config.intuition_width}"
            )
        self.intuition_bank = bank

    def _resolve_intuition(
        self, intuition: Any, intuition_text: str | Sequence[str] | None, batch_size: int | None
    ) -> torch.Tensor | None:
        config = self.trex_config
        if not config.use_intuition:
            if intuition is not None or intuition_text is not None:
                raise ValueError("this adapter was built with use_intuition=False; do not pass intuition")
            return None
        if intuition is not None and intuition_text is not None:
            raise ValueError("pass either intuition or intuition_text, not both")
        if intuition_text is not None:
            if self.intuition_bank is None:
                raise ValueError(
                    "intuition_text needs an intuition bank: attach one with model.attach_intuition_bank(bank) "
                    "or load an adapter folder that contains one"
                )
            texts = [intuition_text] if isinstance(intuition_text, str) else list(intuition_text)
            intuition = self.intuition_bank.score(texts)
        if intuition is None:
            if self.routing.disabled:
                return None
            raise ValueError(
                f"this T-REX adapter routes with intuition: pass intuition=Tensor[batch, {config.intuition_width}] "
                "(one row per instance) or intuition_text=[prompt, ...] with an intuition bank attached"
            )
        intuition = torch.as_tensor(intuition)
        if intuition.dim() != 2 or intuition.shape[1] != config.intuition_width:
            raise ValueError(
                f"intuition must have shape (batch, {config.intuition_width}), got {tuple(intuition.shape)}"
            )
        if batch_size is not None and intuition.shape[0] != batch_size:
            raise ValueError(
                f"intuition has {intuition.shape[0]} rows but the batch has {batch_size} instances; "
                "give one intuition row per instance"
            )
        if not intuition.is_floating_point():
            intuition = intuition.float()
        return intuition.to(self._adapter_device())

    def _adapter_device(self) -> torch.device:
        return next(p for n, p in self.base_model.named_parameters() if "trex_" in n).device

    # ---- running ---------------------------------------------------------------------------------------------

    def forward(self, *args, intuition: Any = None, intuition_text: str | Sequence[str] | None = None, **kwargs):
        """The base model's forward, routed by ``intuition`` (batch, n_clusters) or the bank's score of text."""
        routed = self._resolve_intuition(intuition, intuition_text, _batch_size(args, kwargs))
        with self.routing.use(routed):
            return self.base_model(*args, **kwargs)

    def generate(self, *args, intuition: Any = None, intuition_text: str | Sequence[str] | None = None, **kwargs):
        """The base model's ``generate`` with per-instance intuition that follows the batch through beams,
        ``num_return_sequences`` and the KV cache (every step of an instance reuses that instance's row)."""
        routed = self._resolve_intuition(intuition, intuition_text, _batch_size(args, kwargs))

        def expand_to_running_batch(module: nn.Module, call_args: tuple, call_kwargs: dict) -> None:
            rows = _batch_size(call_args, call_kwargs)
            if routed is not None and rows is not None:
                self.routing.intuition = _expand_rows(routed, rows)

        handle = self.base_model.register_forward_pre_hook(expand_to_running_batch, with_kwargs=True)
        try:
            with self.routing.use(routed):
                return self.base_model.generate(*args, **kwargs)
        finally:
            handle.remove()

    @contextlib.contextmanager
    def disable_adapter(self) -> Iterator[None]:
        """Inside this block the model is exactly the base model (no intuition needed)."""
        with self.routing.use(self.routing.intuition, disabled=True):
            yield

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None, **kwargs):
        """Checkpoint the base model's blocks so that their recomputation sees the intuition of its own batch."""
        options = {"use_reentrant": False, **(gradient_checkpointing_kwargs or {})}
        if options["use_reentrant"] or "context_fn" in options:
            raise ValueError(
                "T-REX needs non-reentrant checkpointing with its own context_fn (so recomputed layers see their "
                "batch's intuition): leave use_reentrant and context_fn unset"
            )
        options["context_fn"] = self.routing.checkpoint_contexts
        enable = getattr(self.base_model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs=options, **kwargs)
        else:
            self.base_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options, **kwargs)

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs: dict[str, Any] | None = None, **kwargs):
        self.gradient_checkpointing_enable(activation_checkpointing_kwargs, **kwargs)

    def merge_and_unload(self) -> nn.Module:
        raise NotImplementedError(
            "T-REX cannot be merged into the base weights: G depends on each token (router) and each instance "
            "(intuition), so B·G·A is a different matrix for every token. Keep the TRexModel for inference."
        )

    # ---- parameters ------------------------------------------------------------------------------------------

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        return {ADAPTER_PREFIX + n: p for n, p in self.base_model.named_parameters() if "trex_" in n}

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameter counts; works on the meta device."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return trainable, sum(p.numel() for p in self.parameters())

    def print_trainable_parameters(self) -> None:
        trainable, total = self.parameter_counts()
        print(
            f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"
        )

    # ---- files -----------------------------------------------------------------------------------------------

    def save_pretrained(self, save_directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Write ``adapter_config.json`` + ``adapter_model.safetensors`` (+ the intuition bank), each atomically.

        The config is written last and records a checksum of every other file, so a save interrupted at any
        point leaves either the previous adapter or a folder that refuses to load, never a mix that loads.
        ``state_dict`` is a full state dict of this module gathered by a sharding engine (FSDP, ZeRO-3); by
        default the adapter's own parameters are saved.
        """
        directory = Path(save_directory)
        if state_dict is None:
            adapter = self.adapter_state_dict()
        else:
            prefix = "base_model."
            adapter = {ADAPTER_PREFIX + k[len(prefix) :]: v for k, v in state_dict.items() if "trex_" in k}
        if any(v.is_meta for v in adapter.values()):
            raise ValueError("cannot save an adapter whose parameters are on the meta device (no weights)")
        state = {k: v.detach().to("cpu").contiguous() for k, v in adapter.items()}
        directory.mkdir(parents=True, exist_ok=True)
        files: dict[str, str] = {}
        bank_dir = directory / INTUITION_DIR
        if self.intuition_bank is not None:
            self.intuition_bank.save(bank_dir)
            files.update(
                {str(p.relative_to(directory)): sha256_file(p) for p in sorted(bank_dir.rglob("*")) if p.is_file()}
            )
        elif bank_dir.exists():
            shutil.rmtree(bank_dir)
        save_tensors_atomic(state, directory / ADAPTER_WEIGHTS_NAME, metadata={"format": "pt"})
        files[ADAPTER_WEIGHTS_NAME] = sha256_file(directory / ADAPTER_WEIGHTS_NAME)
        config = self.trex_config
        if config.base_model_name_or_path is None:
            config.base_model_name_or_path = getattr(getattr(self.base_model, "config", None), "_name_or_path", None)
        atomic_write(directory / ADAPTER_CONFIG_NAME, lambda tmp: config.save(tmp, extra={"files": files}))

    @classmethod
    def from_pretrained(
        cls,
        base_model: nn.Module,
        adapter_directory: str | Path,
        is_trainable: bool = False,
        intuition_bank: IntuitionBank | None = None,
    ) -> TRexModel:
        """Inject the saved adapter into ``base_model`` and load its weights (and bank), checking every shape."""
        directory = Path(adapter_directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"adapter folder {directory} does not exist")
        config_path = directory / ADAPTER_CONFIG_NAME
        config = TRexConfig.load(config_path)
        checksums = _verify_files(directory, config_path)
        tensors = load_tensors(directory / ADAPTER_WEIGHTS_NAME)
        if intuition_bank is None and any(name.startswith(INTUITION_DIR + "/") for name in checksums):
            from trex.intuition import IntuitionBank

            intuition_bank = IntuitionBank.load(directory / INTUITION_DIR)
        model = cls(base_model, config, intuition_bank=intuition_bank)
        model.load_adapter_weights(tensors, source=str(directory / ADAPTER_WEIGHTS_NAME))
        if not is_trainable:
            model.eval()
            for param in model.parameters():
                param.requires_grad = False
        return model

    def load_adapter_weights(self, tensors: dict[str, torch.Tensor], source: str = "adapter") -> None:
        """Copy saved adapter tensors in, naming the module and the sizes on any mismatch."""
        expected = self.adapter_state_dict()
        unexpected = sorted(set(tensors) - set(expected))
        if unexpected:
            module = unexpected[0][len(ADAPTER_PREFIX) :].rsplit(".", 1)[0]
            raise ValueError(
                f"{source} has weights for {len(unexpected)} tensors this base model does not adapt, e.g. module "
                f"{module!r}: the adapter was made for another base model or target_modules"
            )
        missing = sorted(set(expected) - set(tensors))
        if missing:
            raise ValueError(f"{source} lacks {len(missing)} adapter tensors, e.g. {missing[0]!r}")
        for key, param in expected.items():
            if tensors[key].shape != param.shape:
                module_path, _, name = key[len(ADAPTER_PREFIX) :].rpartition(".")
                layer = self.base_model.get_submodule(module_path)
                raise ValueError(
                    f"{source}: module {module_path!r} has {name} of shape {tuple(tensors[key].shape)} in the adapter "
                    f"but {tuple(param.shape)} on this base model (its layer maps {layer.in_features} -> "
                    f"{layer.out_features}): the adapter was made for another base model"
                )
        with torch.no_grad():
            for key, param in expected.items():
                param.copy_(tensors[key])


def _verify_files(directory: Path, config_path: Path) -> dict[str, str]:
    """Check every file the config lists against its recorded checksum (an interrupted save fails here)."""
    checksums = json.loads(config_path.read_text()).get("files", {})
    if ADAPTER_WEIGHTS_NAME not in checksums:
        raise ValueError(f"{config_path} lists no {ADAPTER_WEIGHTS_NAME}; the adapter folder is incomplete")
    for name, digest in checksums.items():
        path = directory / name
        if not path.is_file():
            raise FileNotFoundError(f"adapter folder {directory} is missing {name}")
        if sha256_file(path) != digest:
            raise ValueError(
                f"{path} does not match the checksum in {config_path.name}: the save was interrupted or the file "
                "was changed or truncated"
            )
    return checksums


def get_trex_model(model: nn.Module, config: TRexConfig, intuition_bank: IntuitionBank | None = None) -> TRexModel:
    """Inject T-REX layers into ``model`` (in place) and freeze everything else; works on the meta device."""
    return TRexModel(model, config, intuition_bank=intuition_bank)
