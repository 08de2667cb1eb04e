"""Suite-wide settings: one torch thread.

The test models are tiny; on a 2-core machine shared with other work, two intra-op threads made
small backward passes up to 100x slower (threads waiting on each other), and results are the same.
"""
import torch

torch.set_num_threads(1)
