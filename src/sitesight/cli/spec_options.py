"""The post-processing options every run-reading command shares, with the same names and meaning.

``--spec --conf --method --metric --threshold --gate --class-map --class-agnostic --border/--no-border``
become one `sitesight.sliced.spec.PostprocessSpec` through `spec_of`: ``--spec`` (a sweep row, a
recorded spec) first, every option given on top. Each command passes its own default spec.
"""

from __future__ import annotations

import typer

SPEC = typer.Option(None, "--spec", help="Start from a sweep row or recorded spec: RUN/sweep.csv:best, TABLE.csv:ROW (0-based), SPEC.json or JSON text; options given override it.")
CONF = typer.Option(None, "--conf", help="Confidence threshold: raw boxes below it are dropped before merging.")
METHOD = typer.Option(None, "--method", help="Merge method: nms | nmm | greedy_nmm.")
METRIC = typer.Option(None, "--metric", help="Merge overlap metric: iou | ios.")
THRESHOLD = typer.Option(None, "--threshold", help="Merge overlap threshold.")
GATE = typer.Option(None, "--gate", help="Full-image gate, e.g. r=40,conf=0.2[,ios=0.5][,agnostic]; 'none' for no gate.")
CLASS_MAP = typer.Option(None, "--class-map", help='Model class name → ground-truth class name, e.g. "With Helmet=helmet,vehicle=" (an empty target drops the class).')
CLASS_AGNOSTIC = typer.Option(None, "--class-agnostic/--class-aware", help="Treat every class as one (merge, gate and scoring ignore classes).")
BORDER = typer.Option(None, "--border/--no-border", help="Slice-border rule: drop cut boxes an uncut twin covers.")
INCLUDE_UNSCORED = typer.Option(False, "--include-unscored-gt", help="Also score ground-truth frames the predictions do not cover (their objects count as misses).")
IGNORE_UNKNOWN = typer.Option(False, "--ignore-unknown", help="Drop results of unknown categories or images (and say how many) instead of failing.")


def recorded_spec(path: object, console: object = None) -> str | None:
    """A run folder's recorded spec as ``--spec`` text (``rescore`` records the post-processing its boxes
    are meant for), else None; said on ``console`` when there is one. Commands that read a run start
    from it when no ``--spec`` is given, so a rescored run is scored as `rescore` reported it."""
    import json
    from pathlib import Path

    run = Path(str(path))
    if not (run / "manifest.json").is_file():
        return None
    from sitesight.sliced.store import read_manifest

    recorded = read_manifest(run).get("spec")
    if not isinstance(recorded, dict):
        return None
    if console is not None:
        console.print(f"starting from the spec recorded in {run / 'manifest.json'} (--spec overrides it)", markup=False)  # type: ignore[attr-defined]
    return json.dumps(recorded)


def spec_of(
    spec: str | None,
    conf: float | None,
    method: str | None,
    metric: str | None,
    threshold: float | None,
    gate: str | None,
    class_map: str | None,
    class_agnostic: bool | None,
    border: bool | None,
    default: object = None,
):  # noqa: ANN201 - returns PostprocessSpec (imported lazily to keep --help fast)
    """The options as one `PostprocessSpec` (``default``: the command's default spec)."""
    from sitesight.sliced.spec import PostprocessSpec, spec_from_options

    return spec_from_options(spec=spec, conf=conf, method=method, metric=metric, threshold=threshold, gate=gate,
                             class_map=class_map, class_agnostic=class_agnostic, border=border,
                             default=default if isinstance(default, PostprocessSpec) else PostprocessSpec())
