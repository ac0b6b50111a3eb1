"""`Comparison`: the answer to "is B really better than A?", as a value, JSON and terminal lines.

`run_comparison` is the one place that turns two aligned per-unit tables into estimates: it runs
the paired bootstrap over frames (stratified by camera when every frame has one) and, with at
least `MIN_CAMERAS` cameras, also over cameras (cluster bootstrap); the verdict is read from the
camera bootstrap when there is one — the next camera, not the next frame of a known camera, is
what the model meets — else from the frame bootstrap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.compare.bootstrap import paired_bootstrap
from sitesight.compare.verdict import Estimate, estimate

__all__ = ["Comparison", "run_comparison", "describe", "MIN_CAMERAS"]

MIN_CAMERAS = 10  # fewer clusters than this and a cluster bootstrap's interval is too narrow to trust


@dataclass(frozen=True)
class Comparison:
    """Model B against model A on the same data; every delta is ``B − A``.

    Attributes:
        kind: ``detection``, ``classification`` or ``anomaly``.
        a, b: the models' names.
        primary: the metric whose verdict is the headline.
        unit: ``frame`` or ``camera``: what the verdict's bootstrap resampled.
        n_frames: frames (images) both were scored on; n_cameras: distinct cameras (None = unknown).
        n_resamples, seed: the bootstrap's settings.
        estimates: per metric, from the ``unit`` bootstrap (primary first).
        by_unit: every bootstrap that was run: ``{"frame": (...), "camera": (...)}``.
        settings: what was held fixed (operating points, spec, false-alarm rate, bins).
        notes: warnings a reader needs (few cameras, unmatched frames...).
    """

    kind: str
    a: str
    b: str
    primary: str
    unit: str
    n_frames: int
    n_cameras: int | None
    n_resamples: int
    seed: int
    estimates: tuple[Estimate, ...]
    by_unit: Mapping[str, tuple[Estimate, ...]]
    settings: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def headline(self) -> Estimate:
        return self.get(self.primary)

    @property
    def verdict(self) -> str:
        return self.headline.verdict

    def get(self, metric: str) -> Estimate:
        for e in self.estimates:
            if e.metric == metric:
                return e
        raise KeyError(f"no metric {metric!r}; have {[e.metric for e in self.estimates]}")

    def sentence(self) -> str:
        """``B is better than A on AP: ΔAP +0.031 [+0.012, +0.050] (1,200 frames, frame bootstrap).``"""
        h = self.headline
        what = {"better": f"{self.b} is better than {self.a}", "worse": f"{self.b} is worse than {self.a}"}.get(
            h.verdict, f"no detectable difference between {self.a} and {self.b}" if h.verdict != "undefined" else f"{self.primary} is undefined")
        return f"{what} on {self.primary}: {h.sentence()}"

    def data_line(self) -> str:
        cams = f"{self.n_cameras} cameras" if self.n_cameras else "camera unknown"
        return f"{self.n_frames:,} frames, {cams}; {self.n_resamples:,} paired resamples over {self.unit}s"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "a": self.a, "b": self.b, "primary": self.primary, "verdict": self.verdict,
            "sentence": self.sentence(), "unit": self.unit, "n_frames": self.n_frames, "n_cameras": self.n_cameras,
            "n_resamples": self.n_resamples, "seed": self.seed, "interval": "95 % percentile bootstrap, paired",
            "estimates": [e.to_dict() for e in self.estimates],
            "by_unit": {u: [e.to_dict() for e in es] for u, es in self.by_unit.items()},
            "settings": dict(self.settings), "notes": list(self.notes),
        }

    def write_json(self, path: Path | str) -> Path:
        from sitesight.atomic import write_json

        return write_json(Path(path), json.loads(json.dumps(self.to_dict(), default=str)), indent=1)


def _estimates(names: Sequence[str], exact_a: np.ndarray, exact_b: np.ndarray, table_a: np.ndarray, table_b: np.ndarray,
               deltas: np.ndarray, n_frames: int) -> tuple[Estimate, ...]:
    out = []
    for q, name in enumerate(names):
        table_delta = float(table_b[q] - table_a[q])
        out.append(estimate(name, float(exact_a[q]), float(exact_b[q]), deltas[:, q], n_frames=n_frames, table_delta=table_delta))
    return tuple(out)


def run_comparison(
    *,
    kind: str,
    names: Sequence[str],
    primary: str,
    table_a: np.ndarray,
    table_b: np.ndarray,
    statistic_a: Callable[[np.ndarray], np.ndarray],
    statistic_b: Callable[[np.ndarray], np.ndarray],
    exact_a: np.ndarray | None = None,
    exact_b: np.ndarray | None = None,
    cameras: Sequence[Any] | np.ndarray | None = None,
    model_names: tuple[str, str] = ("A", "B"),
    n_resamples: int = 2000,
    seed: int = 0,
    settings: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> Comparison:
    """Bootstrap two aligned per-unit tables and read the estimates (see the module notes).

    Args:
        names: the ``Q`` metric names the statistics return, in order.
        table_a, table_b: ``(F, Ma)`` / ``(F, Mb)`` per-frame counts, rows aligned.
        statistic_a, statistic_b: summed counts ``(B, M)`` → ``(B, Q)`` metrics.
        exact_a, exact_b: ``(Q,)`` exact values when they differ from the tables' (AP from score bins).
        cameras: ``(F,)`` camera per frame (None/"" entries = unknown; then no camera bootstrap).
    """
    n = table_a.shape[0]
    notes = list(notes)
    cam = None
    if cameras is not None:
        values = ["" if c is None else str(c) for c in cameras]
        if all(values):
            cam = np.array(values, dtype=object)
        elif any(values):
            notes.append(f"{sum(not v for v in values)} of {n} frames have no camera: frames resampled without camera strata")
    n_cameras = None if cam is None else int(np.unique(cam).size)
    by_unit: dict[str, tuple[Estimate, ...]] = {}
    pa, pb, deltas = paired_bootstrap(table_a, table_b, statistic_a, statistic_b, n_resamples=n_resamples, seed=seed, strata=cam)
    ea = pa if exact_a is None else np.asarray(exact_a, np.float64)
    eb = pb if exact_b is None else np.asarray(exact_b, np.float64)
    by_unit["frame"] = _estimates(names, ea, eb, pa, pb, deltas, n)
    unit = "frame"
    if cam is not None and n_cameras is not None and n_cameras >= MIN_CAMERAS:
        _, _, cdeltas = paired_bootstrap(table_a, table_b, statistic_a, statistic_b, n_resamples=n_resamples, seed=seed, groups=cam)
        by_unit["camera"] = _estimates(names, ea, eb, pa, pb, cdeltas, n)
        unit = "camera"
    elif n_cameras is not None:
        notes.append(f"only {n_cameras} cameras (< {MIN_CAMERAS}): the verdict resamples frames within each camera, "
                     "so it speaks for these cameras, not for new ones")
    order = sorted(range(len(names)), key=lambda q: names[q] != primary)
    ests = by_unit[unit]
    return Comparison(kind, model_names[0], model_names[1], primary, unit, n, n_cameras, n_resamples, seed,
                      tuple(ests[q] for q in order), by_unit, dict(settings or {}), tuple(notes))


def describe(
    table: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    names: Sequence[str],
    *,
    exact: np.ndarray | None = None,
    cameras: Sequence[Any] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """One model's metrics with bootstrap intervals (frames resampled, within cameras when every frame
    has one): ``[{"metric", "value", "lo", "hi"}]``; an exact value moves its interval by the gap to the
    table's value, as in `sitesight.compare.verdict.estimate`."""
    strata = None
    if cameras is not None and all(c not in (None, "") for c in cameras):
        strata = np.array([str(c) for c in cameras], dtype=object)
    empty = np.zeros((table.shape[0], 0), np.float32)
    zeros = lambda s: np.zeros((s.shape[0], len(names)))  # noqa: E731  (A is "nothing": deltas are B's values)
    _, point, boot = paired_bootstrap(empty, table, zeros, statistic, n_resamples=n_resamples, seed=seed, strata=strata)
    values = point if exact is None else np.asarray(exact, np.float64)
    tail = (1 - level) / 2 * 100
    out = []
    for q, name in enumerate(names):
        ok = boot[:, q][np.isfinite(boot[:, q])]
        value = float(values[q])
        if not np.isfinite(value) or ok.size < 10:
            out.append({"metric": name, "value": value if np.isfinite(value) else None, "lo": None, "hi": None})
            continue
        shift = value - float(point[q]) if np.isfinite(point[q]) else 0.0
        lo, hi = (float(v) + shift for v in np.percentile(ok, [tail, 100 - tail]))
        out.append({"metric": name, "value": value, "lo": lo, "hi": hi})
    return out
