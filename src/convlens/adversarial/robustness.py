"""How much perturbation does it take: accuracy (agreement with the clean prediction) and fooling rate
against eps, for FGSM or PGD, over a set of images."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from ..attribution.base import check_images, check_model
from ..errors import ConvlensError
from ..progress import ProgressFn, call
from .base import fig_to_pil, forward_logits, new_figure, parse_eps_list
from .fgsm import fgsm
from .pgd import pgd


@dataclass
class RobustnessConfig:
    """Parameters of ``robustness``."""

    attack: Literal["fgsm", "pgd"] = field(default="fgsm", metadata={"help": "attack to run at each eps"})
    steps: int = field(default=10, metadata={"help": "pgd: number of steps"})
    batch_size: int = field(default=16, metadata={"help": "images per attack batch"})
    seed: int = field(default=0, metadata={"help": "pgd: seed of the random start"})


@dataclass
class Robustness:
    """Per eps: ``accuracy`` (fraction of images whose top-1 is still the clean top-1) and ``fooling_rate``
    (1 - accuracy); ``mean_prob`` the mean probability of the clean class; for ``n`` images."""

    eps: list[float]
    accuracy: list[float]
    fooling_rate: list[float]
    mean_prob: list[float]
    attack: str
    n: int
    model: str = ""
    extra: dict = field(default_factory=dict)

    def rows(self) -> list[list[str]]:
        return [[f"{255 * e:.3g}/255", f"{a:.1%}", f"{f:.1%}", f"{p:.3f}"]
                for e, a, f, p in zip(self.eps, self.accuracy, self.fooling_rate, self.mean_prob)]

    HEADER = ["eps", "accuracy (= clean top-1)", "fooling rate", "mean p(clean class)"]

    def text(self) -> str:
        rows = [self.HEADER] + self.rows()
        w = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join("  ".join(c.rjust(x) for c, x in zip(r, w)) for r in rows)

    def plot(self, others: list["Robustness"] = (), width: float = 6.0, height: float = 3.6):
        """Fooling rate against eps (in /255), with other reports (e.g. PGD next to FGSM) on the same axes."""
        fig, ax = new_figure(width, height)
        for r in (self, *others):
            ax.plot([255 * e for e in r.eps], [100 * f for f in r.fooling_rate], "o-",
                    label=f"{r.attack}{' (' + str(r.extra.get('steps')) + ' steps)' if r.attack == 'pgd' else ''}")
        ax.set_xlabel("eps (L-inf, grey levels out of 255)")
        ax.set_ylabel("fooling rate (%)")
        ax.set_ylim(-3, 103)
        ax.set_title(f"{self.model}, {self.n} images: top-1 changed by an attack of size eps", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend()
        return fig_to_pil(fig)


def robustness(model, images, eps_list=(0, 1 / 255, 2 / 255, 4 / 255), attack: str = "fgsm", *, steps: int = 10,
               batch_size: int = 16, seed: int = 0, progress: ProgressFn | None = None) -> Robustness:
    """Accuracy (agreement with the clean prediction) and fooling rate of ``attack`` at each eps.

    Untargeted attacks against each image's clean top-1; ``pgd`` runs ``steps`` steps of size
    2.5 eps / steps with a random start and early stopping (a fooled image is done).

    Args:
        model: a ``convlens.Model``; images: (N, 3, H, W) in [0, 1].
        eps_list: sizes (floats or strings like "2/255", or one string "0,1/255,2/255").
        attack: "fgsm" or "pgd".
    Returns:
        ``Robustness`` (``text()`` table, ``plot()`` curve).
    Example:
        >>> r = convlens.robustness(m, convlens.sample_dataset(32), "0,1/255,2/255", attack="pgd"); print(r.text())
    """
    model = check_model(model)
    x = check_images(model, images)
    if attack not in ("fgsm", "pgd"):
        raise ConvlensError(f"attack must be 'fgsm' or 'pgd', got {attack!r}")
    eps = parse_eps_list(eps_list)
    bs = max(1, int(batch_size))
    clean = torch.cat([forward_logits(model, x[i:i + bs]).argmax(-1) for i in range(0, len(x), bs)])
    acc, fool_rate, mp = [], [], []
    total = len(eps) * ((len(x) + bs - 1) // bs)
    done = 0
    for e in eps:
        agree, prob = 0, 0.0
        for i in range(0, len(x), bs):
            xb, lb = x[i:i + bs], clean[i:i + bs]
            if e == 0:
                p = forward_logits(model, xb).softmax(-1)
            else:
                r = fgsm(model, xb, e, label=lb) if attack == "fgsm" else pgd(model, xb, e, steps=steps, label=lb, seed=seed)
                p = r.adv_logits.softmax(-1)
            agree += int((p.argmax(-1) == lb).sum())
            prob += float(p.gather(1, lb[:, None]).sum())
            done += 1
            call(progress, done, total)
        acc.append(agree / len(x))
        fool_rate.append(1 - agree / len(x))
        mp.append(prob / len(x))
    return Robustness(eps, acc, fool_rate, mp, attack, len(x), model.name, {"steps": steps})
