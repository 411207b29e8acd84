"""``trex compare``: every method on the same budget, seeds and instances; resumable over several sittings."""

from trex.compare.config import CompareConfig, load_compare_config
from trex.compare.driver import run_comparison, status_rows, steps

__all__ = ["CompareConfig", "load_compare_config", "run_comparison", "status_rows", "steps"]
