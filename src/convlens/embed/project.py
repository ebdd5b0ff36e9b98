"""2-D maps of embeddings: PCA, t-SNE (openTSNE) and UMAP (optional), saved into the store.

* PCA: exact, from the d x d covariance accumulated over the store's blocks in float64 (out of
  core; cosine stores are projected as unit vectors, each block normalized on the fly), or
  scikit-learn's randomized PCA (``solver="randomized"``, in memory).
* t-SNE (van der Maaten & Hinton 2008) through openTSNE with its modern defaults (Poličar et al.
  2019; Kobak & Berens 2019): perplexity 30 on the store's cached kNN graph (k = 3 x perplexity;
  cosine graphs as Euclidean distances of unit vectors, sqrt(2 - 2 cos)), PCA initialization scaled
  to std 1e-4, learning rate max(N / 12, 50) during early exaggeration 12 for 250 iterations, then
  max(N, 50) for 500 at momentum 0.8; FFT-interpolated gradients during early exaggeration from 5k points, then
  Barnes-Hut below 10k points and FFT above (``_gradient_method`` has the measurements). Above
  ``large`` points (100k) the large-N recipe: fit a random subsample, place every other point at the
  median of its 10 nearest sample points, then optimize all of them from there.
* UMAP (McInnes et al. 2018) when ``umap-learn`` is installed (``pip install convlens[umap]``), on
  the same kNN graph.
``seed`` fixes every random choice; ``reproducible=True`` also runs on one thread (the FFT/BH
gradients sum in a thread-dependent order otherwise).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConvlensError
from .exact import check_metric, exact_search, nonfinite_rows
from .export import coords_table
from .knn import knn_graph
from .vectors import ArrayStore, VectorStore, as_store

METHODS = ("pca", "tsne", "umap")


@dataclass
class ProjectConfig:
    """Projection parameters with the papers' / openTSNE's defaults (the CLI's flags)."""

    method: str = field(default="pca", metadata={"help": "pca (instant), tsne or umap (umap: pip install convlens[umap])"})
    seed: int = field(default=0, metadata={"help": "Seed of every random choice."})
    metric: str | None = field(default=None, metadata={"help": "cosine or l2 (kNN graph; PCA of unit vectors for "
                                                            "cosine; default: the store's metric, else cosine)."})
    perplexity: float = field(default=30.0, metadata={"help": "t-SNE perplexity (van der Maaten 2008: 5-50)."})
    n_iter: int = field(default=500, metadata={"help": "t-SNE iterations after the 250 of early exaggeration."})
    large: int = field(default=100_000, metadata={"help": "Above this many points, t-SNE fits a subsample first."})
    sample: int = field(default=25_000, metadata={"help": "Subsample size of the large-N recipe."})
    n_neighbors: int = field(default=15, metadata={"help": "UMAP neighbours."})
    reproducible: bool = field(default=False, metadata={"help": "One thread: bit-identical reruns."})

    def kwargs(self) -> dict:
        if self.method == "tsne":
            return {"perplexity": self.perplexity, "n_iter": self.n_iter, "large": self.large, "sample": self.sample}
        if self.method == "umap":
            return {"n_neighbors": self.n_neighbors}
        return {}
UMAP_HINT = "UMAP needs umap-learn, which is not installed: pip install convlens[umap]"
UMAP_MIN = 5  # fewer points: umap's spectral initialization fails (3 points: scipy eigsh TypeError)
# the rule of each method option: (test, what it must be)
OPTION_RULES = {"perplexity": (lambda v: v > 0, "a number > 0 (van der Maaten 2008: 5-50)"),
                "n_iter": (lambda v: int(v) == v and v >= 0, "an integer >= 0"),
                "large": (lambda v: int(v) == v and v >= 4, "an integer >= 4"),
                "sample": (lambda v: int(v) == v and v >= 4, "an integer >= 4"),
                "n_neighbors": (lambda v: int(v) == v and v >= 2, "an integer >= 2"),
                "solver": (lambda v: v in ("covariance", "randomized"), "covariance or randomized"),
                "gradient": (lambda v: v in ("auto", "bh", "fft"), "auto, bh or fft")}


def check_method_options(method: str, kw: dict) -> None:
    """Each method option against its rule, before any work (one line naming the rule)."""
    allowed = {"pca": {"solver"}, "tsne": {"perplexity", "n_iter", "large", "sample", "gradient"},
               "umap": {"n_neighbors"}}[method]
    for k, v in kw.items():
        if k not in allowed:
            raise ConvlensError(f"{method} takes no option '{k}'; its options: {', '.join(sorted(allowed))}")
        ok, rule = OPTION_RULES[k]
        try:
            good = bool(ok(v)) and not (isinstance(v, float) and not np.isfinite(v))
        except (TypeError, ValueError):
            good = False
        if not good:
            raise ConvlensError(f"{k} (--{k.replace('_', '-')}) must be {rule}, got {v!r}")


@dataclass
class Projection:
    """2-D (or k-D) coordinates of every store row and how they were made."""

    coords: np.ndarray
    method: str
    params: dict = field(default_factory=dict)
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.coords)

    def save_csv(self, path, store=None):
        return coords_table(self, store, path)

    save_parquet = save_csv


