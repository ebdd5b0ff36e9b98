"""Drivers shared by techniques: batched dataset forward passes (more drivers live with their recipes)."""
from .forward import Batch, batched_forward, default_threads, iter_batches, thread_budget

__all__ = ["batched_forward", "Batch", "iter_batches", "thread_budget", "default_threads"]
