"""Sliced prediction + merge against SAHI 0.12.8's get_sliced_prediction with the same model."""

from __future__ import annotations

import numpy as np
import pytest

from sitesight.sliced.merge import merge
from sitesight.sliced.predict import predict_sliced

from .blobs import blob_detector, blob_image

sahi_predict = pytest.importorskip("sahi.predict")
from sahi.models.base import DetectionModel  # noqa: E402
from sahi.prediction import ObjectPrediction  # noqa: E402
from sahi.utils.compatibility import fix_full_shape_list, fix_shift_amount_list  # noqa: E402


class CallableModel(DetectionModel):
    """SAHI wrapper around a sitesight detector callable (what a SAHI user writes for a custom model)."""

    def load_model(self) -> None:
        self.model = blob_detector
        self.category_mapping = {"0": "a", "1": "b"}

    def perform_inference(self, image: np.ndarray) -> None:
        self._original_predictions = self.model([image])

    def _create_object_prediction_list_from_original_predictions(self, shift_amount_list=[[0, 0]], full_shape_list=None):  # noqa: B006
        det = self._original_predictions[0]
        shift = fix_shift_amount_list(shift_amount_list)[0] if shift_amount_list else [0, 0]
        full = None if full_shape_list is None else fix_full_shape_list(full_shape_list)[0]
        preds = [
            ObjectPrediction(bbox=det.xyxy[i].tolist(), category_id=int(det.class_id[i]),
                             category_name=str(det.class_id[i]), score=float(det.score[i]),
                             shift_amount=shift, full_shape=full)
            for i in range(len(det)) if det.score[i] > self.confidence_threshold
        ]
        self._object_prediction_list_per_image = [preds]


def _sorted_rows(xyxy, score, cls):
    rows = np.column_stack([np.asarray(xyxy, np.float64), np.asarray(score, np.float64), cls])
    return rows[np.lexsort(rows.T[::-1])]


@pytest.mark.parametrize("method,sahi_type", [("nms", "NMS"), ("greedy_nmm", "GREEDYNMM"), ("nmm", "NMM")])
@pytest.mark.parametrize("metric", ["iou", "ios"])
def test_sliced_prediction_matches_sahi(method, sahi_type, metric):
    rng = np.random.default_rng(7)
    model = CallableModel(confidence_threshold=0.0, load_at_init=True)
    for _ in range(1):
        image = blob_image(rng, (700, 500), 40)
        result = sahi_predict.get_sliced_prediction(
            image, model, slice_height=256, slice_width=256, overlap_height_ratio=0.2, overlap_width_ratio=0.2,
            perform_standard_pred=True, postprocess_type=sahi_type, postprocess_match_metric=metric.upper(),
            postprocess_match_threshold=0.5, verbose=0, force_postprocess_type=True,
        )
        expected = _sorted_rows(
            [p.bbox.to_xyxy() for p in result.object_prediction_list] or np.zeros((0, 4)),
            [p.score.value for p in result.object_prediction_list],
            [p.category.id for p in result.object_prediction_list],
        )
        raw = predict_sliced([image], blob_detector, slice_wh=(256, 256), overlap_ratio=(0.2, 0.2), batch_size=5)[0]
        ours = merge(raw, method=method, metric=metric, threshold=0.5)
        got = _sorted_rows(ours.xyxy, ours.score, ours.class_id)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4)
