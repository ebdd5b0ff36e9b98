"""Public-domain paintings reassembled from GCompris's painting jigsaws (Debian ``gcompris-qt-data``).

``paintings.rcc`` (a Qt resource file, read by ``images.qrc``) holds 22 artworks cut into ``.webp``
pieces; ``resource/board/boardN_0.qml`` lists each piece with its centre as a fraction of the
702x515 board. Pasting every piece centred at (x*702, y*515) rebuilds the picture; the result is
cropped to the pieces' union and cached as a PNG under ``cache_dir()/paintings`` (keyed by the rcc's
hash), so only the first use pays the decoding.

The artworks are public domain; the files come from GCompris (GPL-3.0-or-later data).
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np

from ..errors import ConvlensError

RCC = "debian/usr/share/gcompris-qt/rcc/paintings.rcc"
RCC_SHA256 = "1276d4f9c26f94ec130833c03bea5185f61b4f986df6981182cdb1be69e9db98"
SOURCE = "Debian's gcompris-qt-data"
PREFIX = "gcompris/src/activities/paintings/resource/"
BOARD_W, BOARD_H = 702, 515


@dataclass(frozen=True)
class Painting:
    board: int
    artist: str
    title: str
    year: str

    @property
    def credit(self) -> str:
        return f"{self.artist}, {self.title}, {self.year}, public domain (GCompris, Debian gcompris-qt-data)"


# sample name -> the board that holds it (titles and years as the boards' captions give them).
# Board 20 (Bazille, The Ramparts at Aigues-Mortes) is left out: its rectangular pieces were cut about
# two pixels out of register, and they only touch, so nothing pins them (a visible step at the seams).
PAINTINGS = {
    "great_wave": Painting(7, "Katsushika Hokusai", "The Great Wave off Kanagawa", "1823-1829"),
    "kandinsky": Painting(19, "Wassily Kandinsky", "Composition VIII", "1923"),
    "mona_lisa": Painting(14, "Leonardo da Vinci", "Mona Lisa", "1503-1519"),
    "van_gogh": Painting(22, "Vincent van Gogh", "Village Street in Auvers", "1890"),
    "renoir_moulin": Painting(1, "Pierre-Auguste Renoir", "Bal du moulin de la Galette", "1876"),
    "renoir_piano": Painting(18, "Pierre-Auguste Renoir", "Girls at the Piano", "1892"),
    "bruegel_harvesters": Painting(17, "Pieter Bruegel the Elder", "The Harvesters", "1565"),
    "durer_lion": Painting(16, "Albrecht Dürer", "Lion", "1494"),
    "arcimboldo_spring": Painting(2, "Giuseppe Arcimboldo", "Spring", "1573"),
    "arcimboldo_librarian": Painting(3, "Giuseppe Arcimboldo", "The Librarian", "1566"),
    "bellini_pesaro": Painting(15, "Giovanni Bellini", "Pesaro Altarpiece (landscape detail)", "1475-1485"),
    "cassatt_summertime": Painting(21, "Mary Cassatt", "Summertime", "1894"),
    "michelangelo_pieta": Painting(13, "Michelangelo", "Pietà (sculpture)", "1499"),
    "hokusai_oiran": Painting(4, "Katsushika Hokusai", "Oiran and Kamuro", "c. 1800"),
    "hokusai_fan": Painting(5, "Katsushika Hokusai", "Woman Holding a Fan", "c. 1800"),
    "hokusai_ejiri": Painting(6, "Katsushika Hokusai", "Ejiri in Suruga Province", "1830-1833"),
    "hokusai_ryogoku": Painting(10, "Katsushika Hokusai", "Sunset over Ryōgoku Bridge", "1830"),
    "hokusai_poppies": Painting(11, "Katsushika Hokusai", "Poppies", "1833-1834"),
    "hokusai_kazusa": Painting(12, "Katsushika Hokusai", "Kazusa Sea Route", "1830"),
    "hiroshige_snow": Painting(8, "Utagawa Hiroshige", "Benzaiten Shrine at Inokashira in Snow", "c. 1840"),
    "hiroshige_mackerel": Painting(9, "Utagawa Hiroshige", "Horse-mackerel and Prawn", "1840"),
}

_PIECE = re.compile(r'"pixmapfile"\s*:\s*"([^"]+)"\s*,\s*"x"\s*:\s*"([0-9.]+)"\s*,\s*"y"\s*:\s*"([0-9.]+)"')


def board_pieces(qml: str) -> list[tuple[str, float, float]]:
    """[(piece path relative to resource/, x, y)] of one board file; the background entry is skipped."""
    return [(p, float(x), float(y)) for p, x, y in _PIECE.findall(qml)]


def _overlap_error(arrays, corners, i, corner) -> float:
    """Mean |RGB difference| between piece ``i`` placed at ``corner`` and the pieces it overlaps."""
    a = arrays[i]
    l, t = corner
    total, count = 0.0, 0
    for j, b in enumerate(arrays):
        if j == i:
            continue
        L, T = corners[j]
        x0, y0 = max(l, L), max(t, T)
        x1, y1 = min(l + a.shape[1], L + b.shape[1]), min(t + a.shape[0], T + b.shape[0])
        if x1 <= x0 or y1 <= y0:
            continue
        pa, pb = a[y0 - t:y1 - t, x0 - l:x1 - l], b[y0 - T:y1 - T, x0 - L:x1 - L]
        both = (pa[..., 3] > 127) & (pb[..., 3] > 127)
        total += float(np.abs(pa[..., :3] - pb[..., :3])[both].sum())
        count += int(both.sum())
    return total / count if count else float("inf")


def _holes(coverage, inside, opaque, corner, origin) -> int:
    """Interior pixels left uncovered around a piece (its box grown by one pixel) when it sits at ``corner``."""
    l, t = corner[0] - origin[0], corner[1] - origin[1]
    h, w = opaque.shape
    cov = coverage.copy()
    cov[t:t + h, l:l + w] += opaque
    window = np.s_[max(t - 1, 0):t + h + 1, max(l - 1, 0):l + w + 1]
    return int(((cov[window] == 0) & inside[window]).sum())


def register(arrays, corners, passes: int = 4) -> list[tuple[int, int]]:
    """Nudge each piece (one pixel per pass): first so that no crack opens beside it, then so that it
    overlaps with the other pieces agree best (jigsaw-cut pieces overlap by a few pixels).

    The boards round the centres to three decimals (up to ~0.4 px off, so a rounded corner can be one
    pixel wrong and leave a crack or a step).
    """
    corners = list(corners)
    opaque = [a[..., 3] > 127 for a in arrays]
    pad = passes + 1  # room for every candidate position
    x0, y0 = min(l for l, _ in corners) - pad, min(t for _, t in corners) - pad
    W = max(l + a.shape[1] for a, (l, _) in zip(arrays, corners)) - x0 + pad
    H = max(t + a.shape[0] for a, (_, t) in zip(arrays, corners)) - y0 + pad
    inside = np.zeros((H, W), bool)  # the painting's interior: where a crack can be
    inside[pad + 2:H - pad - 2, pad + 2:W - pad - 2] = True
    for _ in range(passes):
        moved = False
        for i, (l, t) in enumerate(corners):
            coverage = np.zeros((H, W), np.int16)
            for j, (L, T) in enumerate(corners):
                if j != i:
                    coverage[T - y0:T - y0 + opaque[j].shape[0], L - x0:L - x0 + opaque[j].shape[1]] += opaque[j]
            options = [(l + dx, t + dy) for dy in (0, -1, 1) for dx in (0, -1, 1)]
            scores = [(_holes(coverage, inside, opaque[i], c, (x0, y0)), _overlap_error(arrays, corners, i, c))
                      for c in options]
            best = min(range(len(options)), key=lambda k: scores[k])
            better = scores[best][0] < scores[0][0] or (scores[best][0] == scores[0][0]
                                                        and scores[best][1] < scores[0][1] - 0.5)
            if best and better:
                corners[i], moved = options[best], True
        if not moved:
            break
    return corners


def assemble(pieces) -> tuple[np.ndarray, np.ndarray]:
    """Paste RGBA pieces [(PIL image, x, y)] centred at (x*702, y*515) and crop to the pieces.

    Each piece is first nudged by ``register``; then border rows and columns that the pieces leave
    mostly (>10%) uncovered are trimmed, and interior pixels that no piece covers (rare one-pixel
    cracks) are filled by OpenCV's inpainting from their neighbours.
    Returns (uint8 RGB (H, W, 3), owner (H, W): the index of the piece each pixel came from, -1 if inpainted).
    """
    import cv2
    arrays = [np.asarray(im.convert("RGBA")).astype(np.float32) for im, _, _ in pieces]
    corners = [(int(round(x * BOARD_W - a.shape[1] / 2)), int(round(y * BOARD_H - a.shape[0] / 2)))
               for a, (_, x, y) in zip(arrays, pieces)]
    corners = register(arrays, corners)
    boxes = [(l, t, l + a.shape[1], t + a.shape[0]) for a, (l, t) in zip(arrays, corners)]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    rgb = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    owner = np.full(rgb.shape[:2], -1, np.int16)
    for k, (a, (l, t, r, b)) in enumerate(zip(arrays, boxes)):  # later pieces on top, as the board draws them
        opaque = a[..., 3] > 127
        rgb[t - y0:b - y0, l - x0:r - x0][opaque] = a[..., :3][opaque].round().astype(np.uint8)
        owner[t - y0:b - y0, l - x0:r - x0][opaque] = k
    covered = owner >= 0
    top, bottom, left, right = 0, covered.shape[0], 0, covered.shape[1]
    while bottom - top > 1 and right - left > 1:  # trim ragged edges, the emptiest side first
        sides = {"top": covered[top, left:right].mean(), "bottom": covered[bottom - 1, left:right].mean(),
                 "left": covered[top:bottom, left].mean(), "right": covered[top:bottom, right - 1].mean()}
        side = min(sides, key=sides.get)
        if sides[side] >= 0.9:
            break
        top, bottom, left, right = (top + (side == "top"), bottom - (side == "bottom"),
                                    left + (side == "left"), right - (side == "right"))
    rgb = np.ascontiguousarray(rgb[top:bottom, left:right])
    holes = ~covered[top:bottom, left:right]
    if holes.any():
        rgb = cv2.inpaint(rgb, holes.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    return rgb, owner[top:bottom, left:right]


def _rcc_path():
    from ..assets import data_file
    return data_file(RCC, RCC_SHA256, SOURCE)


def build_painting(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Reassemble one painting from the rcc (no cache): (uint8 RGB, owner map as in ``assemble``)."""
    from PIL import Image

    from .qrc import QResource
    if name not in PAINTINGS:
        raise ConvlensError(f"unknown painting '{name}'; choose one of {', '.join(PAINTINGS)}")
    res = QResource.open(_rcc_path())
    qml = res.read(f"{PREFIX}board/board{PAINTINGS[name].board}_0.qml").decode("utf-8")
    pieces = [(Image.open(io.BytesIO(res.read(PREFIX + p))), x, y) for p, x, y in board_pieces(qml)]
    if not pieces:
        raise ConvlensError(f"{_rcc_path()}: board {PAINTINGS[name].board} lists no pieces (a different gcompris?)")
    return assemble(pieces)


def painting(name: str) -> np.ndarray:
    """One painting as uint8 RGB (H, W, 3), rebuilt once and then read from the disk cache."""
    from PIL import Image

    from ..assets import cache_dir
    from .io import write_atomic
    cached = cache_dir() / "paintings" / f"{name}-{RCC_SHA256[:12]}.png"
    if cached.is_file():
        with Image.open(cached) as im:
            return np.asarray(im.convert("RGB"))
    rgb, _ = build_painting(name)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cached, buf.getvalue())
    except OSError:
        pass  # a read-only cache only costs the rebuild next time
    return rgb
