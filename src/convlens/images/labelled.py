"""Labelled photo sets that ship inside installed packages: ``labelled_photos("imagenet20" | "gcompris")``.

* ``imagenet20``: foolbox's 20 ImageNet validation photos (512x512, MIT), ``foolbox/data/
  imagenet_{00..19}_{label}.jpg`` where label is the ImageNet class index;
* ``gcompris``: 216 real photos in 11 groups from Debian ``gcompris-qt-data`` (GPL-3 data), read out of
  five Qt resource files (``images.qrc``); the folder and file names give the group: fish 28,
  monument 76, animal 57, windmill 15, hammer 9, solar panel 8, measuring tape 6, dam 5, plier 4,
  scissors 4, screwdriver 4 (about 320x240 each).

Each set is materialized once as a folder ``cache_dir()/labelled/<set>-<hash>/<label name>/<file>``, so
it is also an ordinary image folder (sub-folders = labels) for every command that takes one: the CLI
accepts the set's name wherever it accepts ``samples`` (``convlens embed gcompris -o g.emb``).
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConvlensError

FOOLBOX_PIP = "pip install --no-deps foolbox==3.3.4"
FOOLBOX_PHOTOS = {  # file -> sha256
    "imagenet_00_243.jpg": "28b7b933c8028c6e20bf74a86a709eda42ce99f14c8742cb657cb386f08a4c9d",
    "imagenet_01_559.jpg": "5f03b0c74dff01b5b4195d0beabcae2a625a406e6917957ab9c455b5b7dea6d6",
    "imagenet_02_438.jpg": "ccef0734c1a65549c6cb5adb0f5d9b1c0b2e2104aba50a9e5f9202dc6d4532ed",
    "imagenet_03_990.jpg": "c7f0b2f1e9ee39d8f900759e8983afa2e4a2d7de090060e8bb947f6e90cace5f",
    "imagenet_04_949.jpg": "a7f62f3c1d214de4718c7253871ab38209283249e131faf65b8f2b7fdc970669",
    "imagenet_05_853.jpg": "8a449436c61da867528b1f4efaf8ae832ab9c9201705eae0d3af1353fbdac131",
    "imagenet_06_609.jpg": "fb061102a4e58b3ed942bb2a4f9542e1e1acdc8f225ef95498e93889290e192f",
    "imagenet_07_609.jpg": "2c297ad1e5c4804a647e9b34bc02ee2fc348b05a4d49050d170fb61c948efa5c",
    "imagenet_08_915.jpg": "c6a3411a3987799f0de45adc142f00ca412c3e14073c635e2adfae1f3913180c",
    "imagenet_09_455.jpg": "ace3716b60ac5843269b270e17020e4f8138440cd30ef3487f7d6e54da9745a4",
    "imagenet_10_541.jpg": "f325c71d9f4290ee45e99bd7ad42f4bffe513b1450ad21e7bd61c7cb137395d9",
    "imagenet_11_630.jpg": "892dff58fc528fe63d2df0c783aa3eca2342637798578ce01763fbc0553eda01",
    "imagenet_12_741.jpg": "6c256e17545b25bbf2e06cf6513ff48d049583569515ac4d4c3a52aea804a529",
    "imagenet_13_471.jpg": "52ed0e738b90d27afcabc3e92c81ae637f160c2d9f75b93a65211005ab5dcd81",
    "imagenet_14_129.jpg": "ad9371d813bf24b0365ee2f78f28c08718ee7c5975f060caa16c3f264e828139",
    "imagenet_15_99.jpg": "4b588649cd835d4c65521727ebee03d9621baff1f54d3e8a53a26b53d983ec2e",
    "imagenet_16_251.jpg": "ce3440a3b7beb6ca3009817504c44d39fa789e7c2f70a2eef7e2f9cc9a87b129",
    "imagenet_17_22.jpg": "b432341845620e9cfd67d848c4783c32dd6eaddad45513866b17180d2b09fcf5",
    "imagenet_18_317.jpg": "b9412f92f0b1c3faede45b55a44940977daa744f2040118d0538cf597fca785d",
    "imagenet_19_305.jpg": "e1f58f00e2e47ce930d7ecab0e46a78316054f68c10d0742e87c1cc092324556",
}
GCOMPRIS_RCC = {  # activity -> sha256 of debian/usr/share/gcompris-qt/rcc/<activity>.rcc
    "categorization": "984852ac8377a224c94e26a5bc8a13d0a589612030902c6d76c14509fef3c984",
    "explore_monuments": "337878371e443f7401d4fe4798c88dde44569953bf5fa8f2738d45be4ec59ab1",
    "explore_world_animals": "85599f387a1f0da48d8e9e4502e6ef1ba9e826391bc4d6feb3b1f614d2d0ebdd",
    "explore_farm_animals": "1d17b5eb6c72b3a26aa37d6767fbeaf5a943064602c82b2d9c21ba006f748ba8",
    "erase": "0c92974491a4a4e90bebe79156720122adaf084b2e2fcc4513ce6907c3e14d6b",
}
GCOMPRIS_GROUPS = ["fish", "monument", "animal", "windmill", "hammer", "solar panel", "measuring tape", "dam",
                   "plier", "scissors", "screwdriver"]
# file-name stems inside categorization's renewable/ and tools/ folders -> group
_STEMS = {"windmill": "windmill", "solar": "solar panel", "dam": "dam", "hammer": "hammer",
          "measuringTape": "measuring tape", "plier": "plier", "scissors": "scissors", "screwDriver": "screwdriver"}
SETS = ("imagenet20", "gcompris")


@dataclass
class LabelledPhotos:
    """A labelled photo set: files (in its cache folder), integer labels, the label names.

    ``imagenet``: for ``imagenet20`` the ImageNet class index of each photo (labels index
    ``label_names``, which are those classes' names in the order first seen).
    """

    name: str
    paths: list[Path]
    labels: np.ndarray
    label_names: list[str]
    imagenet: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def folder(self) -> Path:
        """The set's folder (one sub-folder per label), usable wherever an image folder is."""
        return self.paths[0].parent.parent

    def label_of(self, i: int) -> str:
        return self.label_names[int(self.labels[i])]

    def counts(self) -> dict[str, int]:
        return {n: int((self.labels == k).sum()) for k, n in enumerate(self.label_names)}

    def images(self, size=224):
        """The photos as one float32 tensor (N, 3, H, W) in [0, 1], each resized and centre-cropped to
        ``size`` (an int: square)."""
        import torch

        from .io import load_image
        return torch.cat([load_image(p, size) for p in self.paths])


def gcompris_group(inner: str) -> str | None:
    """The group of one image inside gcompris's rcc files (by folder and file name), or None."""
    parts = inner.split("/")
    activity, stem = parts[3], re.sub(r"\d+$", "", Path(parts[-1]).stem)
    if activity == "categorization":
        folder = parts[-2]
        if folder == "fishes":
            return "fish"
        if folder == "monuments":
            return "monument"
        if folder in ("renewable", "tools"):
            return _STEMS.get(stem)
        return None
    if activity == "explore_monuments":
        return "monument"
    if activity in ("explore_world_animals", "explore_farm_animals", "erase"):
        return "animal"
    return None


def _safe(name: str) -> str:
    return re.sub(r"[^\w .-]", "_", name)


def _materialize(folder: Path, files) -> None:
    """Write ``files`` [(label name, file name, bytes or source path)] into ``folder`` atomically (a
    temporary folder renamed into place), unless it is already there."""
    if folder.is_dir():
        return
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for label, fname, data in files:
        (tmp / _safe(label)).mkdir(parents=True, exist_ok=True)
        if isinstance(data, Path):
            shutil.copyfile(data, tmp / _safe(label) / fname)
        else:
            (tmp / _safe(label) / fname).write_bytes(data)
    try:
        tmp.rename(folder)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)


