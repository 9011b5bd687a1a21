"""Whisper's DTW word alignment path, in NumPy.

Word times come from a dynamic-time-warping path through the alignment heads'
cross-attention (``whisper.timing``); :func:`dtw_jumps` finds the same path without
whisper's numba JIT, whose compilation costs seconds in every new process.
"""

from __future__ import annotations

import numpy as np


def dtw_jumps(cost: np.ndarray) -> np.ndarray:
    """For each row of ``cost`` (tokens x frames), the first column of the DTW path in it.

    The same path as ``whisper.timing.dtw`` (steps right, down, or diagonal; the same
    tie-breaking), computed row by row with NumPy: within a row, the cheapest way to
    reach column j is a run of right-steps from some entry column k, so the row's cost is
    a prefix sum plus a running minimum. No JIT compilation (whisper's numba DTW costs
    seconds to compile in every new process). Equals ``time_indices[jumps]`` of
    ``whisper.timing.find_alignment``.
    """
    n, m = cost.shape
    inf = np.inf
    prev = np.full(m + 1, inf)
    prev[0] = 0.0
    trace = np.empty((n, m), dtype=np.int8)
    for i in range(n):
        c0, c1 = prev[:-1], prev[1:]  # cost[i-1, j-1], cost[i-1, j] for j = 1..m
        up = np.minimum(c0, c1)
        s = np.cumsum(cost[i])
        shifted = np.concatenate(([0.0], s[:-1]))
        row = s + np.minimum.accumulate(up - shifted)
        cur = np.concatenate(([inf], row))
        c2 = cur[:-1]  # cost[i, j-1]
        trace[i] = np.where((c0 < c1) & (c0 < c2), 0, np.where((c1 < c0) & (c1 < c2), 1, 2))
        prev = cur
    # walk back from the last cell: in row i, move left over right-steps to the column
    # where the path entered the row, then go up (diagonal 0, or straight 1)
    jumps = np.empty(n, dtype=np.int64)
    j = m - 1
    for i in range(n - 1, -1, -1):
        left = np.flatnonzero(trace[i, : j + 1] != 2)
        k = int(left[-1]) if left.size else 0
        jumps[i] = k
        j = k - 1 if trace[i, k] == 0 else k
    return jumps
