"""Rendering: grids, heat-map overlays, side-by-side rows, and the HTML report."""
from .figures import as_pil, colormap, font, grid, heatmap, normalize_map, overlay, side_by_side, stack_rows
from .report import Report, Section

__all__ = ["grid", "overlay", "heatmap", "normalize_map", "side_by_side", "stack_rows", "colormap", "as_pil",
           "font", "Report", "Section"]
