"""The main job: every capability sitesight has, end to end, on synthetic site frames.

`run_demo` runs the steps in `STEPS` in order. Each step is a plain function of a `DemoContext`;
it prints what it did and leaves its outputs in ``ctx.out`` and ``ctx.results`` for later steps
(the report at the end reads them). A capability joins the demo by adding one step here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from sitesight.dataset import Dataset

__all__ = ["DemoContext", "run_demo", "STEPS"]


@dataclass
class DemoContext:
    """What the demo steps share: the output folder, the settings and every step's results."""

    out: Path
    frames: int
    seed: int
    console: Console
    dataset: Dataset | None = None
    results: dict[str, Any] = field(default_factory=dict)


def step_synth(ctx: DemoContext) -> None:
    """Generate synthetic site frames with ground truth and print dataset statistics."""
    from sitesight.synth import write_site_dataset

    ctx.dataset = write_site_dataset(ctx.out / "frames", n_frames=ctx.frames, seed=ctx.seed)
    counts = ctx.dataset.class_counts()
    ctx.console.print(
        f"  {len(ctx.dataset)} frames {ctx.dataset[0].image_wh[0]}x{ctx.dataset[0].image_wh[1]} in {ctx.out / 'frames'}; "
        + ", ".join(f"{k}: {v}" for k, v in counts.items())
    )
    ctx.results["synth"] = {"frames": len(ctx.dataset), "class_counts": counts}


STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("synthetic site frames", step_synth),
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
