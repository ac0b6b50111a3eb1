"""Writers killed mid-write: never a partial file under a final name, no temporary file left behind.

Each writer runs in a subprocess that rewrites a large output in a loop; it is killed (SIGKILL, no
cleanup possible) at a random moment. Every file under a final name must then parse completely.
A rerun of the same writer removes the temporaries the killed process left (their names carry its
pid), and a SIGTERM to the CLI unwinds like Ctrl-C and leaves none at all.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest

PRELUDE = """
import sys, numpy as np
from pathlib import Path
from sitesight.dataset import Dataset, Sample
from sitesight.detections import Detections
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
def boxes(n):
    xy = rng.uniform(0, 1000, (n, 2)).astype(np.float32)
    return Detections(xyxy=np.c_[xy, xy + rng.uniform(1, 50, (n, 2))], score=rng.uniform(0, 1, n).astype(np.float32),
                      class_id=rng.integers(0, 2, n))
(out.parent / "img").mkdir(exist_ok=True)
from PIL import Image
for i in range(4):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(out.parent / "img" / f"{i}.png")
ds = Dataset(class_names=("person", "car"), root=out.parent / "img",
             samples=tuple(Sample(path=f"{i % 4}.png", image_wh=(1100, 1100), gt=boxes(N), image_id=i + 1) for i in range(20)))
print("ready", flush=True)
"""

WRITERS = {
    "coco": ("from sitesight.formats.coco import write_coco\nwhile True: write_coco(ds, out / 'annotations.json')", "annotations.json"),
    "cvat": ("from sitesight.formats.cvat import write_cvat\nwhile True: write_cvat(ds, out / 'annotations.xml')", "annotations.xml"),
    "coco_results": ("from sitesight.formats.coco import write_coco_results\n"
                     "while True: write_coco_results(ds, [s.gt for s in ds.samples], out / 'results.json')", "results.json"),
    "yolo": ("from sitesight.formats.yolo import write_yolo\nwhile True: write_yolo(ds, out, images='none')", "data.yaml"),
    "voc": ("from sitesight.formats.voc import write_voc\nwhile True: write_voc(ds, out, images='none')", "labelmap.txt"),
    "parquet": ("from sitesight.sliced.store import FrameRecord, open_run, write_shard\n"
                "open_run(out, [f'f{i}' for i in range(20)], model='m', parameters={}, versions={})\n"
                "while True: write_shard(out, [(FrameRecord(i, f'f{i}', (1100, 1100)), ds.samples[i].gt) for i in range(20)])", None),
    "zip": ("from sitesight.curation.packaging import package_cvat_tasks\n"
            "while True: package_cvat_tasks(ds, out, max_images=10, as_zip=True)", "part_001.zip"),
    "json_manifest": ("from sitesight.curation.mix import write_manifest\n"
                      "while True: write_manifest({'boxes': [s.gt.xyxy.tolist() for s in ds.samples]}, out / 'manifest.json')", "manifest.json"),
    "csv_history": ("from sitesight.models.train import write_history\n"
                    "while True: write_history(out, [{'epoch': i, 'loss': float(i)} for i in range(50_000)])", "history.csv"),
    "html": ("from sitesight import atomic\nfrom sitesight.report.html import render_report\n"
             "while True: atomic.write_text(out / 'report.html', render_report([], title='x' * 2_000_000))", "report.html"),
    "checkpoint": ("import torch\nfrom sitesight.models.checkpoint import save_checkpoint\nm = torch.nn.Linear(2000, 2000)\n"
                   "while True: save_checkpoint(out / 'best.safetensors', m, {'kind': 'classifier'})", "best.safetensors"),
}  # fmt: skip


def _check_complete(path: Path) -> None:
    """The file under its final name is whole: it parses to the end."""
    suffix = path.suffix
    if suffix == ".json":
        json.loads(path.read_text(encoding="utf-8"))
    elif suffix == ".xml":
        ElementTree.fromstring(path.read_bytes())
    elif suffix == ".yaml":
        import yaml

        assert "names" in yaml.safe_load(path.read_text(encoding="utf-8"))
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.read_table(path)
    elif suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            assert zf.testzip() is None
    elif suffix == ".csv":
        assert path.read_text().endswith("\n")
    elif suffix == ".html":
        assert path.read_text(encoding="utf-8").rstrip().endswith("</html>")
    elif suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as fh:
            assert list(fh.keys())
    elif suffix == ".txt":
        assert path.read_text(encoding="utf-8").endswith("\n")


def _finals(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".tmp-") and "img" not in p.parts]


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".tmp-*")]


def _run(name: str, out: Path, n_boxes: int, *, once: bool = False) -> subprocess.Popen:
    code = PRELUDE.replace("N)", f"{n_boxes})") + WRITERS[name][0]
    if once:  # one write, then a normal exit
        code = code.replace("while True: ", "")
    return subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(WRITERS))
def test_sigkill_leaves_no_partial_file(tmp_path, name):
    if name == "checkpoint":
        pytest.importorskip("torch")
    rng = random.Random(name)
    out = tmp_path / "out"
    kills = 0
    for attempt in range(2):
        proc = _run(name, out, 5_000)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(rng.uniform(0.2, 1.5) if attempt else rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        kills += 1
        for path in _finals(out):  # whatever lies under a final name is complete
            _check_complete(path)
    assert kills == 2
    # one complete write of the same writer sweeps the orphans (a looping writer killed right after a
    # write could already have begun its next temporary, so this one writes once and exits)
    final = WRITERS[name][1]
    proc = _run(name, out, 50, once=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    assert proc.wait(120) == 0, proc.stderr.read()
    if final is None:  # the run store sweeps its shard temporaries when the run is reopened
        from sitesight.sliced.store import open_run

        open_run(out, [f"f{i}" for i in range(20)], model="m", parameters={}, versions={})
    for path in _finals(out):
        _check_complete(path)
    leftover = [t for t in _temps(out) if final is None or final in t.name]
    assert not leftover, leftover


@pytest.mark.timeout(120)
def test_sigterm_to_the_cli_leaves_no_temporary(tmp_path):
    """`kill PID` (SIGTERM) on `sitesight data convert` mid-write: no temp, no partial file."""
    import numpy as np

    lines = ['<annotations><meta><task><labels><label><name>p</name></label></labels></task></meta>']
    rng = np.random.default_rng(0)
    for i in range(40):
        lines.append(f'<image id="{i}" name="{i}.jpg" width="2000" height="2000">')
        lines += [f'<box label="p" xtl="{x:.1f}" ytl="{y:.1f}" xbr="{x + 9:.1f}" ybr="{y + 9:.1f}"/>' for x, y in rng.uniform(0, 1900, (2500, 2))]
        lines.append("</image>")
    src = tmp_path / "big.xml"
    src.write_text("\n".join(lines + ["</annotations>"]))
    out = tmp_path / "out"
    for delay in (0.8, 1.6, 2.4):
        proc = subprocess.Popen([sys.executable, "-m", "sitesight", "data", "convert", str(src), str(out / "a.json"), "--to", "coco"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        assert not _temps(tmp_path), (delay, _temps(tmp_path))
        if (out / "a.json").exists():
            _check_complete(out / "a.json")
