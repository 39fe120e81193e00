"""Shared test settings."""

import torch

# One intra-op thread: on the 2-core machines here other processes share the cores, and
# OpenMP workers spin-waiting for a busy core made the torch tests 2-4x slower with 2 threads.
torch.set_num_threads(1)
