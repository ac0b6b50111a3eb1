"""Recorded predictions (COCO results JSON) replayed as if a model produced them.

COCO results name images by ``image_id`` only, so the COCO file that lists the images
(``file_name``) is needed as well, unless the results file carries its own ``images``. Frames
are matched by `sitesight.identity.align_paths` (the one rule: longest shared path tail, unique on
both sides; an ambiguity is an error listing the candidates). Replay needs the frame's path, not its pixels:
`ReplayDetector.lookup` takes frame keys, and `sitesight.sliced.predict.detect_to_run` calls it instead
of decoding frames (boxes are stored as full-frame boxes, ``source == -1``).

Example:
    >>> from sitesight.predictors.replay import build_replay_detector
    >>> replay = build_replay_detector("results.json", "instances_val.json")  # doctest: +SKIP
    >>> replay.lookup(["/data/val/000123.jpg"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sitesight.detections import Detections
from sitesight.errors import InputError

__all__ = ["ReplayDetector", "build_replay_detector"]


@dataclass(frozen=True)
class ReplayDetector:
    """Recorded detections of the images of a COCO file, looked up by frame path.

    Attributes:
        paths: the images' paths (relative to ``root`` when relative).
        detections: one `Detections` per image.
        root: the folder relative image paths hang from.
        source: the results file (for messages).
        class_names: the class names of the recorded class ids (recorded into the run).
    """

    paths: Sequence[str]
    detections: Sequence[Detections]
    root: Path | None
    source: str
    class_names: tuple[str, ...] = ()

    def lookup(self, keys: Sequence[str]) -> list[Detections | None]:
        """The recorded detections of each frame key (a path); None where no image matches."""
        from sitesight.identity import align_paths

        sample = align_paths(list(keys), list(self.paths), gt_root=self.root, what="frame").sample
        return [None if i < 0 else self.detections[i] for i in sample.tolist()]

    def __call__(self, images: list[np.ndarray]) -> list[Detections]:
        raise InputError("replayed predictions are looked up by frame path: run them with `sitesight detect` "
                         "or `sitesight.sliced.predict.detect_to_run`, not on pixels", self.source)


def build_replay_detector(results_path: Path | str, images_path: Path | str | None = None, *, conf: float = 0.0) -> ReplayDetector:
    """Load COCO results into a `ReplayDetector`.

    Args:
        results_path: COCO results JSON (a list of ``{image_id, category_id, bbox, score}``), or a
            COCO file with ``images`` and scored ``annotations``.
        images_path: the COCO file naming the images; None when ``results_path`` has them.
        conf: results below this score are dropped.

    Raises:
        InputError: unreadable JSON, or image ids that the images file does not list.
    """
    from sitesight.formats.coco import read_coco, read_coco_results

    dataset = read_coco(images_path if images_path is not None else results_path)
    preds = read_coco_results(results_path, dataset)
    dets = [d[d.score >= conf].replace(attributes={k: v for k, v in d.attributes.items() if k != "source"}) for d in preds]
    return ReplayDetector([str(s.path) for s in dataset.samples], dets, dataset.root, str(results_path),
                          tuple(dataset.class_names))
