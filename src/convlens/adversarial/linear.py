"""Why adversarial examples exist: the lecture's worked logistic-regression example (Goodfellow,
Shlens & Szegedy 2015, "Explaining and harnessing adversarial examples") and the dimension argument.

A linear score ``s = w.x + b`` changes by ``eps * ||w||_1`` when every input moves by eps in the
direction of sign(w): many tiny changes add up. With 10 inputs the lecture needs eps = 0.5 to flip a
confident decision; a 224x224x3 image has 150,528 inputs, so each needs a far smaller nudge.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConvlensError
from .base import fig_to_pil, new_figure

LECTURE_X = (2, -1, 3, -2, 2, 2, 1, -4, 5, 1)
LECTURE_W = (-1, -1, 1, -1, 1, -1, 1, 1, -1, 1)
IMAGE_DIM = 224 * 224 * 3
DIMENSIONS = (10, 100, 1_000, 10_000, 100_000, IMAGE_DIM)


def sigmoid(s: float) -> float:
    return 1.0 / (1.0 + math.exp(-s))


def _num(v: float) -> str:
    return f"{v:g}" if v == int(v) else f"{v:.4g}"


@dataclass
class LinearWalkthrough:
    """The worked example: inputs, weights, the adversarial inputs, per-term products, scores, P(class 1).

    Attributes:
        x, w, x_adv: (d,) arrays; b, eps: floats; terms, terms_adv: (d,) ``w_i * x_i`` before/after;
        score, score_adv: ``w.x + b``; p, p_adv: ``1 / (1 + exp(-score))``.
    """

    x: np.ndarray
    w: np.ndarray
    b: float
    eps: float
    x_adv: np.ndarray = field(init=False)
    terms: np.ndarray = field(init=False)
    terms_adv: np.ndarray = field(init=False)

    def __post_init__(self):
        self.x_adv = self.x + self.eps * np.sign(self.w)
        self.terms = self.w * self.x
        self.terms_adv = self.w * self.x_adv

    @property
    def score(self) -> float:
        return float(self.terms.sum() + self.b)

    @property
    def score_adv(self) -> float:
        return float(self.terms_adv.sum() + self.b)

    @property
    def p(self) -> float:
        return sigmoid(self.score)

    @property
    def p_adv(self) -> float:
        return sigmoid(self.score_adv)

    @property
    def is_lecture(self) -> bool:
        return (tuple(self.x.tolist()) == LECTURE_X and tuple(self.w.tolist()) == LECTURE_W and self.b == 0
                and self.eps == 0.5)

    def table(self) -> list[list[str]]:
        """Rows: x, w, adversarial x, w*x, w*x_adv (one column per input)."""
        return [["x", *map(_num, self.x)], ["w", *map(_num, self.w)],
                [f"x + {_num(self.eps)} sign(w)", *map(_num, self.x_adv)],
                ["w * x", *map(_num, self.terms)], ["w * x_adv", *map(_num, self.terms_adv)]]

    def sum_line(self, adv: bool) -> str:
        """Every term of the sum, e.g. ``-2 + 1 + 3 + 2 + 2 - 2 + 1 - 4 - 5 + 1 = -3``."""
        terms = self.terms_adv if adv else self.terms
        text = _num(terms[0])
        for t in terms[1:]:
            text += f" {'-' if t < 0 else '+'} {_num(abs(t))}"
        if self.b:
            text += f" {'-' if self.b < 0 else '+'} {_num(abs(self.b))}"
        return f"{text} = {_num(self.score_adv if adv else self.score)}"

    def text(self) -> str:
        """The lecture's table and both sums, printed in full."""
        rows = self.table()
        width = max(len(c) for r in rows for c in r[1:]) + 1
        head = max(len(r[0]) for r in rows)
        lines = [f"{r[0]:<{head}} " + "".join(f"{c:>{width}}" for c in r[1:]) for r in rows]
        s0, s1 = self.score, self.score_adv
        lines += ["",
                  f"score      w.x + b     = {self.sum_line(False)}",
                  f"P(class 1) = 1/(1+e^{_num(-s0)}) = {self.p:.4f}",
                  f"adversarial: each input moved by {_num(self.eps)} along sign(w), so the score moves by "
                  f"eps*||w||_1 = {_num(self.eps * float(np.abs(self.w).sum()))}",
                  f"score      w.x_adv + b = {self.sum_line(True)}",
                  f"P(class 1) = 1/(1+e^{_num(-s1)}) = {self.p_adv:.4f}"]
        if self.is_lecture:
            lines.append("(the slide's second sum lists nine of these ten terms, dropping the +2.5, and writes "
                         "1/(1+e^-(-2)) for 1/(1+e^-2); the result 2 -> 0.88 is right, as printed above)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


def linear_walkthrough(x=None, w=None, b: float = 0.0, eps: float = 0.5) -> LinearWalkthrough:
    """The lecture's logistic-regression example (Goodfellow et al. 2015), or any other x, w, b, eps.

    ``x_adv = x + eps * sign(w)``; ``score = w.x + b``; ``P(class 1) = sigmoid(score)``. With no
    arguments: x = 2 -1 3 -2 2 2 1 -4 5 1, w = -1 -1 1 -1 1 -1 1 1 -1 1, b = 0, eps = 0.5, which gives
    score -3 -> 2 and P(class 1) 0.0474 -> 0.8808.

    Example:
        >>> print(convlens.linear_walkthrough())          # the table and both sums, every term
    """
    x = np.asarray(LECTURE_X if x is None else x, dtype=np.float64).ravel()
    w = np.asarray(LECTURE_W if w is None else w, dtype=np.float64).ravel()
    if x.shape != w.shape or x.size == 0:
        raise ConvlensError(f"x and w need the same non-zero length, got {x.size} and {w.size}")
    if not eps >= 0:
        raise ConvlensError(f"eps must be >= 0, got {eps}")
    return LinearWalkthrough(x, w, float(b), float(eps))


@dataclass
class DimensionStudy:
    """eps needed to flip a confident decision of random linear classifiers, by dimension d.

    A classifier ``s = w.x + b`` starts at the lecture's score -3 (P = 0.0474); moving every input by
    eps along sign(w) adds ``eps * ||w||_1``, so the smallest flipping eps (s >= 0, P >= 0.5) is
    ``3 / ||w||_1`` and reaching the lecture's P = 0.88 (s = 2) takes ``5 / ||w||_1``. Two families:
    ``w_i = +-1`` (like the lecture's; eps = 3/d) and ``w ~ N(0, I/d)`` (unit expected norm, as a
    trained layer keeps its output scale; eps ~ 3.76/sqrt(d)). Values: mean over ``seeds`` draws,
    each checked by actually moving a random x and recomputing the score.

    Attributes: dims, eps_sign, eps_gauss (to flip), eps_sign_088, eps_gauss_088 (to reach 0.88).
    """

    dims: list[int]
    eps_sign: list[float]
    eps_gauss: list[float]
    eps_sign_088: list[float]
    eps_gauss_088: list[float]

    def rows(self) -> list[list[str]]:
        return [[f"{d:,}", f"{a:.3g}", f"{255 * a:.3g}", f"{c:.3g}", f"{g:.3g}", f"{255 * g:.3g}", f"{h:.3g}"]
                for d, a, c, g, h in zip(self.dims, self.eps_sign, self.eps_sign_088, self.eps_gauss,
                                         self.eps_gauss_088)]

    HEADER = ["d", "w=+-1: eps to flip", "in /255", "to P=0.88", "w~N(0,1/d): eps to flip", "in /255", "to P=0.88"]

    def text(self) -> str:
        rows = [self.HEADER] + self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.rjust(wd) for c, wd in zip(r, widths)) for r in rows)

    def plot(self, width: float = 6.0, height: float = 4.0):
        """Log-log plot of eps against d (PIL image), with one grey level (1/255) marked."""
        fig, ax = new_figure(width, height)
        ax.loglog(self.dims, self.eps_sign, "o-", label="w = ±1 (lecture): 3/d")
        ax.loglog(self.dims, self.eps_gauss, "s-", label="w ~ N(0, 1/d): ≈ 3.76/√d")
        ax.axhline(1 / 255, color="grey", ls="--", lw=1)
        ax.text(self.dims[0], 1 / 255 * 1.15, "one grey level (1/255)", color="grey", fontsize=8)
        ax.axvline(IMAGE_DIM, color="tab:red", ls=":", lw=1)
        ax.text(IMAGE_DIM * 0.8, max(self.eps_gauss) * 0.5, "224×224×3", color="tab:red", fontsize=8, ha="right")
        ax.set_xlabel("input dimension d")
        ax.set_ylabel("eps per input to flip P = 0.047 to ≥ 0.5")
        ax.set_title("A confident linear decision flips with smaller nudges as d grows")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        return fig_to_pil(fig)


