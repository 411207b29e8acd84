"""trex: multitask parameter-efficient finetuning with a mixture of rank-one experts and semantic intuition."""

__version__ = "0.1.0"
