"""Procedural data for the demo and the tests: construction-site CCTV frames with exact ground truth.

`render_site_frame` draws one random frame; `make_site_dataset` / `write_site_dataset` make a
multi-camera `Dataset` (in memory / JPEGs on disk). See `sitesight.synth.site` for the labelling rules.
"""

from __future__ import annotations

from sitesight.synth.layout import SiteLayout, sample_layout
from sitesight.synth.site import (
    ROPE_MIN_HEIGHT,
    ROPE_VALUES,
    SITE_ATTRIBUTE_SCHEMA,
    SITE_CLASSES,
    Conditions,
    compose_frame,
    iter_site_frames,
    make_site_dataset,
    render_site_frame,
    sample_conditions,
    site_dataset,
    write_site_dataset,
)
from sitesight.synth.workers import Worker, jitter_workers, sample_workers

__all__ = [
    "ROPE_MIN_HEIGHT",
    "ROPE_VALUES",
    "SITE_ATTRIBUTE_SCHEMA",
    "SITE_CLASSES",
    "Conditions",
    "SiteLayout",
    "Worker",
    "compose_frame",
    "iter_site_frames",
    "jitter_workers",
    "make_site_dataset",
    "render_site_frame",
    "sample_conditions",
    "sample_layout",
    "sample_workers",
    "site_dataset",
    "write_site_dataset",
]
