"""Write a `Dataset` as a CVAT for images 1.1 task export that CVAT imports back.

The ``<meta><task>`` block declares every class (``rectangle``), every image tag (``tag``) and, per
label, the attributes of the schema that apply to it (`AttributeSpec.labels`, empty = all labels).
Boxes are written with two decimals, as CVAT does. The per-box extras ``cvat_occluded``,
``cvat_z_order`` and ``cvat_source`` become the shape's ``occluded``, ``z_order`` and ``source``;
a schema attribute whose value is ``None`` is left out (CVAT then uses the default).

Image names: a relative sample path is written as it is, minus a leading ``images/`` (and the
sample's subset folder after it), the layout CVAT's own export uses; an absolute path is written
as its file name only.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path, PurePosixPath
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from sitesight import atomic
from sitesight.dataset import AttributeSpec, Dataset, Sample

__all__ = ["write_cvat", "cvat_image_name"]


def cvat_image_name(sample: Sample) -> str:
    """The ``name`` written for a sample's ``<image>`` (see the module docstring)."""
    path = Path(sample.path)
    if path.is_absolute():
        return path.name
    parts = list(PurePosixPath(path.as_posix()).parts)
    if len(parts) > 1 and parts[0] == "images":
        parts = parts[1:]
        if len(parts) > 1 and sample.subset and parts[0] == sample.subset:
            parts = parts[1:]
    return "/".join(parts)


def _meta(dataset: Dataset, task_name: str, tag_names: list[str], timestamps: bool = False) -> list[str]:
    # Creation times only when asked: the same dataset must give the same bytes (synth, tests, diffs).
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(sep=" ") if timestamps else ""
    n = len(dataset)
    lines = [
        "  <meta>", "    <task>", "      <id>0</id>", f"      <name>{escape(task_name)}</name>",
        f"      <size>{n}</size>", "      <mode>annotation</mode>", "      <overlap>0</overlap>",
        "      <bugtracker></bugtracker>", f"      <created>{now}</created>", f"      <updated>{now}</updated>",
        "      <subset>default</subset>", "      <start_frame>0</start_frame>",
        f"      <stop_frame>{max(n - 1, 0)}</stop_frame>", "      <frame_filter></frame_filter>", "      <labels>",
    ]  # fmt: skip
    for name, kind in [(c, "rectangle") for c in dataset.class_names] + [(t, "tag") for t in tag_names]:
        lines += ["        <label>", f"          <name>{escape(name)}</name>", f"          <type>{kind}</type>",
                  "          <attributes>"]  # fmt: skip
        for spec in _specs_for(dataset, name) if kind == "rectangle" else []:
            default = spec.default if spec.default is not None else (spec.values[0] if spec.values else "")
            lines += [
                "            <attribute>", f"              <name>{escape(spec.name)}</name>",
                "              <mutable>False</mutable>", f"              <input_type>{spec.input_type}</input_type>",
                f"              <default_value>{escape(default)}</default_value>",
                f"              <values>{escape(chr(10).join(spec.values))}</values>", "            </attribute>",
            ]  # fmt: skip
        lines += ["          </attributes>", "        </label>"]
    lines += ["      </labels>", "    </task>", f"    <dumped>{now}</dumped>", "  </meta>"]
    return lines


def _specs_for(dataset: Dataset, label: str) -> list[AttributeSpec]:
    """The attributes ``label`` declares, each as declared for that label (`AttributeSpec.for_label`)."""
    return [s.for_label(label) for s in dataset.attribute_schema.values() if not s.labels or label in s.labels]


def _image_lines(dataset: Dataset, index: int, sample: Sample, label_specs: dict[str, list[AttributeSpec]]) -> list[str]:
    gt = sample.gt
    w, h = sample.image_wh
    image_id = sample.image_id if sample.image_id is not None else index
    subset = f" subset={quoteattr(sample.subset)}" if sample.subset else ""
    lines = [f'  <image id="{image_id}" name={quoteattr(cvat_image_name(sample))}{subset} width="{w}" height="{h}">']
    attrs = gt.attributes
    occluded = np.asarray(attrs["cvat_occluded"], bool) if "cvat_occluded" in attrs else np.zeros(len(gt), bool)
    z_order = attrs.get("cvat_z_order")
    source = attrs.get("cvat_source")
    for i in range(len(gt)):
        label = dataset.class_names[int(gt.class_id[i])]
        x1, y1, x2, y2 = (float(v) for v in gt.xyxy[i])
        z = int(z_order[i]) if z_order is not None else 0
        src = source[i] if source is not None and source[i] is not None else "manual"
        lines.append(
            f"    <box label={quoteattr(label)} source={quoteattr(str(src))} occluded=\"{int(bool(occluded[i]))}\" "
            f'xtl="{x1:.2f}" ytl="{y1:.2f}" xbr="{x2:.2f}" ybr="{y2:.2f}" z_order="{z}">'
        )
        for spec in label_specs[label]:
            column = attrs.get(spec.name)
            value = None if column is None else column[i]
            if value is not None:
                lines.append(f"      <attribute name={quoteattr(spec.name)}>{escape(str(value))}</attribute>")
        lines.append("    </box>")
    for tag in sample.tags:
        lines.append(f'    <tag label={quoteattr(tag)} source="manual">\n    </tag>')
    lines.append("  </image>")
    return lines


def write_cvat(dataset: Dataset, path: Path | str, *, task_name: str = "sitesight", timestamps: bool = False) -> Path:
    """Write ``dataset`` as one CVAT for images 1.1 XML file (parent folders are created).

    Args:
        dataset: classes, schema and samples; boxes are absolute pixels.
        path: the XML file to write.
        task_name: ``<meta><task><name>``.
        timestamps: write the current time into ``<created>``, ``<updated>``, ``<dumped>``
            (default: left empty, so that equal datasets give byte-identical files).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tag_names = list(dict.fromkeys(t for s in dataset.samples for t in s.tags if t not in dataset.class_names))
    label_specs = {name: _specs_for(dataset, name) for name in dataset.class_names}
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<annotations>", "  <version>1.1</version>"]
    lines += _meta(dataset, task_name, tag_names, timestamps)
    for index, sample in enumerate(dataset.samples):
        lines += _image_lines(dataset, index, sample, label_specs)
    lines.append("</annotations>")
    return atomic.write_text(path, "\n".join(lines) + "\n", encoding="utf-8")
