"""sitesight: build and audit vision models for construction-site safety and industrial inspection.

The core (containers, geometry, formats, merging, evaluation) needs numpy only; everything that
needs torch lives in `sitesight.models` behind the ``[torch]`` extra.

The notebook API is flat: every name below is one attribute away, and is imported the first time
it is used (PEP 562), so ``import sitesight`` itself loads nothing (``sitesight --version`` starts
in a fraction of a second).

Example:
    >>> import sitesight
    >>> ds = sitesight.read_dataset("labels.xml")                         # doctest: +SKIP
    >>> run = sitesight.load_run("runs/site_a")                           # doctest: +SKIP
    >>> final = sitesight.postprocess(run, sitesight.PostprocessSpec(conf=0.3), class_names=ds.class_names)  # doctest: +SKIP
    >>> sitesight.evaluate(ds, "runs/site_a")["f1"]                       # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name → (module, attribute), imported on first use
_LAZY: dict[str, tuple[str, str]] = {
    "AttributeSpec": ("sitesight.dataset", "AttributeSpec"),
    "Dataset": ("sitesight.dataset", "Dataset"),
    "Sample": ("sitesight.dataset", "Sample"),
    "Detections": ("sitesight.detections", "Detections"),
    "InputError": ("sitesight.errors", "InputError"),
    "merge": ("sitesight.sliced.merge", "merge"),
    "slice_grid": ("sitesight.sliced.slicing", "slice_grid"),
    "Run": ("sitesight.sliced.store", "Run"),
    "load_run": ("sitesight.sliced.store", "load_run"),
    "write_run": ("sitesight.sliced.store", "write_run"),
    "read_dataset": ("sitesight.formats", "read_dataset"),
    "write_dataset": ("sitesight.formats", "write_dataset"),
    "PostprocessSpec": ("sitesight.sliced.spec", "PostprocessSpec"),
    "postprocess": ("sitesight.sliced.postprocess", "postprocess"),
    "evaluate": ("sitesight.sliced.evaluate", "evaluate_det"),
    "evaluate_coco": ("sitesight.evaluation.coco", "evaluate_coco"),
    "average_precision": ("sitesight.evaluation.voc", "average_precision"),
    "sweep": ("sitesight.sliced.sweep", "sweep_run"),
    "align_gt": ("sitesight.sliced.sweep", "align_gt"),
    "merge_grid": ("sitesight.sliced.sweep", "merge_grid"),
    # not "report"/"compare": those are subpackages, and importing one would replace the function
    "build_report": ("sitesight.report.html", "build_report"),
    "compare_runs": ("sitesight.report.paired_runs", "compare_paths"),
}

__all__ = [  # = the keys of _LAZY (a test checks), spelled out for linters and IDEs
    "AttributeSpec", "Dataset", "Sample", "Detections", "InputError", "merge", "slice_grid", "Run", "load_run",
    "write_run", "read_dataset", "write_dataset", "PostprocessSpec", "postprocess", "evaluate", "evaluate_coco",
    "average_precision", "sweep", "align_gt", "merge_grid", "build_report", "compare_runs", "__version__",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'sitesight' has no attribute {name!r}")
    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from sitesight.dataset import AttributeSpec, Dataset, Sample
    from sitesight.detections import Detections
    from sitesight.errors import InputError
    from sitesight.evaluation.coco import evaluate_coco
    from sitesight.evaluation.voc import average_precision
    from sitesight.formats import read_dataset, write_dataset
    from sitesight.report.html import build_report
    from sitesight.report.paired_runs import compare_paths as compare_runs
    from sitesight.sliced.evaluate import evaluate_det as evaluate
    from sitesight.sliced.merge import merge
    from sitesight.sliced.postprocess import postprocess
    from sitesight.sliced.slicing import slice_grid
    from sitesight.sliced.spec import PostprocessSpec
    from sitesight.sliced.store import Run, load_run, write_run
    from sitesight.sliced.sweep import align_gt, merge_grid
    from sitesight.sliced.sweep import sweep_run as sweep