def _set_folder(name: str) -> Path:
    from ..assets import cache_dir
    digest = {"imagenet20": FOOLBOX_PHOTOS["imagenet_00_243.jpg"], "gcompris": GCOMPRIS_RCC["categorization"]}[name]
    return cache_dir() / "labelled" / f"{name}-{digest[:12]}"


def _imagenet20() -> LabelledPhotos:
    from ..assets import package_file
    from .imagenet import imagenet_classes
    names = imagenet_classes()
    folder = _set_folder("imagenet20")
    rows = []
    for fname, digest in FOOLBOX_PHOTOS.items():
        cls = int(Path(fname).stem.split("_")[2])
        rows.append((names[cls], fname, cls))
    if not folder.is_dir():
        _materialize(folder, [(label, fname, package_file("foolbox", f"data/{fname}", FOOLBOX_PHOTOS[fname],
                                                          FOOLBOX_PIP)) for label, fname, _ in rows])
    label_names = list(dict.fromkeys(label for label, _, _ in rows))
    return LabelledPhotos("imagenet20", [folder / _safe(label) / fname for label, fname, _ in rows],
                          np.array([label_names.index(label) for label, _, _ in rows]), label_names,
                          [cls for _, _, cls in rows])


def _gcompris() -> LabelledPhotos:
    folder = _set_folder("gcompris")
    if not folder.is_dir():
        from ..assets import data_file
        from .qrc import QResource
        files = []
        for activity, digest in GCOMPRIS_RCC.items():
            res = QResource.open(data_file(f"debian/usr/share/gcompris-qt/rcc/{activity}.rcc", digest,
                                           "Debian's gcompris-qt-data"))
            for inner in sorted(res):
                group = gcompris_group(inner) if inner.endswith(".webp") else None
                if group:
                    files.append((group, f"{activity}-{Path(inner).name}", res.read(inner)))
        _materialize(folder, files)
    paths, labels = [], []
    for k, group in enumerate(GCOMPRIS_GROUPS):
        found = sorted((folder / _safe(group)).glob("*.webp"))
        paths += found
        labels += [k] * len(found)
    if not paths:
        raise ConvlensError(f"{folder} holds no photos; delete it and retry (it is rebuilt from gcompris-qt-data)")
    return LabelledPhotos("gcompris", paths, np.array(labels), list(GCOMPRIS_GROUPS))


