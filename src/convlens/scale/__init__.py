"""scale: the dataset passes on Ray (embedding extraction, top-k / max-activating patches) and
million-scale vector search (FAISS IVF-PQ / HNSW built in chunks, memory-mapped at query time: its
code lives in ``convlens.embed.index``; ``build_large_index`` is re-exported here).

    from convlens.scale import embed_images_ray, build_large_index
    store = embed_images_ray(model, "s3://bucket/photos", out="photos.emb", address="auto")
    ann = build_large_index(store, kind="ivfpq")        # recall@10 vs exact printed at build time

Ray is an optional extra (``pip install 'convlens[ray]'``), imported only by the Ray passes.
See docs/scaling.md for the measured figures and the 100M-image plan.
"""
from ..embed.index import build_large_index
from .ray_engine import embed_images_ray, max_activating_patches_ray, top_activations_ray
from .runtime import INSTALL_HINT, require_ray, ray_session

__all__ = ["embed_images_ray", "top_activations_ray", "max_activating_patches_ray", "build_large_index"]
