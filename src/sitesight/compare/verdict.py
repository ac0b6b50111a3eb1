"""From a bootstrap distribution to what a safety lead reads: a 95 % interval and a verdict.

* Interval: the percentile interval of the bootstrap differences, moved by ``Δ̂ − Δ̂_table`` when
  the exact estimate (e.g. COCO AP from every prediction) differs from the one the count tables
  give (score bins); without that shift it is the plain percentile interval.
* Verdict: ``better`` when the whole interval lies above 0, ``worse`` when below, else
  ``no detectable difference`` (at this sample size). Under no true difference each of
  ``better``/``worse`` is said about 2.5 % of the time.
* Frames needed: how many frames would have given 80 % power to detect the observed difference
  at the 5 % level, from the bootstrap standard error (which shrinks as ``1 / sqrt(n)``):
  ``n × ((z₀.₉₇₅ + z₀.₈₀) × se / |Δ̂|)²``, and how many more that is than were used.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["VERDICTS", "Estimate", "estimate", "frames_needed"]

VERDICTS = ("better", "worse", "no detectable difference")
Z_975 = 1.959963984540054
Z_80 = 0.8416212335729143


def frames_needed(delta: float, se: float, n_frames: int) -> int | None:
    """Frames that give 80 % power at the 5 % level for a true difference ``delta`` (None: ``delta`` is 0
    or the standard error unknown)."""
    if not math.isfinite(delta) or not math.isfinite(se) or delta == 0 or se <= 0:
        return None
    return int(math.ceil(n_frames * ((Z_975 + Z_80) * se / abs(delta)) ** 2))


@dataclass(frozen=True)
class Estimate:
    """One metric of A and B, their difference ``B − A`` with a 95 % interval and the verdict.

    Attributes:
        metric: name (``AP``, ``F1[person]``, ``AP50[small]``, ``macro_F1``, ``AUROC`` …).
        a, b, delta: point values (None when undefined, e.g. a class without ground truth).
        lo, hi: the interval's bounds for ``delta``.
        se: bootstrap standard error of ``delta``.
        verdict: one of `VERDICTS` (``undefined`` when ``delta`` is None).
        frames_needed: frames for 80 % power at this difference (None when ``delta`` is 0).
        more_frames: ``frames_needed`` minus the frames used (0 when already detected).
        resamples: resamples in which the metric was defined for both.
    """

    metric: str
    a: float | None
    b: float | None
    delta: float | None
    lo: float | None
    hi: float | None
    se: float | None
    verdict: str
    frames_needed: int | None
    more_frames: int | None
    resamples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def sentence(self, unit: str = "frames") -> str:
        """One line: ``ΔAP +0.021 [−0.004, +0.046]: no detectable difference (≈ 1,900 more frames needed)``."""
        if self.delta is None or self.lo is None or self.hi is None:
            return f"Δ{self.metric}: undefined ({self.verdict})"
        text = f"Δ{self.metric} {self.delta:+.3f} [{self.lo:+.3f}, {self.hi:+.3f}]: {self.verdict}"
        if self.verdict == VERDICTS[2]:
            used = None if self.frames_needed is None or self.more_frames is None else self.frames_needed - self.more_frames
            if self.more_frames is None:
                text += " (no difference observed)"
            elif used and self.frames_needed is not None and self.frames_needed > 100 * used:
                text += f" (over 100x these {unit} would be needed: the difference is negligible)"
            else:
                text += f" (about {self.more_frames:,} more {unit} needed to detect a difference this size)"
        return text


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def estimate(metric: str, a: float, b: float, deltas: np.ndarray, *, n_frames: int, table_delta: float | None = None,
             level: float = 0.95) -> Estimate:
    """The `Estimate` of one metric.

    Args:
        metric: its name.
        a, b: exact point values (NaN = undefined).
        deltas: ``(B,)`` bootstrap differences ``B − A`` (NaN where undefined in a resample).
        n_frames: frames behind the point values (for `frames_needed`).
        table_delta: the difference the count tables give on the full data, when it differs from
            ``b − a`` (score bins): the interval is moved by the gap.
        level: interval coverage.
    """
    delta = b - a
    ok = deltas[np.isfinite(deltas)]
    if not math.isfinite(delta) or ok.size < 10:
        return Estimate(metric, _finite(a), _finite(b), None, None, None, None, "undefined", None, None, int(ok.size))
    shift = 0.0 if table_delta is None or not math.isfinite(table_delta) else delta - table_delta
    tail = (1 - level) / 2 * 100
    lo, hi = (float(v) + shift for v in np.percentile(ok, [tail, 100 - tail]))
    se = float(np.std(ok, ddof=1))
    verdict = VERDICTS[0] if lo > 0 else VERDICTS[1] if hi < 0 else VERDICTS[2]
    need = frames_needed(delta, se, n_frames)
    more = 0 if verdict != VERDICTS[2] else None if need is None else max(0, need - n_frames)
    return Estimate(metric, float(a), float(b), float(delta), lo, hi, se, verdict, need, more, int(ok.size))
