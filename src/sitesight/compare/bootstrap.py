"""The paired bootstrap engine: resample units (frames or cameras), recompute every metric of both
models from summed per-unit count tables, and read 95 % intervals of the differences.

Both models are scored on the same units, so one resample is one weight vector applied to both
tables (that is what makes it *paired*: the frame-to-frame difficulty cancels). A table is
``(F, M)`` additive counts per unit — TP/FP/FN, per-score-bin histograms — so a resample is a
weighted sum ``W @ table`` (one BLAS matrix product for a chunk of resamples) and a metric is a
function of those sums. Boxes are never matched again.

Resampling schemes:

* frames (the default): multinomial weights over frames; with ``strata`` (a camera per frame)
  each camera keeps its own frame count, so the camera mix of the test set is held fixed;
* clusters (``groups``, e.g. cameras): the table is first summed per group, then whole groups
  are resampled — the unit that really varies when the next camera is what the model meets.

Example:
    >>> import numpy as np
    >>> from sitesight.compare.bootstrap import paired_bootstrap
    >>> a = np.ones((50, 1)); b = np.ones((50, 1)) * 2
    >>> total = lambda sums: sums[:, :1]  # any statistic of the summed columns
    >>> pa, pb, boot = paired_bootstrap(a, b, total, total, n_resamples=10, seed=0)
    >>> float(pb[0] - pa[0])
    50.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from sitesight.errors import InputError

__all__ = ["resample_weights", "group_sums", "paired_bootstrap", "CHUNK"]

CHUNK = 500  # resamples per matrix product: (CHUNK, F) float32 weights stay small


def _strata_layout(strata: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``order`` (frames grouped by stratum), and per position the stratum's ``start`` and ``size``."""
    if strata is None:
        return np.arange(n), np.zeros(n, np.int64), np.full(n, n, np.int64)
    codes = np.unique(np.asarray(strata), return_inverse=True)[1].ravel()
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.cumsum(sizes) - sizes
    sorted_codes = codes[order]
    return order, starts[sorted_codes], sizes[sorted_codes]


def resample_weights(
    n_units: int,
    *,
    n_resamples: int,
    seed: int | np.random.Generator = 0,
    strata: np.ndarray | None = None,
    chunk: int = CHUNK,
) -> Iterator[np.ndarray]:
    """Bootstrap weights, ``chunk`` resamples at a time.

    Args:
        n_units: ``F`` units (frames or clusters).
        n_resamples: total number of resamples ``B``.
        seed: seed or generator.
        strata: ``(F,)`` stratum label per unit (e.g. camera id); each stratum is resampled within
            itself, keeping its size. None = one stratum.

    Yields:
        ``(b, F)`` float32 multinomial counts (each row sums to ``F``; per stratum to its size).
    """
    if n_units <= 0:
        raise InputError("bootstrap: no units to resample")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    order, start, size = _strata_layout(strata, n_units)
    done = 0
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        if strata is None:
            picked = rng.integers(0, n_units, size=(b, n_units), dtype=np.int32)
        else:  # position j of a resample draws a unit uniformly from position j's stratum
            draw = start + (rng.random((b, n_units), dtype=np.float32) * size).astype(np.int64)
            np.minimum(draw, start + size - 1, out=draw)  # float32 rounding can reach the upper end
            picked = order[draw]
        weights = np.empty((b, n_units), np.float32)
        for i in range(b):  # per-row bincount stays in cache (one global bincount is 10x slower)
            weights[i] = np.bincount(picked[i], minlength=n_units)
        done += b
        yield weights