def _unit_blocks(store, normalize: bool):
    for start, vec, norms in store.blocks():
        v = np.asarray(vec, np.float64)
        if not np.isfinite(v).all():  # a damaged shard: never a NaN map
            raise ConvlensError(nonfinite_rows(store, start, vec))
        if normalize:
            v = v / np.maximum(np.asarray(norms, np.float64), 1e-30)[:, None]
        yield start, v


def pca(store, n_components: int = 2, normalize: bool = True, solver: str = "covariance",
        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(coords (N, n_components), explained variance ratio) of the store's vectors."""
    store = as_store(store)
    n, d = len(store), store.dim
    if n < 2:
        raise ConvlensError(f"PCA needs at least 2 vectors, the store has {n}; embed more images first")
    if solver == "randomized":
        from sklearn.decomposition import PCA
        x = np.concatenate([v for _, v in _unit_blocks(store, normalize)])
        p = PCA(n_components, svd_solver="randomized", random_state=seed)
        return p.fit_transform(x).astype(np.float32), p.explained_variance_ratio_
    if solver != "covariance":
        raise ConvlensError(f"unknown PCA solver '{solver}'; choose covariance (exact) or randomized")
    s1 = np.zeros(d)
    s2 = np.zeros((d, d))
    for _, v in _unit_blocks(store, normalize):
        s1 += v.sum(0)
        s2 += v.T @ v
    mean = s1 / n
    cov = (s2 - n * np.outer(mean, mean)) / max(1, n - 1)
    import torch  # torch's eigh respects the thread budget (numpy's OpenBLAS oversubscribes: 4-25x slower here)
    w, vecs = (t.numpy() for t in torch.linalg.eigh(torch.from_numpy(cov)))
    order = np.argsort(w)[::-1][:n_components]
    comps = vecs[:, order]
    comps *= np.sign(comps[np.abs(comps).argmax(0), range(len(order))])  # deterministic signs
    out = np.empty((n, len(order)), np.float32)
    for start, v in _unit_blocks(store, normalize):
        out[start:start + len(v)] = (v - mean) @ comps
    return out, w[order] / max(w.sum(), 1e-30)


def _graph_distances(scores: np.ndarray, metric: str) -> np.ndarray:
    if metric == "cosine":
        return np.sqrt(np.maximum(2 - 2 * scores.astype(np.float64), 0))
    return scores.astype(np.float64)


TSNE_THREADS_FROM = 5_000  # fewer points: t-SNE on one thread (see _tsne_threads)


def _tsne_threads(threads: int | None, n: int) -> int:
    """openTSNE's thread count: one below ``TSNE_THREADS_FROM`` points. Each of the 750 gradient
    steps is an OpenMP parallel region ending in a barrier; on a machine whose cores are busy a
    barrier waits for a descheduled thread, so 20 points took 16-24 s on 2 threads against 0.07-0.2 s
    on one (docs/embeddings.md, "Small maps are instant"); a small map has no work to share."""
    if threads is None:  # torch's setting (convlens --threads, CONVLENS_TEST_THREADS...)
        import torch
        threads = torch.get_num_threads()
    return 1 if n < TSNE_THREADS_FROM else max(1, int(threads))


MIN_LEARNING_RATE = 50.0  # openTSNE's "auto" rate N / exaggeration alone is 1.7 for 20 points: the map collapsed
# to one point (all coordinates 0); the floor of 50 is scikit-learn's (and the module doc's max(N / 12, 50))
FFT_FROM = 10_001  # gradient="auto": FFT-interpolated gradients after early exaggeration from this many points
FFT_EARLY_FROM = 5_000  # ... and during early exaggeration from this many


def _gradient_method(gradient: str, n: int) -> tuple[str, str]:
    """(early exaggeration, main phase) negative-gradient methods.

    "auto": FFT interpolation during early exaggeration from ``FFT_EARLY_FROM`` points (the embedding
    is compact, span ~15, so the interpolation grid is small: 2.4 s against Barnes-Hut's 6.3 s for 250
    iterations at 10k points; below ~5k the grid's fixed cost, ~1.9 s, dominates, and at 40 points it
    collapsed the map), then Barnes-Hut below ``FFT_FROM`` points and FFT from there. Once the map has spread
    (span ~120 at 10k points) the grid grows with it: at 10k points a Barnes-Hut step (theta 0.5)
    took 20 ms with 0.7% error in the repulsive forces, an FFT step 42 ms with 1.2% (exact
    forces as reference; docs/embeddings.md)."""
    if gradient not in ("auto", "bh", "fft"):
        raise ConvlensError(f"gradient must be auto, bh or fft, got {gradient!r}")
    if gradient != "auto":
        return gradient, gradient
    return ("fft" if n >= FFT_EARLY_FROM else "bh"), ("fft" if n >= FFT_FROM else "bh")


def _tsne_core(store, metric, perplexity, seed, threads, n_iter, init=None, exaggeration_iter=250, gradient="auto",
               dims=2):
    import openTSNE
    from openTSNE.affinity import PerplexityBasedNN
    from openTSNE.initialization import rescale
    from openTSNE.nearest_neighbors import PrecomputedNeighbors
    n = len(store)
    perp = min(perplexity, max(1.0, (n - 1) / 3))
    k = min(n - 1, int(3 * perp))
    idx, sc = knn_graph(store, k, metric, threads=threads, cache=isinstance(store, VectorStore))
    aff = PerplexityBasedNN(knn_index=PrecomputedNeighbors(idx, _graph_distances(sc, metric)), perplexity=perp,
                            n_jobs=threads)
    if init is None:
        init = pca(store, dims, normalize=metric == "cosine")[0].astype(np.float64)
    init = rescale(np.asarray(init, np.float64), target_std=1e-4)
    early, main = _gradient_method(gradient if dims == 2 else "bh", n)  # openTSNE's FFT gradients are 1-D / 2-D only
    emb = openTSNE.TSNEEmbedding(init, aff, negative_gradient_method=main, n_jobs=threads, random_state=seed)
    if exaggeration_iter:
        emb = emb.optimize(exaggeration_iter, exaggeration=12, momentum=0.5, negative_gradient_method=early,
                           learning_rate=max(n / 12, MIN_LEARNING_RATE))
    emb = emb.optimize(n_iter, momentum=0.8, negative_gradient_method=main, learning_rate=max(n, MIN_LEARNING_RATE))
    used = main if not exaggeration_iter or early == main else f"{early} then {main}"
    return np.asarray(emb, np.float32), {"perplexity": perp, "k": k, "gradient": used}


def tsne(store, *, perplexity: float = 30.0, metric: str = "cosine", seed: int = 0, threads: int | None = None,
         n_iter: int = 500, large: int = 100_000, sample: int = 25_000,
         gradient: str = "auto", dims: int = 2) -> tuple[np.ndarray, dict]:
    """t-SNE coordinates (N, dims) with openTSNE's modern defaults (see the module doc).

    ``gradient``: "bh" (Barnes-Hut), "fft" (interpolation) or "auto" (FFT during early exaggeration
    from ``FFT_EARLY_FROM`` points, then FFT from ``FFT_FROM`` points and Barnes-Hut below); a 3-D map
    always uses Barnes-Hut (openTSNE interpolates in at most 2 dimensions)."""
    store = as_store(store)
    n = len(store)
    threads = _tsne_threads(threads, n)
    if n < 4:
        raise ConvlensError(f"t-SNE needs at least 4 vectors, the store has {n}; embed more images or use --method pca")
    if n <= large:
        y, info = _tsne_core(store, metric, perplexity, seed, threads, n_iter, gradient=gradient, dims=dims)
        return y, {**info, "recipe": "full"}
    rng = np.random.default_rng(seed)
    sub = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    sub_store = ArrayStore(store.take(sub))
    y_sub, info = _tsne_core(sub_store, metric, perplexity, seed, threads, n_iter, gradient=gradient, dims=dims)
    init = np.empty((n, dims), np.float64)
    init[sub] = y_sub
    rest = np.setdiff1d(np.arange(n), sub)
    for a in range(0, len(rest), 8192):
        r = rest[a:a + 8192]
        nn, _ = exact_search(sub_store, store.take(r), 10, metric, threads=threads)
        init[r] = np.median(y_sub[nn], axis=1)
    y, info2 = _tsne_core(store, metric, perplexity, seed, threads, n_iter, init=init, exaggeration_iter=125,
                          gradient=gradient, dims=dims)
    return y, {**info2, "recipe": f"large-N: subsample of {len(sub)}, the rest placed at the median of 10 neighbours"}


def umap(store, *, n_neighbors: int = 15, metric: str = "cosine", seed: int = 0, threads: int | None = None,
         dims: int = 2):
    store = as_store(store)
    n = len(store)
    if n < UMAP_MIN:
        raise ConvlensError(f"UMAP needs at least {UMAP_MIN} vectors, the store has {n}; embed more images or use --method pca")
    if n_neighbors > n - 1:
        raise ConvlensError(f"UMAP with --n-neighbors {n_neighbors} needs more than {n_neighbors} vectors, the store has "
                            f"{n}; pass --n-neighbors {n - 1} or fewer")
    try:
        import umap as umap_lib
    except ImportError:
        raise ConvlensError(UMAP_HINT) from None
    idx, sc = knn_graph(store, n_neighbors - 1, metric, threads=threads, cache=isinstance(store, VectorStore))
    # umap expects each point as its own first neighbour
    knn_i = np.concatenate([np.arange(n)[:, None], idx], 1)
    knn_d = np.concatenate([np.zeros((n, 1)), _graph_distances(sc, metric)], 1).astype(np.float32)
    x = np.concatenate([v for _, v in _unit_blocks(store, metric == "cosine")]).astype(np.float32)
    red = umap_lib.UMAP(n_neighbors=n_neighbors, n_components=dims, random_state=seed,
                        precomputed_knn=(knn_i, knn_d, None), n_jobs=threads or 1)
    import warnings
    with warnings.catch_warnings():  # "not an NNDescent object: transform unavailable" (we never transform)
        warnings.filterwarnings("ignore", message=".*NNDescent.*")
        warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
        y = red.fit_transform(x)
    return y.astype(np.float32), {"n_neighbors": n_neighbors}


def project(vectors_or_store, method: str = "pca", seed: int = 0, *, metric: str | None = None,
            reproducible: bool = False, threads: int | None = None, cache: bool = True, dims: int = 2,
            **kw) -> Projection:
    """Project embeddings to 2-D (or 3-D) with PCA, t-SNE or UMAP; store results are saved into the store.

    Args:
        vectors_or_store: an ``EmbeddingStore`` (or its path) or an (N, dim) array.
        method: "pca" (exact covariance PCA; ``solver="randomized"``), "tsne" (openTSNE, perplexity
            30, PCA init, ...) or "umap" (needs ``pip install convlens[umap]``).
        seed: every random choice; reproducible: also one thread (bit-identical reruns).
        metric: "cosine" (default) or "l2", for the kNN graph of t-SNE / UMAP and PCA's normalization.
        cache: reuse a projection saved in the store with the same parameters.
        dims: 2 (default) or 3 (a 3-D map, saved as ``projection-<method>-3d``).
        **kw: method options (perplexity, n_iter, large, sample / n_neighbors / solver).
    Returns:
        ``Projection`` (coords (N, dims), method, params incl. seed, seconds).
    Example:
        >>> p = convlens.project(store, "tsne", seed=0); p.coords.shape
    """
    if method not in METHODS:
        raise ConvlensError(f"unknown projection '{method}'; choose pca, tsne or umap")
    check_method_options(method, kw)
    store = as_store(vectors_or_store)
    metric = check_metric(metric or store.manifest.get("metric", "cosine"))
    if dims not in (2, 3):
        raise ConvlensError(f"dims must be 2 or 3, got {dims!r}")
    threads = 1 if reproducible else threads
    params = {"method": method, "seed": int(seed), "metric": metric, **{k: v for k, v in kw.items()}}
    if dims != 2:
        params["dims"] = dims   # 2-D keys stay as they were (maps saved before still match)
    name = projection_name(method, dims)
    if cache:
        hit = store.load_array(name, {"key": params})
        if hit is not None:
            rec = store.manifest["projections"][name]
            return Projection(hit, method, rec.get("params", params), 0.0)
    t0 = time.perf_counter()
    if method == "pca":
        y, ratio = pca(store, dims, normalize=metric == "cosine", seed=seed, **kw)
        info = {"explained_variance_ratio": [float(r) for r in ratio]}
    elif method == "tsne":
        y, info = tsne(store, metric=metric, seed=seed, threads=threads, dims=dims, **kw)
    else:
        y, info = umap(store, metric=metric, seed=seed, threads=threads, dims=dims, **kw)
    proj = Projection(y, method, {**params, **info, "reproducible": reproducible}, time.perf_counter() - t0)
    store.save_array(name, y, {"key": params, "params": proj.params})
    return proj


def projection_name(method: str, dims: int = 2) -> str:
    """The store array a map is saved as: ``projection-<method>`` (2-D) or ``projection-<method>-3d``."""
    return f"projection-{method}" + ("" if dims == 2 else f"-{dims}d")


def trustworthiness(store, coords: np.ndarray, k: int = 5, metric: str = "cosine") -> float:
    """sklearn.manifold.trustworthiness of ``coords`` w.r.t. the store's vectors (in memory)."""
    from sklearn.manifold import trustworthiness as tw
    store = as_store(store)
    x = np.concatenate([v for _, v in _unit_blocks(store, metric == "cosine")])
    return float(tw(x, coords, n_neighbors=k))
