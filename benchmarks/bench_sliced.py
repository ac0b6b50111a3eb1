"""End-to-end sliced detection, sitesight vs SAHI 0.12.8 get_sliced_prediction, same model, CPU.

Model: torchvision ``fasterrcnn_mobilenet_v3_large_320_fpn`` (random weights, 4 classes, internal
resize to 640, score threshold 0.3) wrapped once as a sitesight detector callable; SAHI gets the
same callable through a minimal ``DetectionModel`` subclass (what a SAHI user writes for a custom
model). Frames: synthetic 1920x1080 JPEGs read from disk by both. Both use 640x640 slices, 0.2
overlap, a full-frame pass and GREEDYNMM/IOS@0.5; sitesight batches 8 slices per forward pass,
stores raw boxes as a run and then merges them.

    .venv/bin/python benchmarks/bench_sliced.py [--frames 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import sahi
    import torch
    from sahi.models.base import DetectionModel
    from sahi.predict import get_sliced_prediction
    from sahi.prediction import ObjectPrediction
    from sahi.utils.compatibility import fix_full_shape_list, fix_shift_amount_list
    from torchvision.models import detection

    from sitesight.border import MergeSpec, postprocess_run
    from sitesight.frames import list_frames
    from sitesight.predict import detect_to_run
    from sitesight.predictors.torchvision import wrap_torchvision_model
    from sitesight.store import load_run
    from sitesight.synth import write_site_dataset

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=4,
                                                             min_size=640, max_size=640)
    forward_seconds = [0.0]
    inner = wrap_torchvision_model(model, score_threshold=0.3)

    def detector(images):  # the same callable for both; times the model alone
        t = time.perf_counter()
        out = inner(images)
        forward_seconds[0] += time.perf_counter() - t
        return out

    class CallableModel(DetectionModel):
        def load_model(self) -> None:
            self.model = detector
            self.category_mapping = {str(i): str(i) for i in range(4)}

        def perform_inference(self, image: np.ndarray) -> None:
            self._original_predictions = self.model([image])

        def _create_object_prediction_list_from_original_predictions(self, shift_amount_list=[[0, 0]], full_shape_list=None):  # noqa: B006
            det = self._original_predictions[0]
            shift = fix_shift_amount_list(shift_amount_list)[0] if shift_amount_list else [0, 0]
            full = None if full_shape_list is None else fix_full_shape_list(full_shape_list)[0]
            self._object_prediction_list_per_image = [[
                ObjectPrediction(bbox=det.xyxy[i].tolist(), category_id=int(det.class_id[i]), category_name=str(det.class_id[i]),
                                 score=float(det.score[i]), shift_amount=shift, full_shape=full)
                for i in range(len(det))]]

    with tempfile.TemporaryDirectory() as tmp:
        dataset = write_site_dataset(Path(tmp) / "frames", n_frames=args.frames, seed=0)
        paths = [str(dataset.image_path(s)) for s in dataset]
        detector([np.zeros((640, 640, 3), np.uint8)])  # warm-up
        sahi_model = CallableModel(confidence_threshold=0.3, load_at_init=True)
        forward_seconds[0] = 0.0
        start = time.perf_counter()
        sahi_boxes = 0
        for path in paths:
            result = get_sliced_prediction(path, sahi_model, slice_height=640, slice_width=640, overlap_height_ratio=0.2,
                                           overlap_width_ratio=0.2, perform_standard_pred=True, postprocess_type="GREEDYNMM",
                                           postprocess_match_metric="IOS", postprocess_match_threshold=0.5, verbose=0)
            sahi_boxes += len(result.object_prediction_list)
        sahi_wall, sahi_model_s = time.perf_counter() - start, forward_seconds[0]

        forward_seconds[0] = 0.0
        start = time.perf_counter()
        summary = detect_to_run(list_frames(paths), detector, Path(tmp) / "run", model="bench", batch_size=8)
        run = load_run(Path(tmp) / "run")
        merged, _ = postprocess_run(run.raw, [f.image_wh for f in run.frames], run.parameters, conf=0.3,
                                    merge_spec=MergeSpec("greedy_nmm", "ios", 0.5), border=False)
        ours_wall, ours_model_s = time.perf_counter() - start, forward_seconds[0]
    n = len(paths)
    print(f"torch {torch.__version__}, sahi {sahi.__version__}, {torch.get_num_threads()} threads, {n} frames 1920x1080, "
          f"8 slices + full frame each")
    print(f"SAHI get_sliced_prediction: {n / sahi_wall:.3f} frames/s, wall {sahi_wall:.1f} s, model {sahi_model_s:.1f} s, "
          f"outside the model {100 * (1 - sahi_model_s / sahi_wall):.1f}%, {sahi_boxes} boxes")
    print(f"sitesight detect + merge:   {n / ours_wall:.3f} frames/s, wall {ours_wall:.1f} s, model {ours_model_s:.1f} s, "
          f"outside the model {100 * (1 - ours_model_s / ours_wall):.1f}%, {sum(map(len, merged))} boxes "
          f"({summary.boxes} raw stored)")
    print(f"speed-up: {sahi_wall / ours_wall:.2f}x")


if __name__ == "__main__":
    main()
