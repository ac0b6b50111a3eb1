"""What "confident" means for each model: its own operating point, not one fixed number.

MAD's filter keeps a frame only when it holds a dispute both models are sure about: one model says
"yes" with a score ``>= hi`` where the other says "no" (nothing, or a score ``< lo``). Detectors
do not share a score scale: a real detector whose scores never exceed 0.73 never reaches a fixed
``0.6 / 0.3`` rule's "yes" often enough, and mining selects nothing. So each model gets its own
`ConfidentPoint`:

* **from its operating point** (a sweep/eval spec, or a number): ``hi = conf``, ``lo = conf / 2``;
* **from its own scores** (the default): the model's top score is the 95th percentile of its
  per-frame maximum scores over the pool (a robust "what a sure yes looks like for this model",
  unmoved by how many faint boxes it emits), and ``hi = 0.6 × top``, ``lo = 0.3 × top``: the fixed
  ``0.6 / 0.3`` rule rescaled to the model's own range (the same numbers for a model scoring up to 1).

Every point records where it came from (``source``), and the mining manifest keeps them.

Example:
    >>> import numpy as np
    >>> from sitesight import Detections
    >>> from sitesight.mining.pool import pool_from_detections
    >>> from sitesight.mining.confident import confident_points
    >>> dets = [Detections(xyxy=[[0, 0, 9, 9]], score=[0.7]) for _ in range(20)]
    >>> p = confident_points(pool_from_detections([f"{i}.jpg" for i in range(20)], [(64, 64)] * 20, {"A": dets}))
    >>> round(p["A"].hi, 2), round(p["A"].lo, 2)
    (0.42, 0.21)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.errors import InputError
from sitesight.mining.pool import Pool

__all__ = ["ConfidentPoint", "confident_points", "operating_conf"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfidentPoint:
    """A model's "confident yes" (``score >= hi``) and "confident no" (``score < lo``) scores."""

    hi: float
    lo: float
    source: str

    def __post_init__(self) -> None:
        if not 0 <= self.lo <= self.hi:
            raise InputError(f"confident point needs 0 <= lo <= hi, got lo={self.lo}, hi={self.hi} ({self.source})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def operating_conf(value: str | float | Path) -> tuple[float, str]:
    """A model's operating confidence from a number, a JSON spec file or a sweep row, and where it came from.

    A JSON file may hold ``conf`` at the top level, under ``spec``/``postprocess``, or be a sweep
    table (``rows`` + ``best``: the best row's ``conf``); anything else is a ``--spec`` reference
    (``RUN/sweep.csv:best``, ``TABLE.csv:ROW``, JSON text: `sitesight.sliced.spec.parse_spec`).

    Raises:
        InputError: not a number and not a readable JSON file with a confidence.
    """
    try:
        conf = float(value)
        return conf, f"operating point conf={conf:g}"
    except (TypeError, ValueError):
        pass
    path = Path(value)
    if path.suffix.lower() != ".json" or not path.is_file():  # a sweep table row (RUN/sweep.csv:best) or JSON text
        from sitesight.sliced.spec import parse_spec

        conf = float(parse_spec(str(value)).conf)
        return conf, f"operating point conf={conf:g} from {value}"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError("operating point: expected a number or a spec JSON file", path) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"operating point: unreadable JSON ({exc})", path) from None
    conf = None
    if isinstance(data, dict):
        for holder in (data, data.get("spec"), data.get("postprocess")):
            if isinstance(holder, dict) and isinstance(holder.get("conf"), (int, float)):
                conf = float(holder["conf"])
                break
        rows, best = data.get("rows"), data.get("best")
        if conf is None and isinstance(rows, list) and isinstance(best, int) and 0 <= best < len(rows):
            conf = float(rows[best].get("conf"))
    if conf is None:
        raise InputError("operating point: no 'conf' found (top level, 'spec', 'postprocess' or a sweep's best row)", path)
    return conf, f"operating point conf={conf:g} from {path}"


def confident_points(
    pool: Pool,
    *,
    operating: Mapping[str, str | float | Path] | None = None,
    fixed: tuple[float, float] | None = None,
    hi_fraction: float = 0.6,
    lo_fraction: float = 0.3,
    top_quantile: float = 0.95,
) -> dict[str, ConfidentPoint]:
    """One `ConfidentPoint` per model of ``pool`` (rules in the module notes).

    Args:
        pool: frames and every model's detections.
        operating: model name → operating confidence (number or spec JSON, `operating_conf`);
            those models get ``hi = conf``, ``lo = conf / 2``.
        fixed: ``(hi, lo)`` for every model not in ``operating`` (the old fixed rule); None: from scores.
        hi_fraction, lo_fraction: ``hi`` and ``lo`` as fractions of the model's top score.
        top_quantile: quantile of the per-frame maximum scores taken as the model's top score.
    """
    operating = dict(operating or {})
    unknown = sorted(set(operating) - set(pool.runs))
    if unknown:
        raise InputError(f"operating point for unknown model(s) {unknown}; models are {list(pool.runs)}", where="--operating-point")
    out = {}
    for name, run in pool.runs.items():
        if name in operating:
            conf, source = operating_conf(operating[name])
            out[name] = ConfidentPoint(conf, conf / 2, source)
        elif fixed is not None:
            out[name] = ConfidentPoint(float(fixed[0]), float(fixed[1]), f"fixed hi={fixed[0]:g}, lo={fixed[1]:g}")
        else:
            counts = run.counts()
            with_boxes = np.flatnonzero(counts > 0)
            if with_boxes.size == 0:
                log.warning("model %r has no boxes on the pool: nothing it says can be confident", name)
                out[name] = ConfidentPoint(1.0, 0.0, "no boxes on the pool")
                continue
            frame_max = np.maximum.reduceat(run.score.astype(np.float64), run.offsets[with_boxes])
            top = float(np.quantile(frame_max, top_quantile))
            out[name] = ConfidentPoint(hi_fraction * top, lo_fraction * top,
                                       f"{hi_fraction:g}/{lo_fraction:g} x top score {top:.3f} (q{top_quantile:g} of per-frame max "
                                       f"over {with_boxes.size} frames)")
    return out