def group_sums(table: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(G, M)`` column sums of ``(F, M)`` ``table`` per group and the ``(G,)`` group labels (sorted)."""
    labels, codes = np.unique(np.asarray(groups), return_inverse=True)
    onehot = np.zeros((labels.size, table.shape[0]), np.float64)
    onehot[codes.ravel(), np.arange(table.shape[0])] = 1
    return onehot @ np.asarray(table, np.float64), labels


def _columns(table_a: np.ndarray, table_b: np.ndarray) -> np.ndarray:
    """Both tables' columns as the rows of one ``(Ma + Mb, F)`` float32 array (a copy without a
    transpose when a table is already the ``.T`` view of a row-major ``(M, F)`` array, as
    `sitesight.compare.detection_table` builds them)."""
    return np.concatenate([np.asarray(table_a, np.float32).T, np.asarray(table_b, np.float32).T], axis=0)


def _unique_rows(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of ``(M, F)`` ``columns`` and, per row, its index among them (many count columns
    coincide, e.g. the same bins at neighbouring IoU thresholds, or are all zero)."""
    if columns.shape[0] == 0:
        return columns, np.zeros(0, np.int64)
    # two random projections fingerprint each row (np.unique(axis=0) sorts whole rows: 10x slower);
    # the result is checked below, so a collision can only cost speed, never correctness
    probe = np.random.default_rng(12345).standard_normal((columns.shape[1], 2)).astype(np.float32)
    keys = np.round(columns @ probe, 3)
    _, first, inverse = np.unique(keys[:, 0] + 1j * keys[:, 1], return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    uniq = columns[first]
    dup = np.ones(columns.shape[0], bool)
    dup[first] = False
    if not np.array_equal(uniq[inverse[dup]], columns[dup]):
        uniq, inverse = np.unique(columns, axis=0, return_inverse=True)
        inverse = inverse.ravel()
    return uniq, inverse


def paired_bootstrap(
    table_a: np.ndarray,
    table_b: np.ndarray,
    statistic_a: Callable[[np.ndarray], np.ndarray],
    statistic_b: Callable[[np.ndarray], np.ndarray],
    *,
    n_resamples: int = 2000,
    seed: int | np.random.Generator = 0,
    strata: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point values of both models and the bootstrap distribution of their differences.

    Args:
        table_a, table_b: ``(F, Ma)`` and ``(F, Mb)`` additive counts per frame, rows aligned
            (counts below 2**24, summed in float32 exactly).
        statistic_a, statistic_b: map summed counts ``(B, M)`` float64 to ``(B, Q)`` metric values
            (the same ``Q`` metrics, in the same order, for both; NaN = undefined in that resample).
        n_resamples: ``B``.
        seed: seed or generator.
        strata: ``(F,)`` stratum per frame (frames resampled within their stratum).
        groups: ``(F,)`` cluster per frame; when given, whole clusters are resampled (``strata``
            then ignored).

    Returns:
        ``(point_a (Q,), point_b (Q,), deltas (B, Q))`` with ``deltas = B − A`` per resample.
    """
    if table_a.shape[0] != table_b.shape[0]:
        raise InputError(f"paired bootstrap: {table_a.shape[0]} frames for A but {table_b.shape[0]} for B")
    ma = table_a.shape[1]
    columns = _columns(table_a, table_b)
    if groups is not None:
        columns = group_sums(columns.T, groups)[0].astype(np.float32).T.copy()
        strata = None
    full = columns.sum(axis=1, dtype=np.float64)[None, :]
    point_a = np.asarray(statistic_a(full[:, :ma]), np.float64).reshape(-1)
    point_b = np.asarray(statistic_b(full[:, ma:]), np.float64).reshape(-1)
    uniq, inverse = _unique_rows(columns)
    out = np.empty((n_resamples, point_a.size), np.float64)
    row = 0
    for weights in resample_weights(uniq.shape[1], n_resamples=n_resamples, seed=seed, strata=strata):
        sums = (weights @ uniq.T).astype(np.float64)[:, inverse]
        b = weights.shape[0]
        out[row:row + b] = np.asarray(statistic_b(sums[:, ma:]), np.float64) - np.asarray(statistic_a(sums[:, :ma]), np.float64)
        row += b
    return point_a, point_b, out
