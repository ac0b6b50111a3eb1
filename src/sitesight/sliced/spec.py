"""`PostprocessSpec`: everything that turns a stored run's raw boxes into final detections, as one value.

Every command that reads a run (``sweep``, ``export``, ``eval det|coco --pred RUN``, ``report``,
``mine``, ``eval iou-aware``) takes the same options and builds this value with `spec_from_options`:

    --conf 0.3 --method greedy_nmm --metric ios --threshold 0.5 --gate r=40,conf=0.2
    --class-map "With Helmet=helmet" --class-agnostic --no-border
    --spec RUN/sweep.csv:best      (or RUN/sweep.csv:7, a JSON file, or the JSON text of a row)

Options given explicitly override the ``--spec`` ones. Every output records ``spec.to_dict()``.

Example:
    >>> from sitesight.sliced.spec import PostprocessSpec
    >>> spec = PostprocessSpec.from_dict({"method": "nms", "metric": "iou", "threshold": 0.5, "conf": 0.3, "gate": ""})
    >>> str(spec)
    'conf 0.3, nms/iou@0.5, border rule, no gate'
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sitesight.errors import InputError
from sitesight.identity import format_class_map, parse_class_map
from sitesight.sliced.border import MergeSpec
from sitesight.sliced.gate import GateParams, parse_gate
from sitesight.sliced.merge import METHODS, METRICS

__all__ = ["PostprocessSpec", "parse_spec", "spec_from_options", "SPEC_FIELDS"]

SPEC_FIELDS = ("conf", "method", "metric", "threshold", "border", "gate", "class_map", "class_agnostic")


@dataclass(frozen=True)
class PostprocessSpec:
    """How raw boxes become final detections (`sitesight.sliced.postprocess.postprocess`).

    Args:
        conf: raw boxes with ``score < conf`` are dropped before merging (as SAHI does).
        method, metric, threshold: the merge (`sitesight.sliced.merge.merge`).
        border: drop slice-border cuts that an uncut twin covers (`sitesight.sliced.border`).
        gate: the full-image gate, or None.
        class_map: model class name → target class name pairs; an empty target drops the class.
        class_agnostic: every class is one (merge, border rule, gate and scoring ignore classes).
    """

    conf: float = 0.25
    method: str = "greedy_nmm"
    metric: str = "ios"
    threshold: float = 0.5
    border: bool = True
    gate: GateParams | None = None
    class_map: tuple[tuple[str, str], ...] = ()
    class_agnostic: bool = False

    def __post_init__(self) -> None:
        method, metric = str(self.method).strip().lower(), str(self.metric).strip().lower()
        if method not in METHODS:
            raise InputError(f"--method: unknown {self.method!r}; choose one of {', '.join(METHODS)}")
        if metric not in METRICS:
            raise InputError(f"--metric: unknown {self.metric!r}; choose one of {', '.join(METRICS)}")
        for name in ("conf", "threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"--{name}: expected a finite number, got {value!r}")
        gate = self.gate
        if isinstance(gate, str):
            gate = _gate(gate)
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "metric", metric)
        object.__setattr__(self, "conf", float(self.conf))
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "border", bool(self.border))
        object.__setattr__(self, "gate", gate)
        object.__setattr__(self, "class_map", parse_class_map(self.class_map))
        object.__setattr__(self, "class_agnostic", bool(self.class_agnostic))

    @property
    def merge_spec(self) -> MergeSpec:
        """The merge part, as `sitesight.sliced.border.MergeSpec` (class ids are mapped first;
        class-agnostic work collapses them, so the merge itself is class-aware)."""
        return MergeSpec(self.method, self.metric, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values; `from_dict` reads them back."""
        return {"conf": self.conf, "method": self.method, "metric": self.metric, "threshold": self.threshold,
                "border": self.border, "gate": "" if self.gate is None else str(self.gate),
                "class_map": format_class_map(self.class_map), "class_agnostic": self.class_agnostic}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, where: str | None = None) -> PostprocessSpec:
        """A spec from a dict such as `to_dict`'s or a ``sitesight sweep`` row (other keys are ignored).

        Missing keys keep the defaults; strings are parsed (``"0.3"``, ``"true"``, gate ``"r=40,conf=0.2"``).
        """
        if not isinstance(values, Mapping):
            raise InputError(f"a spec must be a JSON object, got {type(values).__name__}", where=where)
        kwargs: dict[str, Any] = {}
        try:
            for key in ("conf", "threshold"):
                if values.get(key) not in (None, ""):
                    kwargs[key] = float(values[key])
            for key in ("method", "metric"):
                if values.get(key) not in (None, ""):
                    kwargs[key] = str(values[key])
            for key in ("border", "class_agnostic"):
                if values.get(key) not in (None, ""):
                    kwargs[key] = _bool(values[key])
            if "gate" in values:
                kwargs["gate"] = _gate(values["gate"])
            if values.get("class_map"):
                kwargs["class_map"] = parse_class_map(values["class_map"])
        except ValueError as exc:
            raise InputError(f"invalid spec: {exc}", where=where) from None
        return cls(**kwargs)

    def __str__(self) -> str:
        parts = [f"conf {self.conf:g}", f"{self.method}/{self.metric}@{self.threshold:g}",
                 "border rule" if self.border else "no border rule", f"gate {self.gate}" if self.gate else "no gate"]
        if self.class_map:
            parts.append(f"class map {format_class_map(self.class_map)}")
        if self.class_agnostic:
            parts.append("class-agnostic")
        return ", ".join(parts)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "1.0"):
        return True
    if text in ("0", "false", "no", "0.0", ""):
        return False
    raise ValueError(f"expected true/false, got {value!r}")


