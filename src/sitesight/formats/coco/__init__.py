"""COCO instances JSON (ground truth) and COCO results JSON (predictions).

Boxes are COCO ``[x, y, w, h]`` in the file and ``xyxy`` inside. ``segmentation`` is ignored for
boxes. Per box, ``iscrowd`` becomes ``attributes["iscrowd"]`` (int64), ``area`` is kept as
``attributes["coco_area"]`` (float32, NaN when absent; pycocotools' area ranges use it) and the
``attributes`` dict that CVAT's COCO export writes becomes per-box attributes: ``occluded`` →
``cvat_occluded`` (bool), ``track_id`` → ``cvat_track_id``, ``keyframe`` dropped, ``rotation``
(CVAT writes the unrotated box plus its rotation in degrees) applied so the box is the rotated
box's axis-aligned extent, exactly as `sitesight.formats.cvat` reads the same shape from XML,
every other value an object array of ``str``. Other tools' layouts read the same way: FiftyOne's
extra fields at the top level of an annotation (strings → attributes, numbers → float extras, NaN
where absent), Roboflow's files with no attributes at all.

Attribute schema: `write_coco` stores the dataset's schema (per attribute: input type, values,
default, the labels that carry it) in a top-level ``attribute_schema`` list that `load_coco` reads
back, so CVAT → COCO → CVAT keeps it. Without it the schema is inferred: the labels whose boxes
carry the key, the values seen in order, ``checkbox`` for JSON booleans, else ``select``. A box
keeps only the attributes its annotation had (``None`` elsewhere); no default is filled in.

``file_name`` is the sample path relative to the dataset's image root (relative to the JSON's
folder when the image lies under it), never an absolute or symlink-resolved path; ``info.image_root``
records where that root lies relative to the JSON, and `load_coco` uses it when the names do not
resolve from the JSON's folder.

Category ids: classes are the categories in id order; ids may start at 0 or have gaps. `load_coco`
returns the ids in ``Loaded.meta["category_ids"]``; pass them to `write_coco` /
`write_coco_results` / `read_coco_results` as ``category_ids`` to write the same ids back
(default: ``1..K``). Image ids: `coco_image_ids` (the samples' ``image_id`` when all are set and
unique, else ``1..N``) is used both ways, so results written here read back onto the same samples.
"""

from sitesight.formats.coco.fields import coco_image_ids
from sitesight.formats.coco.instances import load_coco, read_coco, write_coco
from sitesight.formats.coco.results import load_coco_results, read_coco_results, write_coco_results

__all__ = ["read_coco", "load_coco", "write_coco", "read_coco_results", "load_coco_results", "write_coco_results",
           "coco_image_ids"]
