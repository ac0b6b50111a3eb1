"""IoU-aware detection on torch: the IoU-aware RetinaNet, its training, its detector callable, and
the post-hoc IoU rescoring head for any detector's stored run.

Modules: `iou_aware` (model), `train` (training loop), `callable` (detector callable and
checkpoint loading), `iou_head` (RoI IoU head and its training), `rescore` (per-class alpha and
applying the head to a stored run).
"""

from __future__ import annotations

from sitesight.models import require_torch

require_torch()
