"""Minimum-cost assignment (Hungarian method with potentials), pure numpy.

O(n^2 m) for an n x m cost matrix with n <= m; small matrices (tens of tracks) take well
under a millisecond, so no compiled solver is needed.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatMatrix = npt.NDArray[np.float64]


def solve_assignment(cost: npt.ArrayLike) -> list[tuple[int, int]]:
    """Row/column pairs of a minimum-cost assignment covering min(rows, cols) pairs."""
    matrix = np.asarray(cost, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"cost must be a matrix, got shape {matrix.shape}")
    if matrix.size == 0:
        return []
    if not np.isfinite(matrix).all():
        raise ValueError("cost must be finite; use a large value for forbidden pairs")
    transposed = matrix.shape[0] > matrix.shape[1]
    if transposed:
        matrix = matrix.T
    rows, cols = matrix.shape
    # Shortest augmenting paths with row/column potentials; index 0 is a virtual column.
    u = np.zeros(rows + 1)
    v = np.zeros(cols + 1)
    owner = np.zeros(cols + 1, dtype=np.int64)  # owner[j]: row assigned to column j (1-based)
    way = np.zeros(cols + 1, dtype=np.int64)
    for row in range(1, rows + 1):
        owner[0] = row
        column = 0
        min_slack = np.full(cols + 1, np.inf)
        used = np.zeros(cols + 1, dtype=bool)
        while True:
            used[column] = True
            current_row = owner[column]
            free = ~used[1:]
            slack = matrix[current_row - 1] - u[current_row] - v[1:]
            improve = free & (slack < min_slack[1:])
            min_slack[1:][improve] = slack[improve]
            way[1:][improve] = column
            candidates = np.where(free, min_slack[1:], np.inf)
            next_column = int(np.argmin(candidates)) + 1
            delta = candidates[next_column - 1]
            u[owner[used]] += delta
            v[used] -= delta
            min_slack[1:][free] -= delta
            column = next_column
            if owner[column] == 0:
                break
        while column:
            previous = way[column]
            owner[column] = owner[previous]
            column = previous
    pairs = [(int(owner[j]) - 1, j - 1) for j in range(1, cols + 1) if owner[j] != 0]
    if transposed:
        pairs = [(c, r) for r, c in pairs]
    return sorted(pairs)


def match_by_cost(
    cost: npt.ArrayLike, max_cost: float
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Optimal pairs whose cost is at most ``max_cost``, plus unmatched rows and columns."""
    matrix = np.asarray(cost, dtype=np.float64)
    rows, cols = matrix.shape
    if rows == 0 or cols == 0:
        return [], list(range(rows)), list(range(cols))
    # Forbidden pairs get a cost above any allowed one so they are chosen only when forced.
    bounded = np.where(matrix <= max_cost, matrix, max_cost + 1.0)
    pairs = [(r, c) for r, c in solve_assignment(bounded) if matrix[r, c] <= max_cost]
    matched_rows = {r for r, _ in pairs}
    matched_cols = {c for _, c in pairs}
    return (
        pairs,
        [r for r in range(rows) if r not in matched_rows],
        [c for c in range(cols) if c not in matched_cols],
    )
