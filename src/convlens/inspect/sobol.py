"""Total Sobol indices by quasi-Monte-Carlo (Saltelli's design, Jansen's estimator), as CRAFT uses them.

Inputs are k factors in [0, 1] (CRAFT: a mask on each concept's coefficients). Two independent
quasi-random matrices A, B (N, k) are taken from one scrambled Sobol sequence of dimension 2k
(``torch.quasirandom.SobolEngine``); C_i
is A with its column i taken from B. With y = f(rows), the total index of factor i (the share of
the output's variance that involves factor i, alone or with others) is Jansen's (1999)

    ST_i = mean_n (f(A)_n - f(C_i)_n)^2 / (2 Var[f(A), f(B)])

(Saltelli et al. 2010, "Variance based sensitivity analysis", table 2 (f); Fel et al. 2021/2023,
Xplique's ``JansenEstimator`` / ``ScipySobolSequence``). Checked on the Ishigami function, whose
total indices are known in closed form (tests/test_concepts.py).
"""
from __future__ import annotations

import numpy as np


def sobol_design(k: int, designs: int, seed: int = 0) -> np.ndarray:
    """Rows [A; B; C_1; ...; C_k] of shape (designs * (k + 2), k) in [0, 1] (float32)."""
    import torch  # torch's scrambled Sobol engine (scipy.stats.qmc is the same sequence; its import costs seconds)
    pts = torch.quasirandom.SobolEngine(2 * k, scramble=True, seed=seed).draw(designs, dtype=torch.float64).numpy()
    A, B = pts[:, :k], pts[:, k:]
    Cs = []
    for i in range(k):
        C = A.copy()
        C[:, i] = B[:, i]
        Cs.append(C)
    return np.concatenate([A, B, *Cs]).astype(np.float32)


def total_indices(y, k: int, designs: int) -> np.ndarray:
    """Jansen's total indices (k,) from outputs ``y`` (designs * (k + 2),) in ``sobol_design``'s row
    order; zeros where the output does not vary at all."""
    y = np.asarray(y, np.float64).reshape(-1)
    if y.size != designs * (k + 2):
        raise ValueError(f"expected {designs * (k + 2)} outputs, got {y.size}")
    fA, fB, fC = y[:designs], y[designs:2 * designs], y[2 * designs:].reshape(k, designs)
    var = np.var(np.concatenate([fA, fB]), ddof=1)
    if not var > 0:
        return np.zeros(k)
    return ((fA[None] - fC) ** 2).mean(1) / (2 * var)
