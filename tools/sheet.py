"""Contact sheets: the same picture dreamed at several layers, side by side and labelled,
so one glance shows strokes at the bottom of the network and objects at the top."""
from __future__ import annotations

import math

import cv2
import numpy as np

BACKGROUND = (24, 24, 24)
INK = (235, 235, 235)


def spread(layers: tuple[str, ...], n: int = 8) -> tuple[str, ...]:
    """n layers evenly from shallow to deep (the stem is skipped: it only adds colour noise)."""
    pool = layers[1:] if len(layers) > n else layers
    if len(pool) <= n:
        return tuple(pool)
    idx = sorted({round(i * (len(pool) - 1) / (n - 1)) for i in range(n)})
    return tuple(pool[i] for i in idx)


def contact_sheet(cells: list[tuple[str, np.ndarray]], columns: int | None = None,
                  pad: int = 6) -> np.ndarray:
    """Label under each picture; all pictures have the size of the first (RGB uint8)."""
    if not cells:
        raise ValueError("a contact sheet needs at least one picture")
    h, w = cells[0][1].shape[:2]
    # About square overall: rows * h ~ cols * w.
    cols = max(1, min(columns or math.ceil(math.sqrt(len(cells) * h / w)), len(cells)))
    rows = -(-len(cells) // cols)
    scale = max(0.55, w / 640.0)
    thick = max(1, round(scale * 1.5))
    label_h = int(28 * scale) + 2 * pad
    sheet = np.full((pad + rows * (h + label_h), pad + cols * (w + pad), 3), BACKGROUND, np.uint8)
    for i, (label, img) in enumerate(cells):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + label_h), pad + c * (w + pad)
        sheet[y:y + h, x:x + w] = img if img.shape[:2] == (h, w) else cv2.resize(img, (w, h))
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, thick)
        org = (x + max(0, (w - tw) // 2), y + h + pad + th + (label_h - 2 * pad - th) // 2)
        cv2.putText(sheet, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, INK, thick, cv2.LINE_AA)
    return sheet
