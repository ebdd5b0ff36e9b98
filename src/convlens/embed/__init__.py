"""embed: image feature stores, nearest neighbours, PCA / t-SNE / UMAP maps, the t-SNE grid,
"why are these two similar?", TensorBoard projector export, and word / phrase neighbours.

    import convlens
    m = convlens.load_model()
    store = convlens.embed_images(m, "photos/", out="photos.emb")     # resumable, out of core
    nb = store.neighbors(0, k=10); nb.figure().save("nn.png")          # cosine in [-1, 1]
    p = convlens.project(store, "tsne")                                 # openTSNE, saved in the store
    img, g = convlens.tsne_grid(store, p)                               # Karpathy's grid
    convlens.words.neighbors(["麻辣烫"], vocab=convlens.words.FOOD_VOCAB)

Public names listed in __all__ are re-exported as ``convlens.<name>`` (see docs/embeddings.md).
"""
from . import words
from .explain import SimilarityMap, why_similar
from .export import coords_table, export_projector
from .extract import default_layer as embedding_layer, embed_images
from .maps import (GridAssignment, grid_assign, grid_image, neighbor_figure, pixel_vs_feature, thumbnail_map,
                   tsne_grid)
from .project import Projection, project, trustworthiness
from .search import AnnIndex, Neighbors, build_index, exact_search, knn_graph, near_duplicates
from .store import ArrayStore, EmbeddingStore, StoreReport

__all__ = ["embed_images", "embedding_layer", "EmbeddingStore", "ArrayStore", "StoreReport", "Neighbors",
           "AnnIndex", "build_index", "exact_search", "knn_graph", "near_duplicates", "project", "Projection",
           "trustworthiness", "thumbnail_map", "grid_assign", "grid_image", "tsne_grid", "GridAssignment",
           "neighbor_figure", "pixel_vs_feature", "why_similar", "SimilarityMap", "export_projector",
           "coords_table", "words"]
