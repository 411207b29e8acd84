"""What a result was measured with: package versions and hardware, recorded in every results.json."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from typing import Any

import torch

PACKAGES = ("trex", "torch", "transformers", "tokenizers", "sentence-transformers", "lm-eval")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, CPU/GPU and thread count: the context needed to compare instances/s across runs."""
    hardware: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        hardware["gpu"] = torch.cuda.get_device_name(device)
    versions = {"python": sys.version.split()[0], **{p: _version(p) for p in PACKAGES}}
    return {"versions": versions, "hardware": hardware}
