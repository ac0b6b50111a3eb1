"""A run's ``manifest.json``: what made the run, over which frames, and what its boxes are meant for.

Written once when a run folder is created (`new_manifest`, by `sitesight.sliced.store.open_run`)::

    format, format_version     "sitesight-run", 1
    model, model_id            the model spec as given, and its identity (`model_identity`: files by content hash)
    parameters                 how the boxes were produced (slice size, overlap, full_frame, ...)
    versions                   Python, sitesight and the array/model libraries (`library_versions`)
    frames, root               the ordered frame keys, and the folder holding them all
    class_names                the model's names of its class ids, or null
    created                    the creation time, only when asked (``timestamps=True``)

and later kept up to date: ``skipped`` (`sitesight.sliced.store.record_skipped`) and ``spec``, the
post-processing the boxes are meant for (`record_spec`). Every rewrite is atomic and happens only
when the value changes, so the same inputs give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sitesight import atomic
from sitesight.errors import InputError
from sitesight.identity import frame_root
from sitesight.limits import load_json

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "library_versions", "model_identity", "new_manifest", "read_manifest",
           "record_spec"]

FORMAT = "sitesight-run"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def library_versions() -> dict[str, str]:
    """Versions of Python, sitesight and the array/model libraries that are loaded."""
    from sitesight import __version__

    versions = {"python": platform.python_version(), "sitesight": __version__, "numpy": np.__version__, "pyarrow": pa.__version__}
    for name in ("torch", "torchvision", "onnxruntime", "ultralytics", "cv2", "PIL"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "__version__"):
            versions[name] = str(module.__version__)
    return versions


def read_manifest(run_dir: Path | str) -> dict[str, Any]:
    """The checked ``manifest.json`` of a run folder (`InputError` when absent or invalid)."""
    run_dir = Path(run_dir)
    path = run_dir / MANIFEST
    if not path.is_file():
        raise InputError("not a sitesight run (no manifest.json)", run_dir)
    manifest = load_json(path, what="run manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"not a sitesight run manifest (format != {FORMAT!r})", path, "format")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InputError(f"unsupported run format_version {manifest.get('format_version')!r}", path, "format_version")
    frames = manifest.get("frames")
    if not isinstance(frames, list) or not all(isinstance(k, str) for k in frames):
        raise InputError("missing frame list (a list of frame keys)", path, "frames")
    if not isinstance(manifest.get("parameters", {}), dict):
        raise InputError("'parameters' must be an object", path, "parameters")
    names = manifest.get("class_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, (str, int)) for n in names)):
        raise InputError("'class_names' must be a list of names", path, "class_names")
    return manifest


def model_identity(model: str) -> str:
    """What makes two runs' models the same: each file a spec names, by its content hash.

    ``yolo:runs/best.pt`` and ``yolo:/abs/runs/best.pt`` are one model; the same path after the
    weights were retrained is another. Parts of the spec that are not files (the backend, an
    architecture name, a release name) are kept as written. The detection options are compared
    separately (the manifest's ``parameters``).
    """
    parts = []
    for part in str(model).split(":"):
        path = Path(part)
        try:
            is_file = bool(part) and path.is_file()
        except (OSError, ValueError):
            is_file = False
        if is_file:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            parts.append(f"sha256={digest.hexdigest()[:32]}")
        else:
            parts.append(part)
    return ":".join(parts)


def new_manifest(
    frame_keys: Sequence[str],
    *,
    model: str,
    model_id: str,
    parameters: Mapping[str, Any],
    versions: Mapping[str, str] | None = None,
    class_names: Sequence[str] | None = None,
    timestamps: bool = False,
) -> dict[str, Any]:
    """The manifest of a new run (the fields in the module notes); ``versions`` None: `library_versions`."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **({"created": datetime.now(timezone.utc).isoformat(timespec="seconds")} if timestamps else {}),
        "model": model,
        "model_id": model_id,
        "parameters": dict(parameters),
        "versions": dict(versions or library_versions()),
        "frames": list(frame_keys),
        "root": frame_root(list(frame_keys)),
        "class_names": None if class_names is None else [str(n) for n in class_names],
    }


def record_spec(run_dir: Path | str, spec: Mapping[str, Any] | None) -> None:
    """Record in ``manifest.json`` under ``spec`` the post-processing the run's boxes are meant for
    (a `sitesight.sliced.spec.PostprocessSpec` dict; None removes it).

    The manifest is rewritten atomically, and only when the value changed (a resumed writer that
    records the same spec leaves the file byte-identical).
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    value = None if spec is None else json.loads(json.dumps(dict(spec)))
    if manifest.get("spec") != value:
        manifest = {k: v for k, v in manifest.items() if k != "spec"}
        atomic.write_bytes(run_dir / MANIFEST, json.dumps({**manifest, **({} if value is None else {"spec": value})},
                                                          indent=1).encode())