def _gate(value: Any) -> GateParams | None:
    if value is None or isinstance(value, GateParams):
        return value
    text = str(value).strip()
    if text in ("", "-", "none", "None"):
        return None
    try:
        return parse_gate(text)
    except ValueError as exc:
        raise InputError(f"--gate: {exc}") from None


def _sweep_rows(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Rows of a ``sitesight sweep`` table (CSV or JSON) and the index of its best row."""
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("rows"), list):
            return [dict(r) for r in data["rows"]], int(data.get("best", -1))
        raise InputError("expected a sweep table ('rows') or a spec object", path)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    best = next((i for i, r in enumerate(rows) if str(r.get("best", "")).strip() in ("1", "1.0", "True", "true")), -1)
    return rows, best


def parse_spec(text: str) -> PostprocessSpec:
    """``--spec``: ``TABLE:best``, ``TABLE:ROW`` (0-based row of a sweep CSV/JSON), ``TABLE`` (its
    best row), a JSON file holding a spec object (e.g. an output's recorded ``spec``), or JSON text.

    Raises:
        InputError: unreadable file, no such row, or a malformed spec.
    """
    text = text.strip()
    if text.startswith("{"):
        try:
            return PostprocessSpec.from_dict(json.loads(text), where="--spec")
        except json.JSONDecodeError as exc:
            raise InputError(f"--spec: invalid JSON ({exc.msg})") from None
    path, sep, row = text.rpartition(":")
    if not sep or not row or "/" in row or "\\" in row or Path(text).exists():
        path, row = text, ""
    file = Path(path)
    if not file.is_file():
        raise InputError("--spec: no such file", file)
    if file.suffix.lower() == ".json":
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"invalid JSON ({exc})", file) from None
        if isinstance(data, dict) and "rows" not in data:
            return PostprocessSpec.from_dict(data.get("spec", data), where=str(file))
    rows, best = _sweep_rows(file)
    if row in ("", "best"):
        if best < 0:
            raise InputError("the sweep table marks no best row", file)
        index = best
    else:
        try:
            index = int(row)
        except ValueError:
            raise InputError(f"--spec: expected ':best' or a row number, got {row!r}", file) from None
    if not 0 <= index < len(rows):
        raise InputError(f"--spec: row {index} is outside 0..{len(rows) - 1}", file)
    return PostprocessSpec.from_dict(rows[index], where=f"{file} row {index}")


def spec_from_options(
    *,
    spec: str | None = None,
    conf: float | None = None,
    method: str | None = None,
    metric: str | None = None,
    threshold: float | None = None,
    gate: str | None = None,
    class_map: str | None = None,
    class_agnostic: bool | None = None,
    border: bool | None = None,
    default: PostprocessSpec = PostprocessSpec(),
) -> PostprocessSpec:
    """The CLI's options as one spec: ``--spec`` (or ``default``), then every option given (not None) on top."""
    base = parse_spec(spec) if spec else default
    changes: dict[str, Any] = {}
    for name, value in (("conf", conf), ("method", method), ("metric", metric), ("threshold", threshold),
                        ("class_agnostic", class_agnostic), ("border", border)):
        if value is not None:
            changes[name] = value
    if gate is not None:
        changes["gate"] = _gate(gate)
    if class_map is not None:
        changes["class_map"] = parse_class_map(class_map)
    return replace(base, **changes)
