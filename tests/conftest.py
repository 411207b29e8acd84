"""Tests run on one CPU thread: with two, steps stalled 10-50x whenever another process used the CPU."""

import torch

torch.set_num_threads(1)
