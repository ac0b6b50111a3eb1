"""What a report reads: a run folder, its kind, and where its artefacts are.

The input contract. A run folder may hold a ``run.json``::

    {"kind": "classification" | "detection" | "anomaly" | "mining",
     "name": "v20260511",                      # optional; default: the folder name
     "artefacts": {"<role>": "<path relative to the folder, or absolute>", ...},   # inside the folder*
     "config": {...}}                          # optional; shown as the run's configuration

``*`` Artefact paths must resolve (links followed) inside the run folder: one outside it is refused
with an error naming ``run.json`` and the key, unless the user passes ``--allow-outside-root``
(``allow_outside=True``), so that a run folder from elsewhere cannot pull arbitrary files into a report.

Roles per kind (``*`` = required):

* ``classification`` (image classifier or RoI attribute head): ``predictions``\\* a CSV with
  ``label``, ``pred`` and one probability column per class, plus ``image`` and, for box attributes,
  ``x1 y1 x2 y2`` in frame pixels (the layout `sitesight.models.attribute.write_attribute_csv` and
  `sitesight.models.classifier.write_class_csv` write); ``history`` (``history.json``/``.csv``, one
  row per epoch); ``checkpoint_config`` (the ``best.json`` beside a checkpoint: class names,
  ``expansion`` of the person box, fit settings).
* ``detection``: ``gt``\\* ground truth in any format `sitesight.formats.read_dataset` reads;
  ``predictions`` a COCO results JSON or a sitesight run folder (``manifest.json``; post-processed
  by `sitesight.sliced.postprocess.postprocess` with ``config.spec``: a spec dict, a sweep row,
  ``RUN/sweep.csv:best``; scored on the frames both sides cover); ``evaluation`` a JSON with ``coco`` and ``det`` keys (the demo's stand-in evaluation)
  used when there are no predictions; ``sweep`` the ``sitesight sweep`` table (``.csv``/``.json``).
* ``anomaly``: ``scores``\\* a CSV with ``image`` (or ``path``), ``label`` (normal/anomalous, empty =
  unlabelled) and ``score``, optionally ``heatmap`` (a ``.npy`` float map or a grey ``.png`` per
  image); ``summary`` (``sitesight predict anomaly``'s ``summary.json``: its thresholds are shown
  side by side with ``config.thresholds``, name → score); ``heatmaps`` a picture drawn by the run.
* ``mining``: ``ranking``\\* a CSV with ``image`` and ``score`` (higher = harder), optional ``rank``
  and any further columns (shown as they are).

Without ``run.json`` the kind is recognised from the files that the other sitesight commands
write: ``metrics.json`` + ``predictions.csv`` (``sitesight train roi|cls``) → classification;
a JSON with ``coco`` and ``det`` keys → detection; ``scores.csv`` → anomaly; ``ranking.csv`` →
mining. A detection run folder (``manifest.json``) needs ground truth: a ``run.json`` with ``gt``
or the ``gt`` argument of `load_report_run`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sitesight import atomic
from sitesight.errors import InputError
from sitesight.pathsafe import is_inside

__all__ = ["RUN_FILE", "RUN_KINDS", "ReportRun", "load_report_run", "write_run_info", "resolve_listed_path"]

RUN_FILE = "run.json"
RUN_KINDS = ("classification", "detection", "anomaly", "mining")
REQUIRED = {"classification": "predictions", "detection": "gt", "anomaly": "scores", "mining": "ranking"}


@dataclass(frozen=True)
class ReportRun:
    """One run as the report sees it.

    Args:
        kind: one of `RUN_KINDS`.
        name: the label shown in the report.
        path: the run folder (or file).
        artefacts: role → absolute path of each artefact found.
        config: settings to show (from ``run.json`` and the checkpoint's ``best.json``).
    """

    kind: str
    name: str
    path: Path
    artefacts: Mapping[str, Path] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)

    def artefact(self, role: str) -> Path | None:
        """The artefact's path, or None when the run has none for ``role``."""
        return self.artefacts.get(role)

    def json_artefact(self, role: str) -> dict[str, Any]:
        """A JSON artefact's object (``summary``, ``metrics`` …), or {} when the run has none or it is unreadable."""
        path = self.artefact(role)
        if path is None:
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def resolve_listed_path(text: str, base: Path) -> Path:
    """A path written in a run's CSV: absolute as it is; a relative one is tried against the CSV's folder
    then the working directory, then the folder's ancestors (a command run as ``sitesight predict anomaly
    demo/parts`` writes ``demo/parts/...``, relative to where it ran, not to its output folder: read
    against the CSV's folder that path was doubled). The first that exists wins; else the CSV-relative
    one (reported as unreadable by the caller)."""
    path = Path(text)
    if path.is_absolute():
        return path
    base = base.resolve()
    # the CSV's folder, the working directory, then the CSV folder's ancestors (a path written relative
    # to where the command ran is relative to one of them when the run folder was made there)
    for candidate in (base / path, Path.cwd() / path, *(parent / path for parent in base.parents)):
        if _exists(candidate):
            return candidate
    return base / path


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte: no such file
        return False


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON ({exc.msg})", path, f"line {exc.lineno}") from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path) from None


def _from_run_file(folder: Path, gt: Path | None, allow_outside: bool) -> ReportRun:
    path = folder / RUN_FILE
    info = _read_json(path)
    if not isinstance(info, dict):
        raise InputError("expected a JSON object", path)
    kind = info.get("kind")
    if kind not in RUN_KINDS:
        raise InputError(f"kind must be one of {list(RUN_KINDS)}, got {kind!r}", path, "kind")
    raw = info.get("artefacts", {})
    if not isinstance(raw, dict):
        raise InputError("expected an object of role → path", path, "artefacts")
    artefacts = {str(k): _artefact(folder, v, path, str(k), allow_outside) for k, v in raw.items() if v}
    if gt is not None and "gt" not in artefacts:
        artefacts["gt"] = Path(gt).resolve()
    for role, p in artefacts.items():
        if not p.exists():
            raise InputError(f"artefact {role!r} not found: {p}", path, f"artefacts.{role}")
    if REQUIRED[kind] not in artefacts:
        raise InputError(f"a {kind} run needs the artefact {REQUIRED[kind]!r}", path, "artefacts")
    config = info.get("config", {})
    if not isinstance(config, dict):
        raise InputError("expected an object", path, "config")
    if isinstance(config.get("spec"), str) and not config["spec"].strip().startswith("{"):
        config = {**config, "spec": _spec_file(folder, config["spec"].strip(), path, allow_outside)}
    return ReportRun(kind, str(info.get("name") or folder.name), folder, artefacts, _with_checkpoint(config, artefacts))


def _artefact(folder: Path, value: Any, run_file: Path, role: str, allow_outside: bool, where: str | None = None) -> Path:
    """An artefact path of ``run.json`` (relative to the run folder, or absolute), refused when it
    resolves outside the run folder (links followed) unless the user allowed it: a run.json from
    elsewhere must not pull ``~/.ssh`` or ``/etc`` files into a report."""
    text = str(value)
    where = where or f"artefacts.{role}"
    if "\x00" in text:
        raise InputError("artefact path contains a NUL byte", run_file, where)
    resolved = (folder / text).resolve()
    if not allow_outside and not is_inside(resolved, folder):
        raise InputError(f"artefact {role!r} ({text[:120]!r}) lies outside the run folder; pass --allow-outside-root "
                         "(allow_outside=True) to read it anyway", run_file, where)
    return resolved


def _spec_file(folder: Path, text: str, run_file: Path, allow_outside: bool) -> str:
    """``config.spec`` naming a sweep table or spec file (``TABLE[:ROW]``, as ``--spec`` takes it): the
    file is found relative to the run folder, not the working directory, and confined like an artefact."""
    file, sep, row = text.rpartition(":")
    if not sep or not row or "/" in row or "\\" in row or (folder / text).exists():
        file, row = text, ""
    resolved = _artefact(folder, file, run_file, "spec", allow_outside, where="config.spec")
    return f"{resolved}:{row}" if row else str(resolved)


def _with_checkpoint(config: Mapping[str, Any], artefacts: Mapping[str, Path]) -> dict[str, Any]:
    out = dict(config)
    ckpt = artefacts.get("checkpoint_config")
    if ckpt is not None:
        data = _read_json(ckpt)
        if isinstance(data, dict):
            out = {"checkpoint": data, **out}
    return out


def _is_eval_json(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return False
    return isinstance(data, dict) and "coco" in data and "det" in data


def _guess(folder: Path, gt: Path | None) -> ReportRun:
    name = folder.name
    if (folder / "predictions.csv").is_file() and (folder / "metrics.json").is_file():
        artefacts = {"predictions": folder / "predictions.csv", "metrics": folder / "metrics.json"}
        for role, file in (("history", "history.json"), ("history", "history.csv"), ("checkpoint_config", "best.json")):
            if (folder / file).is_file() and role not in artefacts:
                artefacts[role] = folder / file
        return ReportRun("classification", name, folder, artefacts, _with_checkpoint({}, artefacts))
    if (folder / "manifest.json").is_file():
        if gt is None:
            raise InputError("a detection run folder needs ground truth: pass --gt or write a run.json with artefacts.gt", folder)
        artefacts = {"gt": Path(gt).resolve(), "predictions": folder}
        if (folder / "sweep.csv").is_file():
            artefacts["sweep"] = folder / "sweep.csv"
        manifest = _read_json(folder / "manifest.json")
        config = {"model": manifest.get("model"), "parameters": manifest.get("parameters", {})}
        if isinstance(manifest.get("spec"), dict):  # recorded by `rescore`: the report's operating point, as eval's
            config["spec"] = manifest["spec"]
        return ReportRun("detection", name, folder, artefacts, config)
    for candidate in sorted(folder.glob("*.json")):
        if _is_eval_json(candidate):
            artefacts = {"evaluation": candidate}
            if gt is not None:
                artefacts["gt"] = Path(gt).resolve()
            data = _read_json(candidate)
            config = {k: v for k, v in data.items() if k not in ("coco", "det")}
            return ReportRun("detection", name, folder, artefacts, config)
    if (folder / "scores.csv").is_file():
        artefacts = {"scores": folder / "scores.csv"}
        for role, file in (("summary", "summary.json"), ("heatmaps", "heatmaps.png")):
            if (folder / file).is_file():
                artefacts[role] = folder / file
        return ReportRun("anomaly", name, folder, artefacts)
    if (folder / "ranking.csv").is_file():
        return ReportRun("mining", name, folder, {"ranking": folder / "ranking.csv"})
    raise InputError(
        f"cannot tell what kind of run this is: no {RUN_FILE}, and none of predictions.csv+metrics.json, "
        "manifest.json, an evaluation JSON (coco+det), scores.csv or ranking.csv", folder,
    )


def load_report_run(path: Path | str, *, gt: Path | str | None = None, allow_outside: bool = False) -> ReportRun:
    """Recognise a run folder (see the module notes for the contract).

    Args:
        path: a run folder, or an evaluation JSON file (``coco`` + ``det`` keys).
        gt: ground truth for a detection run that does not name its own.
        allow_outside: read ``run.json`` artefacts that resolve outside the run folder (refused by
            default; on the CLI ``--allow-outside-root``). ``gt`` given here is always read.

    Raises:
        InputError: the path is missing, or its kind cannot be recognised, or an artefact is absent
            or lies outside the run folder without ``allow_outside``.
    """
    path = Path(path)
    gt_path = None if gt is None else Path(gt)
    if gt_path is not None and not gt_path.exists():
        raise InputError("ground truth not found", gt_path)
    if not path.exists():
        raise InputError("run not found", path)
    if path.is_file():
        if path.suffix.lower() == ".json" and _is_eval_json(path):
            artefacts = {"evaluation": path.resolve()}
            if gt_path is not None:
                artefacts["gt"] = gt_path.resolve()
            return ReportRun("detection", path.stem, path.parent, artefacts)
        raise InputError("expected a run folder (or an evaluation JSON with 'coco' and 'det')", path)
    if (path / RUN_FILE).is_file():
        return _from_run_file(path, gt_path, allow_outside)
    return _guess(path, gt_path)


def write_run_info(
    run_dir: Path | str,
    *,
    kind: str,
    artefacts: Mapping[str, str | Path],
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``run_dir/run.json`` so that `sitesight report` reads the folder (paths stored relative
    to ``run_dir`` when they lie inside it). Returns the file's path."""
    if kind not in RUN_KINDS:
        raise ValueError(f"kind must be one of {RUN_KINDS}, got {kind!r}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rel = {}
    for role, p in artefacts.items():
        p = Path(p).resolve()
        try:
            rel[role] = str(p.relative_to(run_dir.resolve()))
        except ValueError:
            rel[role] = str(p)
    info = {"kind": kind, "name": name or run_dir.name, "artefacts": rel, "config": dict(config or {})}
    out = run_dir / RUN_FILE
    atomic.write_text(out, json.dumps(info, indent=1, default=str))
    return out
