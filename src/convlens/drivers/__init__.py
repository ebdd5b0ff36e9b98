"""Drivers shared by techniques: batched dataset forward passes, top-k predictions (more drivers live with their recipes)."""
from .forward import Batch, batched_forward, default_threads, iter_batches, thread_budget
from .predict import Prediction, predict

__all__ = ["batched_forward", "Batch", "iter_batches", "thread_budget", "default_threads", "predict", "Prediction"]
