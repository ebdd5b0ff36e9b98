"""Scaling: the Ray engine against the local engine on the same images, and the million-scale index.

Rows (each against its peer measured in the same run):
* embedding extraction of the same N JPEGs (640x480, MobileNetV2's pooled features): the Ray engine
  in local mode with 1 actor x 2 threads and 2 actors x 1 thread vs the local engine (2 decode
  processes + a 2-thread forward), images/s wall time including each pass's actor start-up; the
  Ray session start is its own row;
* 1M x 512 synthetic vectors (``scale.index.synthetic_vectors``; 100k in quick mode) in a store:
  IVF-PQ and HNSW, each built in a fresh process (build time,
  peak RSS of that process, index size), then queried memory-mapped: queries/s at the effort the
  build chose for recall@10 >= 0.95, recall measured on 1,000 outside queries against our exact
  search, which is the QPS peer.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .common import Row

ROOT = Path(__file__).resolve().parents[1]


def _jpegs(n: int, folder: Path) -> None:
    import convlens
    from PIL import Image
    ds = convlens.sample_dataset(n, size=448, seed=1)
    folder.mkdir(parents=True)
    for i in range(n):
        a = (ds[i][0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(a).resize((640, 480)).save(folder / f"{i:04d}.jpg", quality=90)


def _engines(quick: bool, tmp: Path) -> list[Row]:
    import convlens
    from convlens.scale import embed_images_ray, ray_session
    n = 96 if quick else 1000
    folder = tmp / "jpegs"
    _jpegs(n, folder)
    m = convlens.load_model()
    convlens.embed_images(m, sorted(folder.iterdir())[:4], out=tmp / "warm", workers=0)  # imports, the twin
    t = time.perf_counter()
    local = convlens.embed_images(m, folder, out=tmp / "local", batch_size=32)
    t_local = time.perf_counter() - t
    rows = []
    t = time.perf_counter()
    with ray_session(num_cpus=2) as ray:
        t_start = time.perf_counter() - t
        rows.append(Row("Ray local-mode session start (ray.init, num_cpus=2, no dashboard)", t_start, None, "s",
                        target="overhead", higher_is_better=False))
        for workers, threads in ((1, 2), (2, 1)):
            t = time.perf_counter()
            rs = embed_images_ray(m, folder, out=tmp / f"ray{workers}", batch_size=32, workers=workers, threads=threads)
            dt = time.perf_counter() - t
            same = float(np.abs(rs.vectors() - local.vectors()).max())
            rows.append(Row(f"embed {n} JPEGs 640x480 -> mobilenet_v2, Ray engine {workers} actor(s) x {threads} "
                            f"thread(s)", n / dt, n / t_local, "img/s", "local engine (2 decode procs, 2 threads)",
                            "overhead vs local", note=f"incl. actor start-up; max |ray - local| = {same:.1e}"))
    assert not ray.is_initialized()
    return rows


def _write_store(path: Path, n: int, d: int, shard: int = 65536) -> None:
    from convlens.embed import EmbeddingStore
    from convlens.scale.index import synthetic_vectors
    ident = {"model": "synthetic", "weights": None, "layer": None, "pooling": None, "dtype": "float32", "version": 1,
             "preprocessing": None, "dim": d}
    st = EmbeddingStore.create_or_resume(path, ident, overwrite=True, shard_size=shard)
    for a in range(0, n, shard):
        b = min(n, a + shard)
        meta = {"item": list(range(a, b)), "path": [""] * (b - a), "hash": [str(i) for i in range(a, b)],
                "width": [0] * (b - a), "height": [0] * (b - a), "label": [None] * (b - a), "thumbnail": [None] * (b - a)}
        st.commit_shard(synthetic_vectors(b - a, d, start=a), meta, b, [])


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class _AnonPeak:
    """Peak anonymous resident memory (RssAnon, sampled every 10 ms): the RAM the build really needs.
    VmHWM (the kernel's peak RSS) also counts the store's memory-mapped pages, which are page cache."""

    def __enter__(self):
        import threading
        self.peak, self._stop = _status_mb("RssAnon"), False

        def loop():
            while not self._stop:
                self.peak = max(self.peak, _status_mb("RssAnon"))
                time.sleep(0.01)
        self._t = threading.Thread(target=loop, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._t.join()
        self.peak = max(self.peak, _status_mb("RssAnon"))


def index_job(store: str, kind: str, out: str, threads: int = 2) -> None:
    """Run in a fresh process: build one index, report build time and this process's peak RSS."""
    import faiss
    from convlens.embed import EmbeddingStore, build_index
    faiss.omp_set_num_threads(threads)
    torch.set_num_threads(threads)
    base = _status_mb("RssAnon")
    with _AnonPeak() as anon:
        t = time.perf_counter()
        ann = build_index(EmbeddingStore.open(store), "cosine", kind, threads=threads)
        dt = time.perf_counter() - t
    peak = _status_mb("VmHWM")
    size = (Path(store) / "index-cosine.faiss").stat().st_size / 2 ** 20
    Path(out).write_text(json.dumps({"build_s": dt, "peak_mb": peak, "base_mb": base, "recall_build": ann.recall_at_10,
                                     "params": ann.params, "size_mb": size, "anon_peak_mb": anon.peak}))


def _index(quick: bool, tmp: Path) -> list[Row]:
    from convlens.embed import EmbeddingStore, exact_search
    from convlens.embed.search import load_index, recall_at_k
    from convlens.scale.index import synthetic_vectors
    n, d, nq = (100_000 if quick else 1_000_000), 512, 1000
    path = tmp / "vec"
    t = time.perf_counter()
    _write_store(path, n, d)
    t_write = time.perf_counter() - t
    store = EmbeddingStore.open(path)
    q = synthetic_vectors(nq, d, start=10 ** 10)  # outside queries from the same distribution
    exact_search(store, q[:20], 10)
    t = time.perf_counter()
    ex_i, _ = exact_search(store, q, 10)
    t_exact = time.perf_counter() - t
    rows = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for kind in ("ivfpq", "hnsw"):
        for f in path.glob("index-*"):
            f.unlink()
        res = tmp / f"{kind}.json"
        subprocess.run([sys.executable, "-c", f"from benchmarks.bench_scale import index_job; "
                        f"index_job({str(path)!r}, {kind!r}, {str(res)!r})"], check=True, cwd=ROOT, env=env)
        r = json.loads(res.read_text())
        ann = load_index(EmbeddingStore.open(path))  # memory-mapped where FAISS can
        ann.search(q[:20], 10)
        t = time.perf_counter()
        ai, _ = ann.search(q, 10)
        t_ann = time.perf_counter() - t
        rec = recall_at_k(ai, ex_i)
        p = r["params"]
        desc = (f"IVF-PQ (nlist {p['nlist']}, {p['m']}x{p['nbits']}-bit, nprobe {p['effort']}, rerank {p['rerank']}x)"
                if kind == "ivfpq" else f"HNSW (M {p['M']}, efSearch {p['effort']})")
        tag = f"{n // 1000}k x {d}" if n < 10 ** 6 else f"{n // 10 ** 6}M x {d}"
        rows.append(Row(f"{desc} k=10 queries, {tag}, memory-mapped={ann.mmapped}", nq / t_ann, nq / t_exact, "q/s",
                        "our exact search", "recall@10 >= 0.95",
                        note=f"recall@10 {rec:.3f} on {nq} outside queries ({r['recall_build']:.3f} at build)"))
        rows.append(Row(f"{desc} build, {tag} (2 threads, fresh process)", r["build_s"], None, "s",
                        target="minutes", higher_is_better=False,
                        note=f"peak anonymous RSS {r['anon_peak_mb']:.0f} MB (baseline {r['base_mb']:.0f} MB), peak RSS "
                             f"incl. the mapped store {r['peak_mb']:.0f} MB; index file "
                             f"{r['size_mb']:.0f} MB; store {n * d * 4 / 2 ** 20:.0f} MB written in {t_write:.0f}s"))
        del ann
    return rows


def run(quick: bool = False) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows += _engines(quick, tmp)
        rows += _index(quick, tmp)
    return rows
