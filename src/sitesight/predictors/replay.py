"""Recorded predictions (COCO results JSON) replayed as if a model produced them.

COCO results name images by ``image_id`` only, so the COCO file that lists the images
(``file_name``) is needed as well, unless the results file carries its own ``images``. Frames
are matched by resolved path, then by file name. Replay needs the frame's path, not its pixels:
`ReplayDetector.lookup` takes frame keys, and `sitesight.sliced.predict.detect_to_run` calls it instead
of decoding frames (boxes are stored as full-frame boxes, ``source == -1``).

Example:
    >>> from sitesight.predictors.replay import build_replay_detector
    >>> replay = build_replay_detector("results.json", "instances_val.json")  # doctest: +SKIP
    >>> replay.lookup(["/data/val/000123.jpg"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sitesight.detections import Detections
from sitesight.errors import InputError

__all__ = ["ReplayDetector", "build_replay_detector"]


@dataclass(frozen=True)
class ReplayDetector:
    """Recorded detections by resolved image path and by (unique) file name."""

    by_path: Mapping[str, Detections]
    by_name: Mapping[str, Detections]
    source: str

    def lookup(self, keys: Sequence[str]) -> list[Detections | None]:
        """The recorded detections of each frame key (a path); None where nothing matches."""
        out: list[Detections | None] = []
        for key in keys:
            det = self.by_path.get(str(Path(key).resolve()))
            out.append(det if det is not None else self.by_name.get(Path(key).name))
        return out

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
    by_path: dict[str, Detections] = {}
    names: dict[str, list[Detections]] = {}
    for sample, det in zip(dataset.samples, preds, strict=True):
        det = det[det.score >= conf]
        det = det.replace(attributes={k: v for k, v in det.attributes.items() if k != "source"})
        by_path[str(dataset.image_path(sample).resolve())] = det
        names.setdefault(Path(sample.path).name, []).append(det)
    by_name = {name: dets[0] for name, dets in names.items() if len(dets) == 1}
    return ReplayDetector(by_path, by_name, str(results_path))
