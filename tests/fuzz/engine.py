"""Fuzz engine: mutated and hand-made hostile inputs fed to every reader, each under limits.

An input is ``(reader, seed, n)``: the reader's seed file (a real file from ../shared/data or a
small one built here) mutated by the ``n``-th draw of a seeded generator. A worker process (forked,
address space capped) builds the input in a scratch folder, calls the reader and reports one
outcome per input; the parent kills and replaces a worker that takes longer than the time limit.

Outcomes: ``ok`` (read, and every number in the result is finite), ``refused`` (the project's
`InputError`), ``crash`` (any other exception, or the worker died: the defect this finds),
``garbage`` (read, but a non-finite value got through), ``hang`` (over the time limit).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import re
import resource
import shutil
import struct
import tempfile
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
_SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # memory-backed scratch where there is one

HOSTILE_NUMBERS = [
    "nan", "NaN", "inf", "-inf", "Infinity", "-Infinity", "1e309", "-1e309", "1e-400", "-1", "-0", "0", "-99999",
    "99999999999", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "18446744073709551616",
    "9" * 5000, "1" * 4301, "3.5", "0x10", "1_000", "", " ", "abc", "1e5000", "4294967296", "2147483648",
]  # fmt: skip
HOSTILE_TEXT = [
    "../../x", "../../../../etc/passwd", "/etc/passwd", "/tmp/evil", "a\x00b", "C:\\windows\\x", "..", ".", "",
    "x" * 300, "y" * 100_000, "images/../../../z.jpg", "\u202e.gpj", "con", "a/b/c", "\\\\server\\share",
]  # fmt: skip


# -- seeds -------------------------------------------------------------------------------------------


def tiny_png(w: int = 8, h: int = 6) -> bytes:
    """A valid ``w x h`` RGB PNG, written by hand (no Pillow in the parent)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes((x * 30 + y) % 256 for x in range(3 * w)) for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


BUILTIN_CVAT = b"""<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version><meta><task><name>t</name><subset>train</subset>
<original_size><width>64</width><height>48</height></original_size>
<labels><label><name>person</name><type>rectangle</type><attributes><attribute><name>rope</name>
<input_type>select</input_type><default_value>correct</default_value><values>correct
wrong</values></attribute></attributes></label><label><name>car</name></label></labels></task></meta>
<image id="0" name="a.png" width="64" height="48" subset="train">
<box label="person" occluded="0" xtl="1.5" ytl="2" xbr="20.25" ybr="30" z_order="0"><attribute name="rope">wrong</attribute></box>
<box label="car" occluded="1" xtl="10" ytl="12" xbr="40" ybr="44" rotation="15"></box>
<polygon label="car" points="1,2;30,4;20,40" z_order="1"></polygon>
<mask label="person" rle="3, 4, 2, 6" left="5" top="6" width="3" height="5"></mask>
<ellipse label="car" cx="30" cy="20" rx="5" ry="4"></ellipse>
</image>
<image id="1" name="b.png" width="64" height="48"><tag label="car"></tag></image>
<track id="0" label="person"><box frame="0" outside="0" occluded="0" keyframe="1" xtl="3" ytl="4" xbr="9" ybr="12" z_order="0"></box></track>
</annotations>
"""
BUILTIN_COCO = json.dumps({
    "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}, {"id": 2, "file_name": "b.png", "width": 64, "height": 48}],
    "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1.5, 2, 18.75, 28], "area": 525.0, "iscrowd": 0,
         "attributes": {"occluded": False, "rope": "wrong", "rotation": 10}},
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [10, 12, 30, 32], "area": 960, "iscrowd": 1},
    ],
}, indent=1).encode()  # fmt: skip
BUILTIN_RESULTS = json.dumps([
    {"image_id": 1, "category_id": 1, "bbox": [1, 2, 18, 28], "score": 0.9},
    {"image_id": 2, "category_id": 2, "bbox": [10, 12, 30, 32], "score": 0.4, "iou_pred": 0.5, "attributes": {"rope": "ok"}},
]).encode()  # fmt: skip
BUILTIN_VOC = b"""<annotation><folder>JPEGImages</folder><filename>a.png</filename>
<size><width>64</width><height>48</height><depth>3</depth></size>
<object><name>person</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>
<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>20</xmax><ymax>30</ymax></bndbox></object>
<object><name>car</name><difficult>1</difficult><bndbox><xmin>10.5</xmin><ymin>12</ymin><xmax>40</xmax><ymax>44</ymax></bndbox></object>
</annotation>
"""
BUILTIN_YAML = b"path: .\ntrain: images/train\nval: images/val\nnames:\n  0: person\n  1: car\n"
BUILTIN_LABELS = b"0 0.5 0.5 0.25 0.5\n1 0.1 0.2 0.05 0.1 0.75\n0 0.1 0.1 0.2 0.1 0.3 0.3\n"
BUILTIN_CLS_CSV = b"image,label,person,car\na.png,person,0.9,0.1\nb.png,car,0.2,0.8\nc.png,car,0.4,0.6\n"
BUILTIN_ANOMALY_CSV = b"image,label,score\na.png,normal,0.1\nb.png,anomalous,0.9\nc.png,good,0.3\nd.png,defect,0.7\n"
BUILTIN_EXCLUSIONS = b"image,timestamp\na.png,12.5\nb.png,13\n"


