"""Demo steps for the data loop: synthetic frames, formats round trip, curation."""

from __future__ import annotations

from pathlib import Path

from sitesight.demo.context import DemoContext


def step_synth(ctx: DemoContext) -> None:
    """Generate synthetic site frames with ground truth and print dataset statistics."""
    from sitesight.synth import write_site_dataset

    ctx.dataset = write_site_dataset(ctx.out / "frames", n_frames=ctx.frames, seed=ctx.seed)
    counts = ctx.dataset.class_counts()
    ctx.console.print(
        f"  {len(ctx.dataset)} frames {ctx.dataset[0].image_wh[0]}x{ctx.dataset[0].image_wh[1]} in {ctx.out / 'frames'}; "
        + ", ".join(f"{k}: {v}" for k, v in counts.items())
    )
    ctx.results["synth"] = {"frames": len(ctx.dataset), "class_counts": counts}


def step_formats(ctx: DemoContext) -> None:
    """Write the synth frames' ground truth as CVAT XML and COCO, read both back, validate, check equality."""
    import numpy as np

    from sitesight.formats.coco import read_coco, write_coco
    from sitesight.formats.cvat import read_cvat, write_cvat
    from sitesight.validation import validate_dataset

    assert ctx.dataset is not None
    folder = Path(ctx.dataset.image_path(ctx.dataset[0])).parent
    xml = write_cvat(ctx.dataset, folder / "annotations.xml", task_name="sitesight demo")
    back = read_cvat(xml)
    coco = read_coco(write_coco(back, folder / "annotations.json"))
    worst = max((float(np.abs(a.gt.xyxy - b.gt.xyxy).max()) for a, b in zip(ctx.dataset, back, strict=True) if len(a.gt)),
                default=0.0)  # fmt: skip
    same = back.class_counts() == ctx.dataset.class_counts() == coco.class_counts()
    attrs = sorted(back.attribute_schema)
    errors = [i for i in validate_dataset(back) if i.severity == "error"]
    ctx.console.print(
        f"  CVAT XML {xml.name}: {len(back)} frames, {back.box_count()} boxes read back "
        f"(classes {'identical' if same else 'DIFFER'}, worst box error {worst:.3f} px, attributes {attrs}); "
        f"COCO twin agrees: {coco.box_count() == back.box_count()}; validate: {len(errors)} errors"
    )
    ctx.results["formats"] = {"cvat_xml": str(xml), "boxes": back.box_count(), "classes_identical": same,
                              "max_box_error_px": worst, "validation_errors": len(errors)}  # fmt: skip


def step_curation(ctx: DemoContext) -> None:
    """Dedup frozen frames, split by camera without leaks, package the test split as CVAT tasks."""
    import shutil
    from pathlib import Path

    from PIL import Image

    from sitesight.curation import captures_from_dataset, dedup_frames, package_cvat_tasks, split_dataset
    from sitesight.curation.captures import Capture

    assert ctx.dataset is not None, "the synth step runs first"
    out = ctx.out / "curation"
    out.mkdir(parents=True, exist_ok=True)
    captures = captures_from_dataset(ctx.dataset)
    # a frozen camera: the first frame again, a second later, with only the clock region differing
    first = captures[0]
    frozen = out / "frozen_repeat.jpg"
    shutil.copyfile(first.path, frozen)
    captures.append(Capture(path=frozen, camera_id=first.camera_id, timestamp=(first.timestamp or 0.0) + 1.0, index=len(captures)))
    # frames a camera export really contains: a file cut short by a full disk, and a GIF; listed as skipped, not fatal
    truncated, gif = out / "cut_short.jpg", out / "snapshot.gif"
    truncated.write_bytes(Path(first.path).read_bytes()[:2000])
    Image.open(first.path).convert("P").save(gif)
    for path in (truncated, gif):
        captures.append(Capture(path=path, camera_id=first.camera_id, timestamp=(first.timestamp or 0.0) + 2.0, index=len(captures)))
    dedup = dedup_frames(captures, ignore_regions=[(0.0, 0.0, 0.45, 0.07)])
    dedup.write_report(out / "dedup_report.csv")
    parts = split_dataset(ctx.dataset, fractions={"train": 0.75, "test": 0.25}, group_by=("camera",), seed=ctx.seed)
    tasks = package_cvat_tasks(parts["test"], out / "cvat_tasks", max_images=10)
    cams = {k: sorted({str(s.camera_id) for s in v.samples}) for k, v in parts.items()}
    ctx.console.print(
        f"  dedup: {dedup.summary()['kept']} kept, {dedup.summary()['dropped']} dropped (report {out / 'dedup_report.csv'}); "
        f"split by camera: train {cams['train']}, test {cams['test']}; {len(tasks)} CVAT task(s) in {out / 'cvat_tasks'}"
    )
    for path, reason in dedup.skipped:
        ctx.console.print(f"  skipped {Path(path).name}: {reason.removeprefix(f'{path}: ')}", markup=False, highlight=False)
    ctx.results["curation"] = {"dedup": dedup.summary(), "split_cameras": cams, "cvat_tasks": [str(t) for t in tasks]}
