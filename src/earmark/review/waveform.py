"""A clip's waveform for the review editor: peaks per column, computed here so the
browser only draws them. Pure: samples in, numbers out."""

from __future__ import annotations

import numpy as np


def peaks(samples: np.ndarray, columns: int = 600) -> list[list[float]]:
    """The lowest and highest sample of each of ``columns`` equal slices of a clip.

    Parameters
    ----------
    samples
        Mono audio, shape ``(n,)``, any scale.
    columns
        How many slices (the drawing's width in points); fewer when the clip is shorter.

    Returns
    -------
    list of [min, max]
        Scaled so that the loudest sample is 1 (a silent clip stays at 0), rounded to
        three decimals to keep the page small.
    """
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if x.size == 0 or columns <= 0:
        return []
    columns = min(columns, x.size)
    loud = float(np.max(np.abs(x)))
    scale = 1.0 / loud if loud > 0 else 0.0
    edges = np.linspace(0, x.size, columns + 1).astype(int)
    lo = np.minimum.reduceat(x, edges[:-1]) * scale
    hi = np.maximum.reduceat(x, edges[:-1]) * scale
    return [[round(float(a), 3), round(float(b), 3)] for a, b in zip(lo, hi)]
