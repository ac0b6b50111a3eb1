"""sitesight: build and audit vision models for construction-site safety and industrial inspection.

The core (containers, geometry, formats, merging, evaluation) needs numpy only; everything that
needs torch lives in `sitesight.models` behind the ``[torch]`` extra.
"""

from __future__ import annotations

from sitesight.dataset import AttributeSpec, Dataset, Sample
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.sliced.merge import merge
from sitesight.sliced.slicing import slice_grid
from sitesight.sliced.store import Run, load_run, write_run

__version__ = "0.1.0"

__all__ = [
    "AttributeSpec",
    "Dataset",
    "Detections",
    "InputError",
    "Sample",
    "merge",
    "slice_grid",
    "Run",
    "load_run",
    "write_run",
    "__version__",
]
