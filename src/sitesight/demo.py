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


def step_curation(ctx: DemoContext) -> None:
    """Dedup frozen frames, split by camera without leaks, package the test split as CVAT tasks."""
    import shutil

    from sitesight.curation import captures_from_dataset, dedup_frames, package_cvat_tasks, split_dataset
    from sitesight.curation.captures import Capture

    assert ctx.dataset is not None, "the synth step runs first"
    out = ctx.out / "curation"
    out.mkdir(parents=True, exist_ok=True)
    captures = captures_from_dataset(ctx.dataset)
    # a frozen camera: the first frame again, a second later, with only the clock region differing
    first = captures[0]
    frozen = out / "frozen_repeat.jpg"
    shutil.copyfile(first.path, frozen)
    captures.append(Capture(path=frozen, camera_id=first.camera_id, timestamp=(first.timestamp or 0.0) + 1.0, index=len(captures)))
    dedup = dedup_frames(captures, ignore_regions=[(0.0, 0.0, 0.45, 0.07)])
    dedup.write_report(out / "dedup_report.csv")
    parts = split_dataset(ctx.dataset, fractions={"train": 0.75, "test": 0.25}, group_by=("camera",), seed=ctx.seed)
    tasks = package_cvat_tasks(parts["test"], out / "cvat_tasks", max_images=10)
    cams = {k: sorted({str(s.camera_id) for s in v.samples}) for k, v in parts.items()}
    ctx.console.print(
        f"  dedup: {dedup.summary()['kept']} kept, {dedup.summary()['dropped']} dropped (report {out / 'dedup_report.csv'}); "
        f"split by camera: train {cams['train']}, test {cams['test']}; {len(tasks)} CVAT task(s) in {out / 'cvat_tasks'}"
    )
    ctx.results["curation"] = {"dedup": dedup.summary(), "split_cameras": cams, "cvat_tasks": [str(t) for t in tasks]}


STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("synthetic site frames", step_synth),
    ("curation: dedup, leak-free split, CVAT tasks", step_curation),
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
