"""trex: multitask parameter-efficient finetuning with a mixture of rank-one experts and semantic intuition."""

__version__ = "0.1.0"

from trex.config import TRexConfig  # noqa: E402
from trex.layer import TRexLinear  # noqa: E402
from trex.model import TRexModel, get_trex_model  # noqa: E402

__all__ = ["TRexConfig", "TRexLinear", "TRexModel", "get_trex_model", "__version__"]