def labelled_photos(name: str) -> LabelledPhotos:
    """A labelled photo set by name: "imagenet20" (foolbox's 20 ImageNet photos) or "gcompris"
    (216 photos in 11 groups). The first call writes the set's folder into the cache.

    Example:
        >>> s = labelled_photos("gcompris"); len(s), s.counts()["fish"]
        (216, 28)
    """
    if name == "imagenet20":
        return _imagenet20()
    if name == "gcompris":
        return _gcompris()
    raise ConvlensError(f"unknown labelled photo set '{name}'; choose one of {', '.join(SETS)}")


def labelled_folder(source: str) -> str | None:
    """The folder of a labelled set when ``source`` (a CLI argument) names one, else None."""
    import os
    return str(labelled_photos(source).folder) if source in SETS and not os.path.exists(source) else None


def loo_1nn_accuracy(vectors, labels, metric: str = "cosine") -> float:
    """Leave-one-out 1-nearest-neighbour accuracy: the share of items whose nearest *other* item
    (cosine, or "euclidean") has the same label. vectors (N, D); labels (N,) of any hashable values."""
    x = np.asarray(vectors, np.float64).reshape(len(vectors), -1)
    y = np.asarray(labels)
    if len(x) < 2 or len(x) != len(y):
        raise ConvlensError(f"need at least 2 vectors with one label each (got {len(x)} vectors, {len(y)} labels)")
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        d = -(x @ x.T)
    elif metric == "euclidean":
        sq = (x * x).sum(1)
        d = sq[:, None] + sq[None] - 2 * x @ x.T
    else:
        raise ConvlensError(f"unknown metric '{metric}'; use cosine or euclidean")
    np.fill_diagonal(d, np.inf)
    return float((y[d.argmin(1)] == y).mean())
