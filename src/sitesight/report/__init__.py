"""HTML reports: one self-contained page per set of runs (classification, detection, anomaly, mining,
and comparisons of two runs of the same kind).

`build_report` is the entry point; `load_report_run` and `write_run_info` define what a run
folder must hold (see `sitesight.report.runs`). numpy, jinja2, matplotlib and Pillow only.
"""

from __future__ import annotations

from sitesight.report.html import build_report, render_report
from sitesight.report.runs import RUN_KINDS, ReportRun, load_report_run, write_run_info

__all__ = ["RUN_KINDS", "ReportRun", "build_report", "load_report_run", "render_report", "write_run_info"]
