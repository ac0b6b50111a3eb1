"""`sitesight demo`: the main job, every capability end to end on synthetic site frames."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer()  # this module's top-level commands; sitesight.cli.main merges them into the root


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", "-o", help="Folder for frames, runs and the report."),
    frames: int = typer.Option(24, "--frames", min=2, help="Number of synthetic 1920x1080 site frames."),
    seed: int = typer.Option(0, "--seed", help="Seed for the synthetic scenes and every model."),
) -> None:
    """Generate synthetic construction-site frames and run every sitesight capability on them."""
    from sitesight.demo import run_demo

    run_demo(out, frames=frames, seed=seed)
