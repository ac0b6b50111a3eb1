"""Resume after damage: a truncated shard is named, moved aside and its frames redone; a model is
its content (relative and absolute paths of the same weights are one model), not its path string."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sitesight.cli.main import main
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.sliced.frames import list_frames
from sitesight.sliced.predict import detect_to_run
from sitesight.sliced.store import load_run, model_identity


def _detector(images: list[np.ndarray]) -> list[Detections]:
    """Hand-written: one box per image whose score is the image's mean red / 255."""
    return [Detections(xyxy=[[1, 2, 30, 40]], score=[float(rgb[..., 0].mean()) / 255], class_id=[0]) for rgb in images]


@pytest.fixture
def frames(tmp_path: Path) -> list:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((48, 64, 3), 40 * (i + 1), np.uint8)).save(folder / f"f{i}.png")
    return list_frames([folder])


def _table(run_dir: Path) -> list[tuple[str, float]]:
    run = load_run(run_dir)
    return [(Path(f.key).name, round(float(d.score[0]), 6)) for f, d in zip(run.frames, run.raw, strict=True)]


def test_truncated_shard_is_named_moved_aside_and_redone(frames, tmp_path, capsys):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"weights")
    run_dir = tmp_path / "run"
    detect_to_run(frames, _detector, run_dir, model=f"yolo:{weights}", frames_per_shard=1, full_frame=False)
    expected = _table(run_dir)
    assert [name for name, _ in expected] == ["f0.png", "f1.png", "f2.png", "f3.png"]
    shards = sorted((run_dir / "shards").glob("shard-*.parquet"))
    victim = shards[2]
    cut = victim.read_bytes()[: victim.stat().st_size // 2]
    victim.write_bytes(cut)  # a copy cut short
    # reading names the shard in one line (no ArrowInvalid)
    code = main(["export", str(run_dir), "--coco", str(tmp_path / "preds.json"), "--classes", "p"])
    err = capsys.readouterr().err
    assert code == 1 and victim.name in err and "ArrowInvalid" not in err and len(err.strip().splitlines()) == 1, err
    # resume: the shard goes to RUN/corrupt/, its frame is redone, the rest is not
    summary = detect_to_run(frames, _detector, run_dir, model=f"yolo:{weights}", frames_per_shard=1, full_frame=False)
    assert summary.processed == 1 and summary.already_done == 3
    # the cut copy is kept aside; the redone frame's shard takes the same name (names hash the frame indices)
    assert (run_dir / "corrupt" / victim.name).read_bytes() == cut and victim.read_bytes() != cut
    assert _table(run_dir) == expected


def test_model_identity_is_content_not_path(frames, tmp_path, monkeypatch):
    weights = tmp_path / "models" / "best.pt"
    weights.parent.mkdir()
    weights.write_bytes(b"version 1")
    monkeypatch.chdir(tmp_path)
    assert model_identity("yolo:models/best.pt") == model_identity(f"yolo:{weights}")
    assert model_identity("yolo:models/best.pt") != model_identity("yolo:models/other.pt")  # not a file: the text
    run_dir = tmp_path / "run"
    detect_to_run(frames[:2], _detector, run_dir, model="yolo:models/best.pt", frames_per_shard=1, full_frame=False)
    # the same weights named by an absolute path resume the run
    summary = detect_to_run(frames[:2], _detector, run_dir, model=f"yolo:{weights}", frames_per_shard=1, full_frame=False)
    assert summary.already_done == 2 and summary.processed == 0
    # retrained weights at the same path are another model
    weights.write_bytes(b"version 2")
    with pytest.raises(InputError, match="different model"):
        detect_to_run(frames[:2], _detector, run_dir, model="yolo:models/best.pt", frames_per_shard=1, full_frame=False)