def dimension_study(dims=DIMENSIONS, seeds: int = 5, score: float = -3.0) -> DimensionStudy:
    """Smallest eps (L-inf, along sign(w)) that flips a linear classifier at ``score`` (default the
    lecture's -3), for each dimension; see ``DimensionStudy``."""
    if score >= 0:
        raise ConvlensError("score must be negative (a confident 'class 0' decision to flip)")
    out = {k: [] for k in ("s", "g", "s8", "g8")}
    for d in dims:
        vals = {k: [] for k in out}
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            x = rng.normal(size=d)
            for kind in ("s", "g"):
                w = rng.choice([-1.0, 1.0], size=d) if kind == "s" else rng.normal(size=d) / math.sqrt(d)
                b = score - float(w @ x)
                e = -score / float(np.abs(w).sum())
                e8 = (2.0 - score) / float(np.abs(w).sum())
                s_flip = float(w @ (x + e * np.sign(w)) + b)  # check by moving x
                if abs(s_flip) > 1e-6 * (1 + abs(score)):
                    raise AssertionError(f"flip check failed: score {s_flip}")
                vals[kind].append(e)
                vals[kind + "8"].append(e8)
        for k in out:
            out[k].append(float(np.mean(vals[k])))
    return DimensionStudy(list(dims), out["s"], out["g"], out["s8"], out["g8"])