PAIR = b"\n\x00PAIR\x00\n"  # ground truth + PAIR + results, in one seed


def _split_pair(data: bytes) -> tuple[bytes, bytes]:
    gt, sep, results = data.partition(PAIR)
    return (gt, results) if sep else (BUILTIN_COCO, data)


def _shared(*parts: str) -> bytes | None:
    path = SHARED_DATA.joinpath(*parts)
    try:
        return path.read_bytes() if path.is_file() and path.stat().st_size < 200_000 else None
    except OSError:
        return None


def seeds(builtin: bool = True, shared: bool = True) -> dict[str, list[bytes]]:
    """Seed files per reader: the built-in ones and/or small real files from ../shared/data (when present)."""
    out = {
        "cvat": [BUILTIN_CVAT], "coco": [BUILTIN_COCO], "coco_results": [BUILTIN_RESULTS], "eval_gt": [BUILTIN_COCO],
        "eval_results": [BUILTIN_RESULTS], "voc": [BUILTIN_VOC], "yolo_yaml": [BUILTIN_YAML], "yolo_labels": [BUILTIN_LABELS],
        "cls_csv": [BUILTIN_CLS_CSV], "anomaly_csv": [BUILTIN_ANOMALY_CSV], "manifest": [], "shard": [], "image": [tiny_png()],
        "exclusions": [BUILTIN_EXCLUSIONS], "checkpoint_meta": [b'{"kind": "classifier", "class_names": ["a", "b"], "backbone": "resnet18"}'],
    }  # fmt: skip
    if not builtin:
        out = {reader: [] for reader in out}
    if shared and SHARED_DATA.is_dir():
        extra = {
            "cvat": [("cvat", "points_desc_ids", "annotations.xml"), ("cvat", "polyline_with_images", "annotations.xml"),
                     ("cvat", "datumaro_cvat_dataset", "for_images", "export_project", "annotations.xml"),
                     ("cvat", "datumaro_cvat_dataset", "for_video", "annotations.xml"), ("cvat", "job_masks", "annotations_HEAD.xml"),
                     ("cvat", "empty_project", "annotations.xml")],
            "coco": [("coco", "datumaro_coco_dataset", "coco_instances", "annotations", "instances_val.json"),
                     ("images", "terrain2_coco.json"), ("cvat", "points_desc_ids", "annotations.json")],
            "eval_gt": [("images", "terrain2_coco.json"), ("cvat", "points_desc_ids", "annotations.json")],
            "voc": [("voc", "hardhat_voc", "dataset", "annotations", f"hard_hat_workers{i}.xml") for i in (0, 1, 22, 126)],
            "yolo_yaml": [("yolo", "helmet_roboflow", "data.yaml"), ("yolo", "helmet_roboflow", "helmet detection.v3i.yolov5pytorch", "data.yaml")],
            "image": [("images", "zidane.jpg")],
        }  # fmt: skip
        for reader, paths in extra.items():
            out[reader] += [data for p in paths if (data := _shared(*p)) is not None]
        gt, results = _shared("coco", "sahi_visdrone_eval", "dataset.json"), _shared("coco", "sahi_visdrone_eval", "result.json")
        if gt and results:  # a results file only means something next to its ground truth
            out["coco_results"].append(gt + PAIR + results)
            out["eval_results"].append(gt + PAIR + results)
        for folder in ("coco8", "helmet_roboflow"):
            root = SHARED_DATA / "yolo" / folder
            if root.is_dir():
                out["yolo_labels"] += [p.read_bytes() for p in sorted(root.rglob("*.txt"))[:4] if "labels" in p.parts]
    return out


