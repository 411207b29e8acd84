"""``AdapterTrainer``: transformers' Trainer for any adapter method, with adapter-only, pickle-free, crash-safe
checkpoints and the method's auxiliary router losses.

Training, gradient accumulation and distribution (DDP, FSDP, DeepSpeed through accelerate) stay the Trainer's.
What changes is what a checkpoint holds and how it is written (see ``trex.train.checkpoint``), and that the model's
auxiliary losses (load balancing, z-loss; see ``trex.methods.routers``) are added to the loss and logged. Under
FSDP the optimizer's shards are gathered and written in the same safe files; DeepSpeed writes (and on resume reads)
its own checkpoint files, with its own loader.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from transformers import Trainer

from trex.config import ADAPTER_WEIGHTS_NAME
from trex.io import load_tensors
from trex.methods.base import AdapterModel
from trex.train import checkpoint as ckpt

logger = logging.getLogger(__name__)

SCALER_JSON = "scaler.json"


class AdapterTrainer(Trainer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._aux_totals: dict[str, float] = {}
        self._aux_count = 0

    def _trex_model(self) -> AdapterModel:
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        if not isinstance(model, AdapterModel):
            raise TypeError(f"AdapterTrainer trains an adapter model of trex.methods, got {type(model).__name__}")
        return model

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The model's loss plus its auxiliary router losses, on the same footing under gradient accumulation.

        When the Trainer scales the language-model loss for accumulation itself (a sum over the accumulated
        batch's tokens), a per-micro-batch auxiliary mean is divided by the accumulation steps to match.
        """
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        losses = self._trex_model().auxiliary_loss() if model.training else {}
        if not losses:
            return result
        loss, outputs = result if return_outputs else (result, None)
        scaled_for_ga = self.loss_is_scaled_for_ga
        if scaled_for_ga is None:
            scaled_for_ga = (self.model_accepts_loss_kwargs and num_items_in_batch is not None) or (
                self.compute_loss_func is not None
            )
        divisor = self.current_gradient_accumulation_steps if scaled_for_ga else 1
        aux = torch.stack(list(losses.values())).sum()
        loss = loss + aux / divisor
        for name, value in losses.items():
            self._aux_totals[name] = self._aux_totals.get(name, 0.0) + value.detach().item()
        self._aux_count += 1
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        """Add the mean of each auxiliary loss since the last log (as ``aux_<name>``)."""
        if self._aux_count and "loss" in logs:
            logs = {**logs, **{f"aux_{k}": v / self._aux_count for k, v in self._aux_totals.items()}}
            self._aux_totals, self._aux_count = {}, 0
        super().log(logs, *args, **kwargs)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        if self.args.should_save:
            self._trex_model().save_pretrained(output_dir or self.args.output_dir, state_dict=state_dict)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """Load the adapter file; under FSDP each rank keeps its own shard of every parameter."""
        path = Path(resume_from_checkpoint) / ADAPTER_WEIGHTS_NAME
        self._trex_model().load_adapter_weights(load_tensors(path), source=str(path))

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        """Optimizer tensors in safetensors, the rest in JSON (FSDP's shards gathered); DeepSpeed writes its own."""
        if self.is_deepspeed_enabled:
            return super()._save_optimizer_and_scheduler(output_dir)
        if self.is_fsdp_enabled:
            ckpt.save_sharded_optimizer(self.model, self.optimizer, Path(output_dir), write=self.args.should_save)
        elif self.args.should_save:
            ckpt.save_optimizer(self.optimizer, Path(output_dir))
        if self.args.should_save:
            ckpt.save_scheduler(self.lr_scheduler, Path(output_dir))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is None:
            return
        if self.is_deepspeed_enabled:
            return super()._load_optimizer_and_scheduler(checkpoint)
        if not (Path(checkpoint) / ckpt.OPTIMIZER_TENSORS).is_file():
            return
        if self.is_fsdp_enabled:
            ckpt.load_sharded_optimizer(self.model, self.optimizer, Path(checkpoint))
        else:
            ckpt.load_optimizer(self.optimizer, Path(checkpoint))
        ckpt.load_scheduler(self.lr_scheduler, Path(checkpoint))

    def _save_scaler(self, output_dir: str) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and self.args.should_save:
            ckpt.write_json_atomic(Path(output_dir) / SCALER_JSON, scaler.state_dict())

    def _load_scaler(self, checkpoint: str | None) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        if checkpoint is not None and scaler is not None and (Path(checkpoint) / SCALER_JSON).is_file():
            scaler.load_state_dict(json.loads((Path(checkpoint) / SCALER_JSON).read_text()))

    def _save_rng_state(self, output_dir: str) -> None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        ckpt.save_rng(Path(output_dir), self.args.process_index)

    def _load_rng_state(self, checkpoint: str | None) -> None:
        if checkpoint is not None and not ckpt.load_rng(Path(checkpoint), self.args.process_index):
            logger.warning(
                "no RNG state for process %d in %s: resumption may differ", self.args.process_index, checkpoint
            )

    def _save_checkpoint(self, model, trial) -> None:
        """Mark the checkpoint in progress, write it, then its COMPLETE marker, and only then drop old ones."""
        if self.args.should_save:
            run_dir = Path(self._get_output_dir(trial=trial))
            ckpt.begin_checkpoint(run_dir / f"checkpoint-{self.state.global_step}")
        keep = self.args.save_total_limit
        self.args.save_total_limit = None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = keep
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            run_dir = Path(self._get_output_dir(trial=trial))
            ckpt.mark_complete(run_dir / f"checkpoint-{self.state.global_step}")
            ckpt.rotate_checkpoints(run_dir, keep)


TRexTrainer = AdapterTrainer
"""The name this trainer had when it trained T-REX only."""
