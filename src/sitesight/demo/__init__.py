"""The main job: every capability sitesight has, end to end, on synthetic site frames.

`run_demo` runs the steps in `STEPS` in order. Each step is a plain function of a `DemoContext`;
it prints what it did and leaves its outputs in ``ctx.out`` and ``ctx.results`` for later steps
(the report at the end reads them). A capability joins the demo with one step function in the
step module of its area and one entry in `STEPS`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from sitesight.demo.compare_step import step_compare
from sitesight.demo.context import DemoContext
from sitesight.demo.data_steps import step_curation, step_formats, step_synth
from sitesight.demo.detection_steps import step_detector, step_evaluation, step_mining, step_sliced
from sitesight.demo.model_steps import step_anomaly, step_roi_head
from sitesight.demo.report_step import step_report
from sitesight.demo.scale_step import step_scale

__all__ = ["DemoContext", "run_demo", "STEPS"]


STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("synthetic site frames", step_synth),
    ("formats: synth ground truth as CVAT XML and COCO, read back and validated", step_formats),
    ("evaluation: COCO AP, operating point, errors (stand-in predictor)", step_evaluation),
    ("IoU-aware RetinaNet: train a small detector on fresh synth frames (CPU)", step_detector),
    ("sliced detection run (IoU-aware detector) + merge x gate x conf sweep + alpha sweep", step_sliced),
    ("scale: the same sweep on Ray Data (a local Ray) gives the same table", step_scale),
    ("curation: dedup, leak-free split, CVAT tasks", step_curation),
    ("RoI attribute head: safety rope on synth workers", step_roi_head),
    ("mining: MAD hard samples between stand-in models with planted weaknesses, verdict", step_mining),
    ("compare: is B really better than A? paired bootstrap verdict between two runs of the demo", step_compare),
    ("anomaly detection: autoencoder vs feature memory on synthetic screws, normal-only thresholds", step_anomaly),
    ("report: one HTML page over every run above (keep this step last)", step_report),
]


def run_demo(out: Path, *, frames: int = 24, seed: int = 0, console: Console | None = None) -> dict[str, Any]:
    """Run every demo step into ``out``; returns each step's results by name."""
    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(out=out, frames=frames, seed=seed, console=console)
    start = time.perf_counter()
    for i, (title, step) in enumerate(STEPS, 1):
        t0 = time.perf_counter()
        console.print(f"[bold]{i}/{len(STEPS)} {title}[/bold]")
        step(ctx)
        console.print(f"  [dim]{time.perf_counter() - t0:.1f} s[/dim]")
    console.print(f"[green]demo finished in {time.perf_counter() - start:.1f} s; outputs in {out}[/green]")
    return ctx.results
