"""inspect: look inside a CNN - filter grids, activation grids, maximally activating patches.

    import convlens
    m = convlens.load_model()
    convlens.filters(m, "features.0.0").save("filters.png")
    convlens.activations(m, "chelsea", "features.3").save("acts.png")
    p = convlens.max_activating_patches(m, convlens.sample_dataset(300), "features.6", [3, 7, 12], k=9)
    p.save("patches.png")

Public names listed in __all__ are re-exported as ``convlens.<name>`` (see docs/inspect.md).
"""
from .activations import LayerActivations, activations
from .concepts import Concepts, ConceptsConfig, concepts
from .figures import activation_atlas, atlas_layout, unit_filters_figure  # noqa: F401 - atlas_layout: convlens.inspect.*
from .filters import FilterGrid, filters
from .patches import Patches, max_activating_patches
from .samples import SOURCES as SAMPLE_SOURCES, SampleDataset, sample_dataset
from .topk import TopActivations, top_activations
from .units import ConvInputs, channel_top, conv_inputs  # noqa: F401 - ConvInputs: convlens.inspect.*

__all__ = ["filters", "FilterGrid", "activations", "LayerActivations", "max_activating_patches", "Patches",
           "top_activations", "TopActivations", "sample_dataset", "SampleDataset", "unit_filters_figure",
           "activation_atlas", "conv_inputs", "channel_top", "concepts", "Concepts", "ConceptsConfig"]
