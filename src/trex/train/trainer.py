"""``TRexTrainer``: transformers' Trainer with adapter-only, pickle-free, crash-safe checkpoints.

Training, gradient accumulation and distribution (DDP, FSDP, DeepSpeed through accelerate) stay the Trainer's.
What changes is what a checkpoint holds and how it is written (see ``trex.train.checkpoint``). Under DeepSpeed and
FSDP the engines write their own sharded optimizer states, and the Trainer's own code handles those.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from transformers import Trainer

from trex.config import ADAPTER_WEIGHTS_NAME
from trex.io import load_tensors
from trex.model import TRexModel
from trex.train import checkpoint as ckpt

logger = logging.getLogger(__name__)

SCALER_JSON = "scaler.json"


class TRexTrainer(Trainer):
    def _trex_model(self) -> TRexModel:
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        if not isinstance(model, TRexModel):
            raise TypeError(f"TRexTrainer trains a TRexModel, got {type(model).__name__}")
        return model

    def _engine_managed(self) -> bool:
        return bool(self.is_deepspeed_enabled or self.is_fsdp_enabled)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        if self.args.should_save:
            self._trex_model().save_pretrained(output_dir or self.args.output_dir, state_dict=state_dict)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        path = Path(resume_from_checkpoint) / ADAPTER_WEIGHTS_NAME
        self._trex_model().load_adapter_weights(load_tensors(path), source=str(path))

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if self._engine_managed():
            return super()._save_optimizer_and_scheduler(output_dir)
        if self.args.should_save:
            ckpt.save_optimizer(self.optimizer, Path(output_dir))
            ckpt.save_scheduler(self.lr_scheduler, Path(output_dir))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is None:
            return
        if self._engine_managed():
            return super()._load_optimizer_and_scheduler(checkpoint)
        if (Path(checkpoint) / ckpt.OPTIMIZER_TENSORS).is_file():
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
        """Write the checkpoint, then its COMPLETE marker, and only then drop old checkpoints."""
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
