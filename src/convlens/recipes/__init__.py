"""Synthesis recipes on the optimization engine (``convlens.optim``): class / channel / neuron
visualization, multifaceted visualization, generator-space visualization, DeepDream, feature
inversion (see docs/synthesis.md)."""
from .deepdream import Dream, DreamConfig, deepdream
from .facets import Facets, FacetsConfig, pick_channel, visualize_facets
from .generator import ConvGenerator
from .inversion import Inversion, InversionRow, InvertConfig, invert, invert_layers
from .visualize import VizConfig, Visualization, visualize_channel, visualize_class, visualize_neuron

__all__ = ["VizConfig", "Visualization", "visualize_class", "visualize_channel", "visualize_neuron",
           "FacetsConfig", "Facets", "visualize_facets", "pick_channel", "ConvGenerator",
           "DreamConfig", "Dream", "deepdream", "InvertConfig", "Inversion", "InversionRow", "invert",
           "invert_layers"]
