"""Non-parametric texture synthesis: Efros-Leung (vectorized search == brute force; checkerboard
windows copied exactly; determinism), Wei-Levoy and quilting (determinism, windows found in the
sample at a stated rate), and the minimum-error cut against an exhaustive search."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from convlens.texture.common import as_sample, patches, window_found_rate
from convlens.texture.efros_leung import efros_leung, efros_leung_naive, gaussian_window, masked_ssd
from convlens.texture.quilting import min_cut_path, quilting
from convlens.texture.wei_levoy import TSVQ, causal_offsets, wei_levoy


def checkerboard(n=30, square=3):
    return ((np.arange(n)[:, None] // square + np.arange(n)[None] // square) % 2).astype(float)


def test_masked_ssd_equals_brute_force():
    rng = np.random.default_rng(0)
    for C, k, n, F in [(1, 9, 40, 7), (3, 25, 60, 5)]:
        P, N = rng.random((n, k, C)), rng.random((F, k, C))
        W = rng.random((F, k)) * (rng.random((F, k)) > 0.4)
        W[:, k // 2] = 0.0
        W[:, 0] += 0.1  # at least one known pixel
        d = masked_ssd(P, N, W)
        ref = np.array([[sum(W[f, j] * ((P[p, j] - N[f, j]) ** 2).sum() for j in range(k)) / W[f].sum()
                         for p in range(n)] for f in range(F)])
        np.testing.assert_allclose(d, ref, rtol=1e-9, atol=1e-12)
        assert (d.argmin(1) == ref.argmin(1)).all()


def test_vectorized_efros_leung_equals_per_pixel_search():
    """With epsilon=0 the choice is the unique best match: the batched search and the naive per-pixel
    loop give the same image on small random colour and grey samples."""
    rng = np.random.default_rng(1)
    for shape in [(12, 12), (10, 11, 3)]:
        s = rng.random(shape)
        a = efros_leung(s, 16, window=5, epsilon=0.0, seed=3, dtype=np.float64)
        b = efros_leung_naive(s, 16, window=5, epsilon=0.0, seed=3)
        np.testing.assert_array_equal(a.array, b.array)
        assert a.filled.all()
        # every output pixel is a sample pixel
        vals = {tuple(np.atleast_1d(v)) for v in s.reshape(-1, 1 if s.ndim == 2 else 3)}
        assert all(tuple(np.atleast_1d(v)) in vals for v in a.array.reshape(len(vals) and -1, 1 if s.ndim == 2 else 3))


def test_efros_leung_checkerboard_windows_occur_in_sample():
    cb = checkerboard(30, 3)
    r = efros_leung(cb, 48, window=9, seed=0)
    assert r.array.shape == (48, 48)
    assert window_found_rate(r.array, cb, 9) >= 0.95


def test_efros_leung_same_seed_same_output_and_colour_input():
    s = torch.rand(1, 3, 16, 16)
    a, b = efros_leung(s, 24, window=7, seed=5), efros_leung(s, 24, window=7, seed=5)
    c = efros_leung(s, 24, window=7, seed=6)
    np.testing.assert_array_equal(a.array, b.array)
    assert a.array.shape == (24, 24, 3) and not np.array_equal(a.array, c.array)
    assert a.image.shape == (1, 3, 24, 24)


def test_efros_leung_interrupt_returns_partial():
    calls = []

    def progress(done, total):
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt
    r = efros_leung(checkerboard(20), 32, window=5, progress=progress)
    assert r.stopped == "interrupted" and 0 < r.filled.sum() < 32 * 32
    assert r.filled.sum() == calls[-1]


def test_gaussian_window_and_patches():
    g = gaussian_window(5).reshape(5, 5)
    assert g.sum() == pytest.approx(1.0) and g[2, 2] == g.max() and np.allclose(g, g.T)
    a = np.arange(4 * 5 * 2, dtype=float).reshape(4, 5, 2)
    p = patches(a, 3)
    assert p.shape == (2 * 3, 18)
    np.testing.assert_array_equal(p[4].reshape(3, 3, 2), a[1:4, 1:4])


def test_min_cut_path_is_optimal():
    rng = np.random.default_rng(2)
    e = rng.random((5, 4))
    best = min((sum(e[y, x] for y, x in enumerate(p)), p) for p in itertools.product(range(4), repeat=5)
               if all(abs(p[i + 1] - p[i]) <= 1 for i in range(4)))
    path = min_cut_path(e)
    assert sum(e[y, x] for y, x in enumerate(path)) == pytest.approx(best[0])


def test_quilting_deterministic_and_copies_sample_blocks():
    cb = checkerboard(48, 4)
    a = quilting(cb, 64, block=16, overlap=6, seed=0)
    b = quilting(cb, 64, block=16, overlap=6, seed=0)
    np.testing.assert_array_equal(a.array, b.array)
    assert a.array.shape == (64, 64) and a.filled.all()
    # an overlap wider than a square pins the phase: (almost) every 9x9 window is found in the sample
    assert window_found_rate(a.array, cb, 9) >= 0.95
    s = np.random.default_rng(0).random((40, 40, 3))
    r = quilting(s, 60, block=20, seed=1)
    # the interior of each block is copied verbatim: most 5x5 windows come from the sample
    assert window_found_rate(r.array, s, 5) >= 0.5


def test_wei_levoy_deterministic_and_reproduces_periodic_sample():
    cb = checkerboard(32, 4)
    for search in ("exact", "tsvq"):
        a = wei_levoy(cb, 32, window=5, levels=2, search=search, seed=0)
        b = wei_levoy(cb, 32, window=5, levels=2, search=search, seed=0)
        np.testing.assert_array_equal(a.array, b.array)
    r = wei_levoy(cb, 32, window=7, levels=2, search="exact", seed=0)
    # output values are sample values; from a noise start (~0% of windows found) more than half of
    # the 5x5 windows end up copied from the sample (measured 64%; ties on the checkerboard make
    # a causal single-scan method drift in phase)
    assert set(np.unique(r.array)) <= {0.0, 1.0}
    noise = np.random.default_rng(0).permutation(cb.ravel()).reshape(cb.shape)
    assert window_found_rate(noise, cb, 5) < 0.05
    assert window_found_rate(r.array, cb, 5) >= 0.5


def test_tsvq_finds_exact_vectors_and_causal_offsets():
    rng = np.random.default_rng(0)
    X = rng.random((200, 6))
    t = TSVQ(X, leaf=8)
    assert all(t.query(X[i]) == i for i in range(0, 200, 7))  # a training vector lands in its own leaf
    off = causal_offsets(3)
    assert sorted(map(tuple, off)) == [(-1, -1), (-1, 0), (-1, 1), (0, -1)]


def test_as_sample_grey_and_errors():
    from convlens.errors import ConvlensError
    assert as_sample(np.zeros((4, 5), np.uint8)).shape == (4, 5, 1)
    assert as_sample(torch.rand(1, 1, 6, 6).expand(-1, 3, -1, -1)).shape == (6, 6, 1)
    with pytest.raises(ConvlensError):
        efros_leung(np.zeros((4, 4)), 8, window=11)
    with pytest.raises(ConvlensError):
        efros_leung(np.zeros((20, 20)), 8, window=4)
