"""Synthesis recipes on the optimization engine (``convlens.optim``): class / channel / neuron
visualization, multifaceted visualization, generator-space visualization, DeepDream, feature
inversion (see docs/synthesis.md); Gram texture synthesis, style transfer and fast style transfer
(see docs/texture-style.md)."""
from .accentuate import AccentuateConfig, Accentuation, accentuate
from .deepdream import Dream, DreamConfig, deepdream
from .evidence import Evidence, natural_evidence
from .facets import Facets, FacetsConfig, pick_channel, visualize_facets
from .fast_style import (FastStyleConfig, FastStyleTraining, TransformerNet, arbitrary_style, fast_style, load_fast_style,
                         shipped_styles, train_fast_style)
from .generator import ConvGenerator, load_face_generator
from .inversion import Inversion, InversionRow, InvertConfig, invert, invert_layers
from .style import (StyleConfig, StyleResult, TextureConfig, gram, style_transfer, synthesize_texture,
                    texture_layer_sets)
from .visualize import VizConfig, Visualization, visualize_channel, visualize_class, visualize_neuron

__all__ = ["VizConfig", "Visualization", "visualize_class", "visualize_channel", "visualize_neuron",
           "Evidence", "natural_evidence", "AccentuateConfig", "Accentuation", "accentuate",
           "FacetsConfig", "Facets", "visualize_facets", "pick_channel", "ConvGenerator", "load_face_generator",
           "DreamConfig", "Dream", "deepdream", "InvertConfig", "Inversion", "InversionRow", "invert",
           "invert_layers",
           "gram", "StyleConfig", "StyleResult", "style_transfer", "TextureConfig", "synthesize_texture",
           "texture_layer_sets", "TransformerNet", "FastStyleConfig", "FastStyleTraining", "train_fast_style",
           "load_fast_style", "fast_style", "arbitrary_style", "shipped_styles"]
