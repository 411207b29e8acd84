"""What every adapter method of this package shares: injection into a causal LM, freezing, the per-instance prior,
``disable_adapter``, gradient checkpointing, ``generate``, and checksummed atomic save/load.

A method supplies an ``AdapterLayer`` subclass (its parameters and its ``adapter_output``) and, when it needs more,
fills the small hooks of ``RoutedAdapterModel``. peft's ``BaseTuner`` + ``LoraVariant`` and torchtune's
``AdapterModule`` were the examples: the model owns the life cycle, the layer owns only its math.

``AdapterModel`` is the interface the trainer, evaluation and the CLI use; ``RoutedAdapterModel`` implements it for
the layers of this package (T-REX, MoR1E, MoLoRA, SiRA) and ``trex.methods.lora.PeftLoraModel`` for peft's LoRA.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from trex.io import atomic_write, load_tensors, member_file, save_tensors_atomic, sha256_file
from trex.methods.config import AdapterConfig, read_config_file
from trex.routing import RoutingContext

if TYPE_CHECKING:
    from trex.intuition import IntuitionBank

logger = logging.getLogger(__name__)

ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
ADAPTER_PREFIX = "base_model.model."  # peft's key prefix, so tools that read peft checkpoints find familiar names
INTUITION_DIR = "intuition"
MAX_LISTED_FILE_BYTES = 64 << 30
"""A file listed in an adapter config larger than this is refused before it is hashed."""


def find_target_modules(model: nn.Module, config: Any) -> list[str]:
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


def adapter_dtype(base_dtype: torch.dtype) -> torch.dtype:
    """Adapter weights are fp32 masters on a bf16/fp16 base (they would barely move in bf16); fp64 stays fp64."""
    return torch.promote_types(base_dtype, torch.float32) if base_dtype.is_floating_point else torch.float32


class AdapterLayer(nn.Module):
    """A frozen ``nn.Linear`` plus an adapter: ``y = base_layer(x) + adapter_output(x)``.

    Subclasses name their parameters with ``prefix`` (which marks them as adapter parameters), create them with
    ``self.factory`` (the base weight's device, fp32 or wider) and implement ``adapter_output``. The per-instance
    prior (intuition) is read from the shared ``RoutingContext`` by ``prior(x)``.
    """

    prefix: ClassVar[str]

    def __init__(self, base_layer: nn.Linear, routing: RoutingContext, prior_width: int | None) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.routing = routing
        self.prior_width = prior_width
        self.in_features, self.out_features = base_layer.in_features, base_layer.out_features
        weight = base_layer.weight
        self.factory = {"device": weight.device, "dtype": adapter_dtype(weight.dtype)}

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        result = self.base_layer(x, *args, **kwargs)
        if self.routing.disabled:
            return result
        adapter = self.adapter_output(x)
        return result + (adapter if adapter.dtype == result.dtype else adapter.to(result.dtype))

    def adapter_output(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def router_probabilities(self, x: torch.Tensor, intuition: torch.Tensor | None) -> torch.Tensor | None:
        """The router's distribution over experts for input ``x`` (None for layers without a router)."""
        return None

    def prior(self, x: torch.Tensor, intuition: torch.Tensor | None) -> torch.Tensor | None:
        """Check the per-instance prior against x and view it for broadcasting over x's tokens."""
        if self.prior_width is None:
            return None
        if intuition is None:
            raise RuntimeError(
                "this adapter layer routes with intuition, but none was given: pass intuition=Tensor[batch, "
                f"{self.prior_width}] (or intuition_text=[...]) to the model's forward/generate"
            )
        batch = x.shape[0] if x.dim() >= 2 else 1
        dtype = self._parameter_dtype()
        # the usual case: shared by every layer, checked once per call (a compiled graph does that work once anyway)
        if intuition is self.routing.intuition and not torch.compiler.is_compiling():
            key = (self.prior_width, x.dim(), batch, dtype)
            return self.routing.prior_view(key, lambda: self._prior_view(intuition, x.dim(), batch, dtype))
        return self._prior_view(intuition, x.dim(), batch, dtype)

    def _prior_view(self, intuition: torch.Tensor, x_dim: int, batch: int, dtype: torch.dtype) -> torch.Tensor:
        if intuition.dim() != 2 or intuition.shape[-1] != self.prior_width:
            raise ValueError(f"intuition must have shape (batch, {self.prior_width}), got {tuple(intuition.shape)}")
        if intuition.shape[0] != batch:
            raise ValueError(
                f"intuition has {intuition.shape[0]} rows but the layer input has batch size {batch}; "
                "give one intuition row per instance"
            )
        intuition = intuition.to(dtype)
        if x_dim < 2:
            return intuition[0]
        return intuition.view(intuition.shape[0], *([1] * (x_dim - 2)), intuition.shape[-1])

    def _parameter_dtype(self) -> torch.dtype:
        """The adapter parameters' dtype now (``factory`` records it at construction; ``.double()`` changes it)."""
        for name, param in self.named_parameters():
            if not name.startswith("base_layer."):
                return param.dtype
        return self.factory["dtype"]


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


class AdapterModel(nn.Module):
    """The interface every method's model offers to the trainer, evaluation and the CLI.

    Attributes a subclass sets: ``base_model`` (the wrapped causal LM), ``adapter_config`` (the method's config)
    and ``adapted_modules`` (paths of the adapted linear layers).
    """

    base_model: nn.Module
    adapter_config: Any
    adapted_modules: list[str]

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_model":
                raise
            return getattr(self.base_model, name)

    @property
    def needs_instance_inputs(self) -> bool:
        """Whether each instance must come with a prior row (``intuition``) in forward and generate."""
        return False

    def instance_inputs(
        self, texts: Sequence[str] | None = None, tasks: Sequence[str] | None = None
    ) -> torch.Tensor | None:
        """The per-instance prior rows (batch, width) for instances given by their texts and tasks; None if unused.

        Training and evaluation both call this, so an instance is routed by the same vector in both.
        """
        return None

    def auxiliary_loss(self) -> dict[str, torch.Tensor]:
        """Auxiliary losses of the last training forward, by name, each the mean over adapted layers (empty when
        the method has none or they are off)."""
        return {}

    def routing_statistics(
        self, batch: dict[str, torch.Tensor], routing_out: dict[str, torch.Tensor] | None = None
    ) -> dict[str, dict[str, float]]:
        """Per adapted module, statistics of the routing of ``batch`` for ``metrics.jsonl`` (empty: no router);
        ``routing_out`` receives each routed module's per-token routing (nothing here)."""
        return {}

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def load_adapter_weights(self, tensors: dict[str, torch.Tensor], source: str = "adapter") -> None:
        raise NotImplementedError

    def save_pretrained(self, save_directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        raise NotImplementedError

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameter counts; works on the meta device."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return trainable, sum(p.numel() for p in self.parameters())

    def print_trainable_parameters(self) -> None:
        trainable, total = self.parameter_counts()
        print(
            f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"
        )


class RoutedAdapterModel(AdapterModel):
    """A causal LM whose target linear layers carry this package's adapter layers.

    The per-instance prior (``intuition``, one row per instance) is an argument of ``forward`` and ``generate``,
    held by the layers' shared ``RoutingContext`` only while that call runs. Everything else is delegated to the
    wrapped transformers model, so ``model.config``, ``model.device`` and friends work as users expect.

    Hooks for a method: ``layer_class`` and ``make_layer``; ``_legacy_keys`` to read older weight files.
    """

    config_class: ClassVar[type[AdapterConfig]]

    def __init__(self, base_model: nn.Module, config: AdapterConfig, intuition_bank: IntuitionBank | None = None):
        super().__init__()
        self.base_model = base_model
        self.adapter_config = config
        self.routing = RoutingContext()
        self.adapted_modules = self._inject()
        self._adapter_ids = {id(p) for _, p in self._named_adapter_parameters()}
        for param in base_model.parameters():
            param.requires_grad = id(param) in self._adapter_ids
        self._last_losses: dict[str, torch.Tensor] = {}
        self.intuition_bank = None
        # new layers are created in training mode: follow the base model's mode, or an adapter built on an eval-mode
        # model would route with training-only rules (SiRA's capacity and expert dropout) and a random output
        self.train(base_model.training)
        if intuition_bank is not None:
            self.attach_intuition_bank(intuition_bank)

    # ---- injection -------------------------------------------------------------------------------------------

    def make_layer(self, base_layer: nn.Linear) -> AdapterLayer:
        raise NotImplementedError

    def _inject(self) -> list[str]:
        if any(isinstance(m, AdapterLayer) for m in self.base_model.modules()):
            raise ValueError("this model already has adapter layers; load adapters onto a fresh base model")
        names = find_target_modules(self.base_model, self.adapter_config)
        for name in names:
            parent_name, _, child = name.rpartition(".")
            parent = self.base_model.get_submodule(parent_name) if parent_name else self.base_model
            setattr(parent, child, self.make_layer(getattr(parent, child)))
        return names

    def adapter_layers(self) -> dict[str, AdapterLayer]:
        return {name: self.base_model.get_submodule(name) for name in self.adapted_modules}

    def _named_adapter_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        for path, layer in self.adapter_layers().items():
            for name, param in layer.named_parameters():
                if not name.startswith("base_layer."):
                    yield f"{path}.{name}", param

    # ---- the per-instance prior -----------------------------------------------------------------------------

    @property
    def needs_instance_inputs(self) -> bool:
        return self.adapter_config.prior_width is not None

    def attach_intuition_bank(self, bank: IntuitionBank) -> None:
        """Use ``bank`` to turn ``intuition_text`` into intuition; it is saved inside the adapter folder."""
        config = self.adapter_config
        if getattr(config, "intuition_source", "bank") != "bank":
            raise ValueError(f"this adapter routes with intuition_source={config.intuition_source!r}, not a bank")
        if config.prior_width is not None and bank.n_clusters != config.prior_width:
            raise ValueError(
                f"the intuition bank has {bank.n_clusters} clusters but this adapter expects intuition of width "
                f"{config.prior_width}"
            )
        self.intuition_bank = bank

    def instance_inputs(
        self, texts: Sequence[str] | None = None, tasks: Sequence[str] | None = None
    ) -> torch.Tensor | None:
        config = self.adapter_config
        if config.prior_width is None:
            return None
        if config.intuition_source == "task_category":
            from trex.methods.categories import category_prior

            if tasks is None:
                raise ValueError("this adapter routes by task category: pass task=[task name, ...]")
            return category_prior(tasks)
        if texts is None:
            raise ValueError("this adapter routes with intuition: pass intuition_text=[prompt, ...]")
        if self.intuition_bank is None:
            raise ValueError(
                "intuition_text needs an intuition bank: attach one with model.attach_intuition_bank(bank) "
                "or load an adapter folder that contains one"
            )
        return self.intuition_bank.score(list(texts))

    def _resolve_intuition(
        self, intuition: Any, intuition_text: str | Sequence[str] | None, task: str | Sequence[str] | None,
        batch_size: int | None,
    ) -> torch.Tensor | None:  # fmt: skip
        width = self.adapter_config.prior_width
        given = [name for name, v in (("intuition", intuition), ("intuition_text", intuition_text), ("task", task))
                 if v is not None]  # fmt: skip
        if width is None:
            if given:
                raise ValueError(
                    f"this adapter takes no per-instance input (built without intuition); do not pass {given[0]}"
                )
            return None
        if len(given) > 1:
            raise ValueError(f"pass only one of intuition, intuition_text and task, got {', '.join(given)}")
        if intuition_text is not None or task is not None:
            intuition = self.instance_inputs(
                [intuition_text] if isinstance(intuition_text, str) else intuition_text,
                [task] if isinstance(task, str) else task,
            )
        if intuition is None:
            if self.routing.disabled:
                return None
            source = "task=[task name, ...]" if self.adapter_config.intuition_source == "task_category" else (
                "intuition_text=[prompt, ...] with an intuition bank attached"
            )  # fmt: skip
            raise ValueError(
                f"this adapter routes with intuition: pass intuition=Tensor[batch, {width}] (one row per instance) "
                f"or {source}"
            )
        intuition = torch.as_tensor(intuition)
        if intuition.dim() != 2 or intuition.shape[1] != width:
            raise ValueError(f"intuition must have shape (batch, {width}), got {tuple(intuition.shape)}")
        if batch_size is not None and intuition.shape[0] != batch_size:
            raise ValueError(
                f"intuition has {intuition.shape[0]} rows but the batch has {batch_size} instances; "
                "give one intuition row per instance"
            )
        if not intuition.is_floating_point():
            intuition = intuition.float()
        if not bool(torch.isfinite(intuition).all()):
            raise ValueError("intuition holds NaN or infinite values; every entry must be a finite number")
        return intuition.to(self._adapter_device())

    def _adapter_device(self) -> torch.device:
        """Where the first adapted layer's own parameters live (asked on every forward: one layer, not all 210)."""
        layer = self.base_model.get_submodule(self.adapted_modules[0])
        return next(p for n, p in layer.named_parameters() if not n.startswith("base_layer.")).device

    # ---- running ---------------------------------------------------------------------------------------------

    def forward(
        self, *args, intuition: Any = None, intuition_text: str | Sequence[str] | None = None,
        task: str | Sequence[str] | None = None, **kwargs,
    ):  # fmt: skip
        """The base model's forward, routed by ``intuition`` (batch, width), the bank's score of ``intuition_text``
        or the category prior of ``task``; auxiliary router losses of a training forward are kept for the trainer."""
        routed = self._resolve_intuition(intuition, intuition_text, task, _batch_size(args, kwargs))
        mask = kwargs.get("attention_mask") if self.training else None  # padding takes no expert capacity
        with self.routing.use(routed), self.routing.real_tokens(mask), self.routing.collect_losses() as losses:
            output = self.base_model(*args, **kwargs)
        # the mean over adapted layers, as transformers' Mixtral takes one balance loss over all layers' routers: a
        # sum over SmolLM2's 210 adapted modules made SiRA's 0.01-weighted loss 2.2 against a language loss of 5.2
        self._last_losses = {name: torch.stack(values).mean() for name, values in losses.items()}
        return output

    def auxiliary_loss(self) -> dict[str, torch.Tensor]:
        return self._last_losses

    def generate(
        self, *args, intuition: Any = None, intuition_text: str | Sequence[str] | None = None,
        task: str | Sequence[str] | None = None, **kwargs,
    ):  # fmt: skip
        """The base model's ``generate`` with per-instance intuition that follows the batch through beams,
        ``num_return_sequences`` and the KV cache (every step of an instance reuses that instance's row)."""
        routed = self._resolve_intuition(intuition, intuition_text, task, _batch_size(args, kwargs))

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
                "adapters with a per-instance prior need non-reentrant checkpointing with their own context_fn (so "
                "recomputed layers see their batch's intuition): leave use_reentrant and context_fn unset"
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
            f"{self.adapter_config.display_name} cannot be merged into the base weights: its routing depends on each "
            "token (router) and each instance (intuition), so the update is a different matrix for every token. Keep "
            "the adapter model for inference."
        )

    # ---- routing statistics --------------------------------------------------------------------------------

    @torch.no_grad()
    def routing_statistics(
        self, batch: dict[str, torch.Tensor], routing_out: dict[str, torch.Tensor] | None = None
    ) -> dict[str, dict[str, float]]:
        """Per adapted module: mean normalised entropy of the router over real tokens, and the router's gates.

        Entropy 1 is uniform routing over all experts, 0 is one expert per token. The paper preset's
        ``token_share`` ``σ(k·g)`` says how much of G comes from the token router rather than from intuition.
        ``routing_out``, when given, receives each routed module's routing of every real token, (tokens, cells) on
        the CPU: the mixing matrix G flattened for layers that have one (every gate in), else the router's
        distribution; comparing it between probes gives the router convergence of v2 Fig. 2.
        """
        captured: dict[str, float] = {}
        mask = batch["attention_mask"].bool()

        def hook(name: str):
            def record(module: AdapterLayer, args: tuple, output: Any) -> None:
                p = module.router_probabilities(args[0], self.routing.intuition)
                if p is not None:
                    p = p.expand(*args[0].shape[:-1], p.shape[-1])  # a prior-only router gives one row per instance
                    entropy = -(p * p.clamp_min(1e-12).log()).sum(-1) / math.log(p.shape[-1])
                    captured[name] = entropy[mask].mean().item()
                    if routing_out is not None:
                        weights = getattr(module, "routing_weights", None)
                        value = p if weights is None else weights(args[0], self.routing.intuition).flatten(-2)
                        routing_out[name] = value.expand(*p.shape[:-1], value.shape[-1])[mask].float().cpu()

            return record

        layers = self.adapter_layers()
        handles = [m.register_forward_hook(hook(name)) for name, m in layers.items()]
        was_training = self.training
        self.eval()
        try:
            self(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], intuition=batch.get("intuition")
            )
        finally:
            self.train(was_training)
            for handle in handles:
                handle.remove()
        stats: dict[str, dict[str, float]] = {}
        for name, layer in layers.items():
            router = getattr(layer, "router", None)
            row = {"entropy": captured[name]} if name in captured else {}
            row.update(router.gate_values() if router is not None else {})
            if row:
                stats[name] = row
        return stats

    # ---- parameters and files --------------------------------------------------------------------------------

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        return {ADAPTER_PREFIX + n: p for n, p in self._named_adapter_parameters()}

    def save_pretrained(self, save_directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Write ``adapter_config.json`` + ``adapter_model.safetensors`` (+ the intuition bank), each atomically.

        The config is written last and records a checksum of every other file, so a save interrupted at any
        point leaves either the previous adapter or a folder that refuses to load, never a mix that loads.
        ``state_dict`` is a full state dict of this module gathered by a sharding engine (FSDP, ZeRO-3); by
        default the adapter's own parameters are saved.
        """
        directory = Path(save_directory)
        names = set(self.adapter_state_dict())
        if state_dict is None:
            adapter = self.adapter_state_dict()
        else:
            prefix = "base_model."
            adapter = {ADAPTER_PREFIX + k[len(prefix) :]: v for k, v in state_dict.items()}
            adapter = {k: v for k, v in adapter.items() if k in names}
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
        config = self.adapter_config
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
    ) -> RoutedAdapterModel:
        """Inject the saved adapter into ``base_model`` and load its weights (and bank), checking every shape."""
        directory = Path(adapter_directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"adapter folder {directory} does not exist")
        config_path = directory / ADAPTER_CONFIG_NAME
        config = cls.config_class.load(config_path)
        checksums = verify_listed_files(directory, config_path)
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

    def _legacy_keys(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename the keys of weight files written by older releases (none by default)."""
        return tensors

    def load_adapter_weights(self, tensors: dict[str, torch.Tensor], source: str = "adapter") -> None:
        """Copy saved adapter tensors in, naming the module and the sizes on any mismatch."""
        tensors = self._legacy_keys(tensors)
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
                path = key[len(ADAPTER_PREFIX) :]
                module_path = next(m for m in self.adapted_modules if path.startswith(m + "."))
                name = path[len(module_path) + 1 :]
                layer = self.base_model.get_submodule(module_path)
                raise ValueError(
                    f"{source}: module {module_path!r} has {name} of shape {tuple(tensors[key].shape)} in the adapter "
                    f"but {tuple(param.shape)} on this base model (its layer maps {layer.in_features} -> "
                    f"{layer.out_features}): the adapter was made for another base model"
                )
        with torch.no_grad():
            for key, param in expected.items():
                param.copy_(_like_parameter(tensors[key], param))


def _like_parameter(full: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """The full saved tensor as ``param`` holds it: this rank's shard when FSDP has sharded the parameter.

    Every rank has read the same file, so each cuts its own shard without communication (``src_data_rank=None``).
    """
    from torch.distributed.tensor import DTensor, distribute_tensor

    if not isinstance(param, DTensor):
        return full
    return distribute_tensor(full.to(param.dtype), param.device_mesh, param.placements, src_data_rank=None)


def verify_listed_files(directory: Path, config_path: Path) -> dict[str, str]:
    """Check every file the config lists against its recorded checksum (an interrupted save fails here).

    Listed names must stay inside the folder and be regular files of a sane size, checked before any byte is read:
    a config is data from whoever shipped the adapter, not a list of paths to trust.
    """
    checksums = read_config_file(config_path).get("files", {})
    if not isinstance(checksums, dict) or not all(isinstance(v, str) for v in checksums.values()):
        raise ValueError(f"{config_path}: 'files' must map file names to sha256 strings")
    if ADAPTER_WEIGHTS_NAME not in checksums:
        raise ValueError(f"{config_path} lists no {ADAPTER_WEIGHTS_NAME}; the adapter folder is incomplete")
    for name, digest in checksums.items():
        path = member_file(directory, name, MAX_LISTED_FILE_BYTES)
        if sha256_file(path) != digest:
            raise ValueError(
                f"{path} does not match the checksum in {config_path.name}: the save was interrupted or the file "
                "was changed or truncated"
            )
    return checksums


def read_adapter_config(directory: str | Path) -> dict[str, Any]:
    """The raw ``adapter_config.json`` of an adapter folder (for dispatching on ``peft_type`` / ``method``)."""
    return read_config_file(Path(directory) / ADAPTER_CONFIG_NAME)
