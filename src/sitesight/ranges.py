"""Lists of numbers as a command line types them: ``"start:stop:step"`` or ``"a,b,c"``.

One parser for every option that takes several thresholds (``sitesight sweep --conf``,
``sitesight eval det --sweep``, ``sitesight det alpha-sweep --alpha``, …).

Example:
    >>> from sitesight.ranges import parse_range
    >>> parse_range("0.1:0.3:0.1")
    [0.1, 0.2, 0.3]
    >>> parse_range("0.5, 0.75")
    [0.5, 0.75]
"""

from __future__ import annotations

import numpy as np

__all__ = ["parse_range"]


def parse_range(text: str) -> list[float]:
    """``"0.15:0.5:0.05"`` (start:stop:step, stop included) or ``"0.3,0.4"`` → list of floats.

    Range values are rounded to 10 decimals (``0.15 + 3 * 0.05`` reads ``0.3``); a stop within
    ``1e-9`` steps of the grid counts as reached. A range whose stop lies below its start is empty;
    so is a comma list without numbers.

    Raises:
        ValueError: malformed text, a non-positive step, or a non-finite start, stop or step.
    """
    text = text.strip()
    try:
        if ":" in text:
            start, stop, step = (float(p) for p in text.split(":"))
            if not np.isfinite([start, stop, step]).all():
                raise ValueError("start, stop and step must be finite")
            if step <= 0:
                raise ValueError(f"step must be positive in {text!r}")
            n = int(np.floor((stop - start) / step + 1e-9)) + 1
            return [round(start + i * step, 10) for i in range(max(n, 0))]
        return [float(p) for p in text.split(",") if p.strip()]
    except ValueError as exc:
        raise ValueError(f"expected start:stop:step or a comma list of numbers, got {text!r} ({exc})") from None