# -- mutations ---------------------------------------------------------------------------------------

_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_STRING_VALUE = re.compile(rb'(?:name|file_name|subset|filename|label|folder|category_name)(?:"\s*:\s*"|=")([^"<]*)"')


def _replace_numbers(data: bytes, rng: random.Random) -> bytes:
    spots = [m.span() for m in _NUMBER.finditer(data[:200_000])]
    if not spots:
        return data
    for _ in range(rng.randint(1, 3)):
        a, b = rng.choice(spots)
        value = rng.choice(HOSTILE_NUMBERS).encode()
        data = data[:a] + value + data[b:]
        spots = [m.span() for m in _NUMBER.finditer(data[:200_000])] or [(a, a)]
    return data


def _replace_strings(data: bytes, rng: random.Random) -> bytes:
    spots = [m.span(1) for m in _STRING_VALUE.finditer(data[:200_000])]
    if not spots:
        return data
    a, b = rng.choice(spots)
    value = rng.choice(HOSTILE_TEXT).encode("utf-8", "surrogatepass").replace(b'"', b"")
    return data[:a] + value + data[b:]


def _bytes_noise(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if not buf:
            buf.extend(rng.randbytes(4))
            continue
        op, i = rng.randrange(4), rng.randrange(len(buf))
        if op == 0:
            buf[i] = rng.randrange(256)
        elif op == 1:
            del buf[i : i + rng.randint(1, 16)]
        elif op == 2:
            buf[i:i] = rng.choice([b"<", b">", b'"', b"{", b"[", b"]", b",", b":", b"\n", b"\x00", b"&", b";", b"-", b"e9"])
        else:
            j = rng.randrange(len(buf))
            buf[i:i] = buf[j : j + rng.randint(1, 64)]
    return bytes(buf)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _json_structural(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        depth = rng.choice([50, 999, 1_500, 100_000])
        return b"[" * depth + b"1" + b"]" * depth
    if kind == 1:
        depth = rng.choice([999, 5_000])
        return b'{"images": ' + b"[" * depth + b"]" * depth + b', "categories": [], "annotations": []}'
    if kind == 2:  # a large number where an id is expected
        return data.replace(b'"id": 1', b'"id": ' + rng.choice(HOSTILE_NUMBERS).encode(), 1)
    if kind == 3:
        return data.replace(b'"width": 64', b'"width": -64', 1).replace(b'"width":', b'"width": -', 1)
    if kind == 4:
        return data.replace(b'"score": 0.9', b'"score": NaN', 1).replace(b'"score":', b'"score": Infinity, "x":', 1)
    return data.replace(b"[1", b'["' + b"f" * rng.choice([10, 200_000]) + b'"', 1)


def _xml_structural(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]><annotations>&b;</annotations>'
    if kind == 1:
        depth = rng.choice([100, 5_000, 200_000])
        return b"<annotations>" + b"<a>" * depth + b"</a>" * depth + b"</annotations>"
    if kind == 2:
        return b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><annotations/>'
    if kind == 3:  # duplicate the boxes many times
        return data.replace(b"</image>", b'<box label="zz" xtl="1" ytl="1" xbr="nan" ybr="2"/></image>', 1)
    return data.replace(b'width="64"', b'width="' + rng.choice(HOSTILE_NUMBERS).encode() + b'"', 1)


def _yaml_structural(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:  # billion laughs with aliases
        lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
        for i in range(1, 12):
            prev = chr(ord("a") + i - 1)
            lines.append(f"{chr(ord('a') + i)}: &{chr(ord('a') + i)} [" + ",".join([f"*{prev}"] * 9) + "]")
        lines.append("names: *l")
        return "\n".join(lines).encode()
    if kind == 1:
        return b"names:\n  0: a\n  0: b\n  1: a\n"
    if kind == 2:
        return b"names: {0: a, " + rng.choice(HOSTILE_NUMBERS).encode() + b": b}\n"
    if kind == 3:
        return b"names: [a, a, b]\ntrain: " + rng.choice(HOSTILE_TEXT).encode("utf-8", "surrogatepass") + b"\n"
    return b"path: " + rng.choice(HOSTILE_TEXT).encode("utf-8", "surrogatepass") + b"\nnames: [a]\n"


def _labels_structural(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return rng.choice(HOSTILE_NUMBERS).encode() + b" 0.5 0.5 0.1 0.1\n"
    if kind == 1:
        return b"0 " + b" ".join(rng.choice(HOSTILE_NUMBERS).encode() for _ in range(4)) + b"\n"
    if kind == 2:
        return b"0 " + b"0.5 " * rng.choice([3, 7, 100_001]) + b"\n"
    return b"0 0.5 0.5 -0.1 0.2\n1 1.5 0.5 0.1 0.1\n"


def _csv_structural(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    lines = data.split(b"\n")
    if kind == 0 and len(lines) > 1:
        cells = lines[1].split(b",")
        cells[rng.randrange(len(cells))] = rng.choice(HOSTILE_NUMBERS + ["x" * 200_000]).encode()
        lines[1] = b",".join(cells)
        return b"\n".join(lines)
    if kind == 1:
        return data + b'"' + b"q" * 300_000 + b"\n"
    if kind == 2:
        return lines[0] + b"\n" + b",".join([b"1"] * 50) + b"\n"
    return data.replace(b"label", b"label,label", 1)


STRUCTURAL: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "cvat": _xml_structural, "voc": _xml_structural, "coco": _json_structural, "coco_results": _json_structural,
    "eval_gt": _json_structural, "eval_results": _json_structural, "manifest": _json_structural,
    "checkpoint_meta": _json_structural, "yolo_yaml": _yaml_structural, "yolo_labels": _labels_structural,
    "cls_csv": _csv_structural, "anomaly_csv": _csv_structural, "exclusions": _csv_structural,
}  # fmt: skip


def mutate(reader: str, seed: bytes, rng: random.Random) -> bytes:
    """One mutation of ``seed`` (mostly one change; sometimes several stacked)."""
    ops = [_replace_numbers, _replace_numbers, _replace_strings, _bytes_noise, _truncate]
    if reader in STRUCTURAL:
        ops += [STRUCTURAL[reader]] * 2
    data = seed
    for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 4)):
        data = rng.choice(ops)(data, rng)
    return data


# -- readers -----------------------------------------------------------------------------------------


def _finite_dataset(dataset) -> str | None:
    """The first non-finite or impossible value in a `Dataset`, or None."""
    for i, sample in enumerate(dataset.samples):
        w, h = sample.image_wh
        if not (isinstance(w, (int, np.integer)) and isinstance(h, (int, np.integer)) and w >= 0 and h >= 0):
            return f"sample {i}: image_wh {sample.image_wh!r}"
        bad = _finite_detections(sample.gt)
        if bad:
            return f"sample {i}: {bad}"
    return None


def _finite_detections(det) -> str | None:
    if not np.isfinite(det.xyxy).all():
        return "non-finite box"
    if not np.isfinite(det.score).all():
        return "non-finite score"
    for key, column in det.attributes.items():
        column = np.asarray(column)
        # NaN is the documented "absent on this box" marker of optional numeric fields (COCO area,
        # numeric extra keys present on some boxes only); readers refuse a NaN written in a file.
        if column.dtype.kind == "f" and np.isinf(column).any():
            return f"infinite attribute {key}"
    return None


def _gt_dataset(folder: Path, gt: bytes):
    from sitesight.formats.coco import load_coco

    (folder / "gt.json").write_bytes(gt)
    return load_coco(folder / "gt.json").dataset


def _read_cvat(folder: Path, data: bytes) -> str | None:
    from sitesight.formats.cvat import load_cvat

    (folder / "annotations.xml").write_bytes(data)
    return _finite_dataset(load_cvat(folder / "annotations.xml").dataset)


def _read_coco(folder: Path, data: bytes) -> str | None:
    from sitesight.formats.coco import load_coco

    (folder / "annotations.json").write_bytes(data)
    return _finite_dataset(load_coco(folder / "annotations.json").dataset)


_GT_CACHE: dict[str, object] = {}


def _read_coco_results(folder: Path, data: bytes) -> str | None:
    from sitesight.formats.coco import read_coco_results

    gt, data = _split_pair(data)
    if gt not in _GT_CACHE:
        try:
            _GT_CACHE[gt] = _gt_dataset(folder, gt)
        except Exception:  # noqa: BLE001 - a mutated ground truth: fall back to the built-in one
            _GT_CACHE[gt] = _GT_CACHE.get(BUILTIN_COCO) or _gt_dataset(folder, BUILTIN_COCO)
    (folder / "results.json").write_bytes(data)
    for det in read_coco_results(folder / "results.json", _GT_CACHE[gt]):  # type: ignore[arg-type]
        if bad := _finite_detections(det):
            return bad
    return None


def _read_eval_gt(folder: Path, data: bytes) -> str | None:
    from sitesight.evaluation.coco_files import load_coco_gt

    (folder / "gt.json").write_bytes(data)
    gt = load_coco_gt(folder / "gt.json")
    return _finite_table(gt.table) or (None if np.isfinite(gt.image_wh).all() else "non-finite image size")


def _finite_table(table) -> str | None:
    for name in ("xyxy", "score", "area", "range_area"):
        values = getattr(table, name, None)
        if values is not None and np.asarray(values).dtype.kind == "f" and not np.isfinite(values).all():
            return f"non-finite {name}"
    return None


def _read_eval_results(folder: Path, data: bytes) -> str | None:
    from sitesight.evaluation.coco_files import load_coco_gt, load_coco_results

    gt, data = _split_pair(data)
    (folder / "gt.json").write_bytes(gt)
    (folder / "results.json").write_bytes(data)
    return _finite_table(load_coco_results(folder / "results.json", load_coco_gt(folder / "gt.json")))


def _read_voc(folder: Path, data: bytes) -> str | None:
    from sitesight.formats.voc import load_voc

    (folder / "Annotations").mkdir()
    (folder / "JPEGImages").mkdir()
    (folder / "Annotations" / "a.xml").write_bytes(data)
    (folder / "JPEGImages" / "a.png").write_bytes(tiny_png())
    return _finite_dataset(load_voc(folder).dataset)


def _yolo_tree(folder: Path, yaml: bytes, labels: bytes) -> None:
    for split in ("train", "val"):
        (folder / "images" / split).mkdir(parents=True)
        (folder / "labels" / split).mkdir(parents=True)
        (folder / "images" / split / "a.png").write_bytes(tiny_png())
        (folder / "labels" / split / "a.txt").write_bytes(labels if split == "train" else BUILTIN_LABELS)
    (folder / "data.yaml").write_bytes(yaml)


def _read_yolo_yaml(folder: Path, data: bytes) -> str | None:
    from sitesight.formats.yolo import load_yolo

    _yolo_tree(folder, data, BUILTIN_LABELS)
    return _finite_dataset(load_yolo(folder).dataset)


def _read_yolo_labels(folder: Path, data: bytes) -> str | None:
    from sitesight.formats.yolo import load_yolo

    _yolo_tree(folder, BUILTIN_YAML, data)
    return _finite_dataset(load_yolo(folder).dataset)


def _read_cls_csv(folder: Path, data: bytes) -> str | None:
    from sitesight.evaluation.inputs import evaluate_cls_csv

    (folder / "p.csv").write_bytes(data)
    result = evaluate_cls_csv(folder / "p.csv")
    return _finite_metrics(result)


def _finite_metrics(result) -> str | None:
    import dataclasses

    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and np.isinf(value).any():
            return f"infinite {f.name}"
    return None


def _read_anomaly_csv(folder: Path, data: bytes) -> str | None:
    from sitesight.evaluation.inputs import evaluate_anomaly_csv

    (folder / "p.csv").write_bytes(data)
    return _finite_metrics(evaluate_anomaly_csv(folder / "p.csv"))


def _read_exclusions(folder: Path, data: bytes) -> str | None:
    from sitesight.curation.sampling import read_exclusions

    (folder / "e.csv").write_bytes(data)
    _, times = read_exclusions(folder / "e.csv")
    return None if all(np.isfinite(t) for t in times) else "non-finite timestamp"


def _run_seed() -> tuple[bytes, bytes]:
    """A real run (manifest + one shard), written once per worker by the store itself."""
    if "run" not in _GT_CACHE:
        from sitesight.detections import Detections
        from sitesight.sliced.store import FrameRecord, open_run, write_shard

        folder = Path(tempfile.mkdtemp(prefix="fuzz-run-"))
        open_run(folder, ["a.png", "b.png"], model="m", parameters={"conf": 0.25}, versions={"sitesight": "0"})
        det = Detections(xyxy=np.array([[1, 2, 10, 20]], np.float32), score=np.array([0.5], np.float32), class_id=np.array([0]))
        shard = write_shard(folder, [(FrameRecord(0, "a.png", (64, 48)), det)])
        _GT_CACHE["run"] = ((folder / "manifest.json").read_bytes(), shard.read_bytes())
    return _GT_CACHE["run"]  # type: ignore[return-value]


def _read_manifest(folder: Path, data: bytes) -> str | None:
    from sitesight.sliced.store import load_run

    _, shard = _run_seed()
    (folder / "shards").mkdir()
    (folder / "manifest.json").write_bytes(data)
    (folder / "shards" / "shard-000000000-aaaaaaaa.parquet").write_bytes(shard)
    return _finite_run(load_run(folder))


def _finite_run(run) -> str | None:
    for det in getattr(run, "raw", ()) or ():
        if bad := _finite_detections(det):
            return bad
    return None


def _read_shard(folder: Path, data: bytes) -> str | None:
    from sitesight.sliced.store import load_run

    manifest, _ = _run_seed()
    (folder / "shards").mkdir()
    (folder / "manifest.json").write_bytes(manifest)
    (folder / "shards" / "shard-000000000-aaaaaaaa.parquet").write_bytes(data)
    return _finite_run(load_run(folder))


def _read_image(folder: Path, data: bytes) -> str | None:
    from sitesight.images import read_image_rgb, read_image_wh

    (folder / "a.png").write_bytes(data)
    w, h = read_image_wh(folder / "a.png")
    pixels = read_image_rgb(folder / "a.png")
    if pixels.shape[:2] != (h, w):
        return f"decoded {pixels.shape} for header {w}x{h}"
    return None


def _read_checkpoint_meta(folder: Path, data: bytes) -> str | None:
    from sitesight.models.checkpoint import read_checkpoint_config

    header = json.dumps({"__metadata__": {"sitesight": data.decode("utf-8", "replace")}}).encode()
    (folder / "m.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    read_checkpoint_config(folder / "m.safetensors")
    return None


READERS: dict[str, Callable[[Path, bytes], str | None]] = {
    "cvat": _read_cvat, "coco": _read_coco, "coco_results": _read_coco_results, "eval_gt": _read_eval_gt,
    "eval_results": _read_eval_results, "voc": _read_voc, "yolo_yaml": _read_yolo_yaml, "yolo_labels": _read_yolo_labels,
    "cls_csv": _read_cls_csv, "anomaly_csv": _read_anomaly_csv, "exclusions": _read_exclusions, "manifest": _read_manifest,
    "shard": _read_shard, "image": _read_image, "checkpoint_meta": _read_checkpoint_meta,
}  # fmt: skip


# -- running -----------------------------------------------------------------------------------------


@dataclass
class Report:
    """Counts per outcome and per reader, plus the first few failures to look at."""

    counts: Counter = field(default_factory=Counter)
    per_reader: dict[str, Counter] = field(default_factory=dict)
    failures: list[tuple[str, str, int, str]] = field(default_factory=list)
    slowest: float = 0.0
    seconds: float = 0.0

    def add(self, reader: str, seed_index: int, n: int, outcome: str, detail: str, seconds: float) -> None:
        self.counts[outcome] += 1
        self.per_reader.setdefault(reader, Counter())[outcome] += 1
        self.slowest = max(self.slowest, seconds)
        if outcome in ("crash", "garbage", "hang") and len(self.failures) < 50:
            self.failures.append((reader, outcome, n, detail[:400]))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def bad(self) -> int:
        return self.counts["crash"] + self.counts["garbage"] + self.counts["hang"]


def make_input(reader: str, seed_list: list[bytes], n: int, base_seed: int) -> bytes:
    rng = random.Random(f"{base_seed}:{reader}:{n}")
    seed = seed_list[n % len(seed_list)]
    return seed if n < len(seed_list) else mutate(reader, seed, rng)


def run_one(reader: str, data: bytes) -> tuple[str, str]:
    """Call one reader on one input in this process; ``(outcome, detail)``."""
    from sitesight.errors import InputError

    folder = Path(tempfile.mkdtemp(prefix="fuzz-", dir=_SCRATCH))
    try:
        bad = READERS[reader](folder, data)
        return ("garbage", bad) if bad else ("ok", "")
    except InputError as exc:
        message = str(exc)
        if len(message) > 2000:
            return "crash", f"message of {len(message)} characters"
        return "refused", message[:200]
    except Exception as exc:  # noqa: BLE001 - the point: any other exception is the defect counted
        tb = traceback.extract_tb(exc.__traceback__)
        where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb) if "sitesight" in f.filename), "?")
        return "crash", f"{type(exc).__name__} at {where}: {str(exc)[:200]}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _vm_size() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _preload(readers: list[str]) -> None:
    """Import what the readers import, so the memory cap measures the inputs, not the libraries."""
    import sitesight.evaluation.coco_files  # noqa: F401
    import sitesight.evaluation.inputs  # noqa: F401
    import sitesight.formats.coco  # noqa: F401
    import sitesight.formats.cvat  # noqa: F401
    import sitesight.formats.voc  # noqa: F401
    import sitesight.formats.yolo  # noqa: F401
    import sitesight.images  # noqa: F401
    import sitesight.sliced.store  # noqa: F401

    if "checkpoint_meta" in readers:
        import sitesight.models.checkpoint  # noqa: F401


