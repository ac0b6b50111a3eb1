"""`sitesight mine --run A=RUN_A --run B=RUN_B --budget 300 --out MINED/`, `sitesight mine verdict MINED/ --gt LABELS`
and `sitesight mine single RUN --gt LABELS --out hard.csv`.

Thin wrappers over `sitesight.mining.mad.mine_runs`, `sitesight.mining.mad.verdict_dir` and
`sitesight.mining.single.mine_single_run`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from sitesight.cli import spec_options as so
from sitesight.errors import InputError

mine_app = typer.Typer(
    name="mine",
    help="Hard-sample mining by maximum discrepancy between models on stored runs (no model, no GPU).",
    invoke_without_command=True,
    no_args_is_help=True,
)
console = Console()


def _runs(specs: list[str]) -> dict[str, Path]:
    runs: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--run expects NAME=RUN_DIR, got {spec!r}", where="--run")
        if name in runs:
            raise InputError(f"model name {name!r} given twice", where="--run")
        runs[name] = Path(path)
    return runs


def _weights(text: str) -> dict[str, float]:
    names = {"det": "detection", "cls": "classification", "cross": "cross_task", "loc": "localisation", "flip": "flip"}
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, _, value = item.partition("=")
        if key not in names:
            raise InputError(f"unknown weight {key!r}; use {sorted(names)}", where="--weights")
        try:
            out[names[key]] = float(value)
        except ValueError:
            raise InputError(f"weight {key!r} needs a number, got {value!r}", where="--weights") from None
    return out


def _operating(specs: list[str], runs: dict[str, Path]) -> dict[str, str]:
    out = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name or not value:
            raise InputError(f"--operating-point expects NAME=CONF or NAME=SPEC.json, got {spec!r}", where="--operating-point")
        if name not in runs:
            raise InputError(f"--operating-point names {name!r}, not one of the runs {sorted(runs)}", where="--operating-point")
        out[name] = value
    return out


@mine_app.callback()
def mine(
    ctx: typer.Context,
    run: list[str] = typer.Option(None, "--run", help="NAME=RUN_DIR of a stored run; give two or more."),
    budget: int = typer.Option(300, "--budget", min=1, help="Frames to label in all (split over the model pairs)."),
    out: Path = typer.Option(None, "--out", "-o", help="Output folder MINED/ (manifest.json, ranking.csv, why.json, cvat/)."),
    weights: str = typer.Option("det=1,cls=1,cross=0.5", "--weights", help="Weights of the discrepancy terms: det, cls, cross, loc, flip."),
    window: float = typer.Option(3600.0, "--window", help="Time window in seconds for the per-camera cap."),
    per_window: int = typer.Option(3, "--per-window", min=1, help="At most this many frames per camera and time window."),
    both_confident: bool = typer.Option(True, "--both-confident/--any-dispute", help="Only frames with a dispute both models are sure about (MAD)."),
    operating: list[str] = typer.Option(None, "--operating-point", help="NAME=CONF, NAME=SPEC.json or NAME=RUN/sweep.csv:best: the model's operating confidence; "
                                        "'confident' is >= CONF (yes) / < CONF/2 (no). Default per model: 0.6/0.3 of its own top score."),
    near_duplicates: bool = typer.Option(False, "--dedup-images", help="Hash every frame (reads images) and drop near duplicates."),
    classes: str = typer.Option("", "--classes", help="The classes to mine in, e.g. person,helmet,head: every model's classes are mapped onto them by name (through --class-map); default: the first run's recorded names."),
    preannotate: str = typer.Option(None, "--preannotate", help="Model whose boxes pre-annotate the CVAT tasks."),
    package: bool = typer.Option(True, "--package/--no-package", help="Write CVAT task parts of the mined and control frames."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random control set."),
    engine: str = typer.Option("local", "--engine", help="local | ray: per-frame discrepancies in Ray tasks, boxes read only for the picked frames (pip install 'sitesight[ray]')."),
    ray_address: str = typer.Option(None, "--ray-address", help="With --engine ray: cluster to join (auto, ray://HEAD:10001); default starts a local Ray."),
    spec: str = so.SPEC,
    conf: float = typer.Option(None, "--conf", help="Lowest raw score kept (sliced runs: before merging); default 0.05."),
    method: str = so.METHOD,
    metric: str = so.METRIC,
    threshold: float = so.THRESHOLD,
    gate: str = so.GATE,
    class_map: str = so.CLASS_MAP,
    class_agnostic: bool = so.CLASS_AGNOSTIC,
    border: bool = so.BORDER,
    timestamps: bool = typer.Option(False, "--timestamps", help="Record the creation time in MINED/manifest.json (off: same inputs, same bytes)."),
) -> None:
    """Score every pair of models on the pool, pick the frames they disagree on most, package them for CVAT."""
    if ctx.invoked_subcommand is not None:
        return
    from sitesight.mining.discrepancy import DiscrepancyWeights
    from sitesight.mining.mad import DEFAULT_SPEC, Handoff, mine_runs
    from sitesight.mining.select import Diversity

    runs = _runs(run or [])
    if len(runs) < 2:
        raise InputError("give at least two runs: --run A=RUN_A --run B=RUN_B", where="--run")
    if out is None:
        raise InputError("--out MINED/ is required", where="--out")
    handoff = Handoff(class_names=tuple(c.strip() for c in classes.split(",") if c.strip()), package=package, preannotate=preannotate)
    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"--engine must be local or ray, got {engine!r}")
    if engine == "ray" and near_duplicates:
        raise typer.BadParameter("--dedup-images reads every image: use --engine local (or dedup the captures first: data dedup --engine ray)")
    options = {"budget": budget, "weights": DiscrepancyWeights(**_weights(weights)), "handoff": handoff, "seed": seed,
               "diversity": Diversity(window_s=window, max_per_window=per_window), "both_confident": both_confident,
               "operating": _operating(operating or [], runs), "timestamps": timestamps,
               "spec": so.spec_of(spec, conf, method, metric, threshold, gate, class_map, class_agnostic, border, default=DEFAULT_SPEC)}
    with console.status(f"mining {len(runs)} runs"):
        if engine == "ray":
            from sitesight.engines.ray import RayOptions
            from sitesight.engines.ray_mine import mine_runs_ray

            result = mine_runs_ray(runs, out, options=RayOptions(address=ray_address), **options)
        else:
            result = mine_runs(runs, out, near_duplicates=near_duplicates, **options)
    points = Table("model", "confident yes >=", "confident no <", "from")
    for name, p in result.confident.items():
        points.add_row(name, f"{p.hi:.3f}", f"{p.lo:.3f}", p.source)
    console.print(points)
    table = Table("pair", "selected", "top score", "median score")
    for name, frames in result.pairs.items():
        s = result.scores[name].total[frames]
        table.add_row(name, str(frames.size), f"{s.max():.3f}" if s.size else "-", f"{float(np.median(s)):.3f}" if s.size else "-")
    console.print(table)
    for w in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
    console.print(f"{result.mined.size} mined + {result.control.size} control frames → {result.out_dir} (ranking.csv, why.json, manifest.json)")


@mine_app.command("verdict")
def verdict(
    mined: Path = typer.Argument(..., help="The MINED/ folder written by `sitesight mine`."),
    gt: Path = typer.Option(..., "--gt", help="Labels of the mined and control frames (CVAT/COCO/YOLO/VOC)."),
    fmt: str = typer.Option(None, "--format", help="Label format (default: detected)."),
    conf: float = typer.Option(0.5, "--conf", help="Confidence of the operating point images are judged at."),
    iou: float = typer.Option(0.5, "--iou", help="IoU of a match."),
    min_frames: int = typer.Option(30, "--min-frames", min=1, help="Warn when a mined or the random set has fewer labelled frames."),
) -> None:
    """Which model wins each pair, aggressiveness/resistance, global ranking and the mined-vs-random drop (95 % bootstrap intervals)."""
    from sitesight.formats import read_dataset
    from sitesight.mining.mad import verdict_dir

    result = verdict_dir(mined, read_dataset(gt, fmt), conf=conf, iou=iou, min_frames=min_frames)
    pairs = Table("pair", "images", "F1 a", "F1 b", "F1 a - b [95% CI]", "wins a", "wins b", "ties", "winner")
    for p in result.pairs:
        lo, hi = p.f1_a_minus_b_ci
        pairs.add_row(f"{p.a}~{p.b}", str(p.n_images), f"{p.f1_a:.3f}", f"{p.f1_b:.3f}", f"{p.f1_a - p.f1_b:+.3f} [{lo:+.3f}, {hi:+.3f}]",
                      str(p.wins_a), str(p.wins_b), str(p.ties), p.winner or "tie")
    console.print(pairs)
    models = Table("rank", "model", "strength (BT)", "mined frames", "F1 mined", "F1 random",
                   "F1 random - mined [95% CI] (> 0: mined harder)")
    for rank, m in enumerate(result.ranking, 1):
        i = result.models.index(m)
        lo, hi = result.drop_ci[m]
        models.add_row(str(rank), m, f"{result.strength[i]:.3f}", str(result.mined_frames[m]), f"{result.mined_f1[m]:.3f}",
                       f"{result.control_f1[m]:.3f}", f"{result.drop[m]:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    console.print(models)
    console.print(f"random set: {result.control_frames} labelled frames")
    for w in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
    console.print(f"written {Path(mined) / 'verdict.json'}")


@mine_app.command("single")
def single(
    run: Path = typer.Argument(..., help="A stored run folder of the one model."),
    gt: Path = typer.Option(..., "--gt", help="Labels of (some of) the run's frames (CVAT/COCO/YOLO/VOC)."),
    out: Path = typer.Option(..., "--out", "-o", help="Ranking CSV of the hardest frames."),
    top: int = typer.Option(300, "--top", min=1, help="Frames to list."),
    conf_hi: float = typer.Option(0.6, "--conf-hi", help="A false positive at least this confident counts."),
    conf_lo: float = typer.Option(0.3, "--conf-lo", help="Predictions below this are ignored (a GT they do not cover is missed)."),
    fmt: str = typer.Option(None, "--format", help="Label format (default: detected)."),
) -> None:
    """One model only: frames with confident false positives, confident misses, low-margin attributes."""
    from sitesight.formats import read_dataset
    from sitesight.mining.single import mine_single_run

    result = mine_single_run(run, read_dataset(gt, fmt), out, top_k=top, conf_hi=conf_hi, conf_lo=conf_lo)
    console.print(f"{int(result.fp.sum())} confident false positives, {int(result.miss.sum())} confident misses, "
                  f"{int(result.low_margin.sum())} low-margin attributes over {result.fp.size} labelled frames → {out}")
