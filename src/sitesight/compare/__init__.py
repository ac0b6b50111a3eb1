"""Is model B really better than model A? Paired bootstrap comparisons with 95 % intervals and a verdict.

Modules: `bootstrap` (the resampling engine over per-unit count tables: frames, frames within
cameras, or whole cameras), `detection_table` (one detector's per-frame counts, matched once),
`paired` (`compare_detections`, `compare_classifications`, `compare_anomaly`), `verdict`
(intervals, better / worse / no detectable difference, frames needed), `result` (`Comparison`,
its JSON). numpy only; reading two stored runs into aligned values (``sitesight compare``) is
`sitesight.report.paired_runs`, which uses the report's run readers.
"""

from __future__ import annotations

from sitesight.compare.bootstrap import paired_bootstrap, resample_weights
from sitesight.compare.paired import compare_anomaly, compare_classifications, compare_detections
from sitesight.compare.result import Comparison, run_comparison
from sitesight.compare.verdict import VERDICTS, Estimate, estimate, frames_needed

__all__ = [
    "VERDICTS",
    "Comparison",
    "Estimate",
    "compare_anomaly",
    "compare_classifications",
    "compare_detections",
    "estimate",
    "frames_needed",
    "paired_bootstrap",
    "resample_weights",
    "run_comparison",
]
