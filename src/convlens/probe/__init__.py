"""Probe: named activations and gradients of any layer; exact receptive fields."""
from .probe import Probe, activations, hook_count
from .receptive_field import ReceptiveField, receptive_field, receptive_fields
from .relu_modes import OverrideStats, relu_mode

__all__ = ["Probe", "activations", "hook_count", "ReceptiveField", "receptive_field", "receptive_fields", "relu_mode", "OverrideStats"]
