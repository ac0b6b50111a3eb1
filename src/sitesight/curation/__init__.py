"""The data loop around the models: filter labels, split without leaks, mix sources, tile, dedup
frozen CCTV frames, sample by time and package CVAT tasks. numpy and Pillow only.
"""

from __future__ import annotations

from sitesight.curation.captures import (
    Capture,
    capture_from_path,
    captures_from_dataset,
    list_captures,
    parse_capture_name,
)
from sitesight.curation.dedup import DedupResult, dedup_frames, phash_file, remove_dropped
from sitesight.curation.filters import (
    AttributeRule,
    attributes_to_classes,
    drop_fixed_location,
    fixed_location_mask,
    parse_attribute_rule,
    remap_classes,
)
from sitesight.curation.mix import MixSource, mix_datasets, parse_source_spec, write_manifest
from sitesight.curation.packaging import package_cvat_tasks
from sitesight.curation.sampling import read_exclusions, sample_by_time
from sitesight.curation.split import split_dataset, stratified_group_split
from sitesight.curation.tiling import tile_dataset, tile_detections

__all__ = [
    "AttributeRule",
    "Capture",
    "DedupResult",
    "MixSource",
    "attributes_to_classes",
    "capture_from_path",
    "captures_from_dataset",
    "dedup_frames",
    "drop_fixed_location",
    "fixed_location_mask",
    "list_captures",
    "mix_datasets",
    "package_cvat_tasks",
    "parse_attribute_rule",
    "parse_capture_name",
    "parse_source_spec",
    "phash_file",
    "read_exclusions",
    "remap_classes",
    "remove_dropped",
    "sample_by_time",
    "split_dataset",
    "stratified_group_split",
    "tile_dataset",
    "tile_detections",
    "write_manifest",
]