def _worker(conn, seed_lists: dict[str, list[bytes]], base_seed: int, memory_bytes: int, readers: list[str]) -> None:
    _preload(readers)
    if "manifest" in seed_lists:  # run seeds are written by the store itself, here
        seed_lists = {**seed_lists, **dict(zip(("manifest", "shard"), ([data] for data in _run_seed()), strict=True))}
    if memory_bytes and _vm_size():
        try:
            resource.setrlimit(resource.RLIMIT_AS, (_vm_size() + memory_bytes, resource.RLIM_INFINITY))
        except (ValueError, OSError):
            pass
    conn.send("ready")  # start-up (imports, run seeds) is not part of any input's time
    while True:
        task = conn.recv()
        if task is None:
            return
        reader, n = task
        start = time.perf_counter()
        outcome, detail = run_one(reader, make_input(reader, seed_lists[reader], n, base_seed))
        conn.send((outcome, detail, time.perf_counter() - start))


def _tasks(readers: list[str], total: int, seed_lists: dict[str, list[bytes]]) -> Iterator[tuple[str, int]]:
    active = [r for r in readers if seed_lists.get(r)]
    for i in range(total):
        yield active[i % len(active)], i // len(active)


def campaign(
    total: int,
    *,
    readers: list[str] | None = None,
    base_seed: int = 0,
    time_limit: float = 10.0,
    memory_bytes: int = 2 << 30,
    builtin: bool = True,
    shared: bool = True,
    progress: Callable[[Report], None] | None = None,
) -> Report:
    """Feed ``total`` inputs, round-robin over ``readers`` with seeds, through one worker process at a time.

    Args:
        total: inputs to feed.
        readers: names from `READERS` (default: all).
        base_seed: the generator seed; the same seed feeds the same inputs.
        time_limit: seconds per input before the worker is killed (a "hang").
        memory_bytes: address space an input may add to the worker (over it: MemoryError, a "crash").
        builtin, shared: seed from the built-in files and/or the real files in ../shared/data.
        progress: called with the report every 1,000 inputs.
    """
    seed_lists = seeds(builtin, shared)
    if builtin:  # run seeds are written by the store itself, in the worker: placeholders here
        seed_lists["manifest"] = seed_lists["shard"] = [b""]
    else:
        seed_lists.pop("manifest", None)
        seed_lists.pop("shard", None)
    readers = readers or list(READERS)
    report = Report()
    ctx = mp.get_context("fork")
    proc = conn = None
    started = time.perf_counter()

    def start() -> tuple:
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_worker, args=(child, seed_lists, base_seed, memory_bytes, readers), daemon=True)
        p.start()
        child.close()
        if not parent.poll(300) or parent.recv() != "ready":
            raise RuntimeError("fuzz worker did not start")
        return p, parent

    try:
        for k, (reader, n) in enumerate(_tasks(readers, total, seed_lists)):
            if proc is None:
                proc, conn = start()
            conn.send((reader, n))
            if conn.poll(time_limit):
                try:
                    outcome, detail, seconds = conn.recv()
                except EOFError:
                    outcome, detail, seconds = "crash", f"worker died (exit {proc.join(1) or proc.exitcode})", 0.0
                    proc = None
            else:
                outcome, detail, seconds = "hang", f"over {time_limit:g} s", time_limit
                proc.kill()
                proc.join()
                proc = None
            if proc is not None and not proc.is_alive():
                proc = None
            if n < len(seed_lists[reader]) and outcome not in ("ok", "hang"):
                outcome, detail = "crash", f"unmodified seed not read: {detail}"  # seeds are valid files
            report.add(reader, 0, n, outcome, detail, seconds)
            if progress and k % 1000 == 999:
                progress(report)
    finally:
        if proc is not None:
            conn.send(None)
            proc.join(5)
            if proc.is_alive():
                proc.kill()
    report.seconds = time.perf_counter() - started
    return report


def main_counts(report: Report) -> str:
    lines = [f"{report.total} inputs in {report.seconds:.1f} s; slowest {report.slowest:.2f} s; " + ", ".join(
        f"{k} {report.counts[k]}" for k in ("ok", "refused", "crash", "hang", "garbage"))]  # fmt: skip
    for reader, counts in sorted(report.per_reader.items()):
        lines.append(f"  {reader:16s} " + ", ".join(f"{k} {counts[k]}" for k in ("ok", "refused", "crash", "hang", "garbage")))
    for failure in report.failures[:30]:
        lines.append(f"  ! {failure}")
    return "\n".join(lines)


if __name__ == "__main__":  # quick look: python tests/fuzz/engine.py 2000
    import sys

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(main_counts(campaign(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)))
