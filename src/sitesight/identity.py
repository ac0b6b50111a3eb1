"""One identity for frames and classes, used by every command that joins predictions with ground truth.

**Frames.** A frame is its path relative to a root (a run's frame folder, a dataset's root). Two
frame lists are aligned by `align_frames` with ONE rule: a frame and a ground-truth image match
when the shorter of their relative paths is the tail of the longer (``cam1/000.jpg`` meets
``site/cam1/000.jpg`` and ``000.jpg``, never ``cam9/000.jpg``), the longest such tail winning, and
only when that tail names exactly one frame and one image: a bare file name is used only when it is
unique. A tail naming several images (or several frames) is an ambiguity: `InputError` listing the
candidates, never a silent pick.

**Classes.** A class is its name. `class_lookup` maps a model's class names onto the ground
truth's by name, through an optional class map (``"With Helmet=helmet,Without Helmet=head"``; an
empty target, ``"vehicle="``, drops the class). A model name that is neither in the ground truth
nor mapped is an `InputError` listing both sets. Class-agnostic work collapses every class into
one (`AGNOSTIC_NAME`).

Example:
    >>> from sitesight.identity import parse_class_map
    >>> parse_class_map("With Helmet=helmet, Without Helmet=head")
    (('With Helmet', 'helmet'), ('Without Helmet', 'head'))
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sitesight.dataset import Dataset
from sitesight.errors import InputError

__all__ = [
    "AGNOSTIC_NAME",
    "Coverage",
    "FrameAlignment",
    "align_frames",
    "align_paths",
    "frame_root",
    "relative_key",
    "parse_class_map",
    "format_class_map",
    "class_lookup",
]

log = logging.getLogger(__name__)

AGNOSTIC_NAME = "object"


@dataclass(frozen=True)
class Coverage:
    """How two frame lists overlap: ``run`` frames, ``gt`` images, ``both`` matched."""

    run: int
    gt: int
    both: int

    @property
    def gt_only(self) -> int:
        return self.gt - self.both

    @property
    def run_only(self) -> int:
        return self.run - self.both

    def to_dict(self) -> dict[str, int]:
        return {"run": self.run, "gt": self.gt, "both": self.both, "gt_only": self.gt_only, "run_only": self.run_only}

    def __str__(self) -> str:
        return (f"frames: run {self.run}, ground truth {self.gt}, both {self.both}, "
                f"ground-truth only {self.gt_only}, run only {self.run_only}")


@dataclass(frozen=True)
class FrameAlignment:
    """Result of `align_frames`.

    Attributes:
        sample: ``(F,)`` int64 index into the ground-truth list of each frame key, -1 when none.
        coverage: the counts.
    """

    sample: np.ndarray
    coverage: Coverage

    @property
    def matched(self) -> np.ndarray:
        """``(M,)`` int64 positions of the frame keys that have ground truth, in key order."""
        return np.flatnonzero(self.sample >= 0)

    def gt_only(self, n_gt: int) -> np.ndarray:
        """``(G',)`` int64 ground-truth indices no frame key matched, ascending."""
        taken = np.zeros(n_gt, bool)
        taken[self.sample[self.sample >= 0]] = True
        return np.flatnonzero(~taken)


def _components(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.replace("\\", "/").split("/") if p not in ("", "."))


def _full(path: str, root: Path | str | None) -> str:
    """Absolute, normalised path (no file-system access), ``path`` joined to ``root`` when relative."""
    if root is not None and not os.path.isabs(path):
        path = os.path.join(str(root), path)
    return os.path.normpath(os.path.abspath(path))


def relative_key(path: Path | str, root: Path | str | None) -> str:
    """``path`` relative to ``root`` (POSIX separators) when it lies inside, else its absolute path."""
    full = _full(str(path), None)
    if root is not None:
        base = _full(str(root), None)
        if full == base or full.startswith(base.rstrip(os.sep) + os.sep):
            return Path(os.path.relpath(full, base)).as_posix()
    return Path(full).as_posix()


def frame_root(paths: Sequence[Path | str]) -> str | None:
    """The deepest folder holding every path (video keys count by their file), or None for none."""
    files = [_full(str(p).rpartition("#frame=")[0] or str(p), None) for p in paths]
    if not files:
        return None
    return Path(os.path.commonpath([os.path.dirname(f) for f in files])).as_posix()


def _suffix_index(paths: Sequence[tuple[str, ...]]) -> dict[tuple[str, ...], list[int]]:
    index: dict[tuple[str, ...], list[int]] = {}
    for i, parts in enumerate(paths):
        for k in range(1, len(parts) + 1):
            index.setdefault(parts[-k:], []).append(i)
    return index


def align_paths(
    keys: Sequence[str],
    gt_paths: Sequence[str],
    *,
    key_root: Path | str | None = None,
    gt_root: Path | str | None = None,
    what: str = "run",
) -> FrameAlignment:
    """Align frame ``keys`` with ground-truth image paths by the rule in the module notes.

    Each side's paths are taken relative to its root (`relative_key`; absolute when outside it).
    A frame and an image match when the shorter of the two relative paths is the tail of the
    longer one (``000.jpg`` ~ ``cam1/000.jpg``; ``cam0/000.jpg`` never ~ ``cam9/000.jpg``), the
    longest such tail winning, and that tail names one frame and one image.

    Args:
        keys: frame keys (image paths, ``video#frame=N``), absolute or relative to ``key_root``.
        gt_paths: ground-truth image paths, absolute or relative to ``gt_root``.
        key_root, gt_root: the folders the paths hang from (None: paths as given).
        what: how the frame side is named in errors.

    Raises:
        InputError: a frame's longest shared tail names several ground-truth images, or one
            ground-truth image is claimed by several frames (the candidates are listed).
    """
    key_parts = [_components(_relative(k, key_root)) for k in keys]
    gt_parts = [_components(_relative(p, gt_root)) for p in gt_paths]
    gt_index = _suffix_index(gt_parts)
    key_index = _suffix_index(key_parts)
    sample = np.full(len(keys), -1, np.int64)
    for i, parts in enumerate(key_parts):
        for k in range(len(parts), 0, -1):
            tail = parts[-k:]
            # a tail counts only when it is the whole of one of the two paths
            candidates = [c for c in gt_index.get(tail, ()) if k == len(parts) or k == len(gt_parts[c])]
            if not candidates:
                continue
            if len(candidates) > 1:
                shown = ", ".join(gt_paths[c] for c in candidates[:5]) + (" ..." if len(candidates) > 5 else "")
                raise InputError(f"{what} frame {keys[i]!r} matches {len(candidates)} ground-truth images by "
                                 f"'{'/'.join(tail)}': {shown}; give frames and ground truth with distinct paths")
            c = candidates[0]
            rivals = [r for r in key_index[tail] if k == len(key_parts[r]) or k == len(gt_parts[c])]
            if len(rivals) > 1:
                shown = ", ".join(keys[r] for r in rivals[:5]) + (" ..." if len(rivals) > 5 else "")
                raise InputError(f"ground-truth image {gt_paths[c]!r} matches {len(rivals)} {what} frames "
                                 f"by '{'/'.join(tail)}': {shown}; give frames and ground truth with distinct paths")
            sample[i] = c
            break
    both = int((sample >= 0).sum())
    return FrameAlignment(sample, Coverage(len(keys), len(gt_paths), both))


def _relative(path: str, root: Path | str | None) -> str:
    """``path`` relative to ``root`` when it lies inside (relative paths are taken as relative to it);
    without a root a relative path stays as it is (relative to a root nobody named)."""
    if root is None:
        return path if not os.path.isabs(path) else _full(path, None)
    return relative_key(_full(path, root), root)


def align_frames(keys: Sequence[str], dataset: Dataset, *, root: Path | str | None = None, what: str = "run") -> FrameAlignment:
    """Align frame ``keys`` (relative to ``root`` when relative) with ``dataset.samples``.

    The sample paths are taken relative to ``dataset.root``. See `align_paths`.
    """
    gt_paths = [str(s.path) for s in dataset.samples]
    return align_paths(keys, gt_paths, key_root=root, gt_root=dataset.root, what=what)


def parse_class_map(text: str | Mapping[str, str] | Sequence[tuple[str, str]] | None) -> tuple[tuple[str, str], ...]:
    """``"A=b,C=d"`` (or a mapping, or pairs) → ``(("A", "b"), ("C", "d"))``; names are stripped.

    An empty target (``"A="``) drops class ``A``.

    Raises:
        InputError: an entry without ``=``, an empty source name, or a source given twice.
    """
    if text is None:
        return ()
    if isinstance(text, Mapping):
        pairs = [(str(k), str(v)) for k, v in text.items()]
    elif isinstance(text, str):
        pairs = []
        for part in (p for p in text.split(",") if p.strip()):
            source, sep, target = part.partition("=")
            if not sep:
                raise InputError(f"--class-map: expected SOURCE=TARGET, got {part.strip()!r}")
            pairs.append((source, target))
    else:
        pairs = [(str(a), str(b)) for a, b in text]
    out: list[tuple[str, str]] = []
    for source, target in pairs:
        source, target = source.strip(), target.strip()
        if not source:
            raise InputError(f"--class-map: empty source name in {source}={target}")
        if source in (s for s, _ in out):
            raise InputError(f"--class-map: {source!r} is mapped twice")
        out.append((source, target))
    return tuple(out)


def format_class_map(class_map: Sequence[tuple[str, str]]) -> str:
    """Inverse of `parse_class_map` for recording a map in outputs."""
    return ",".join(f"{a}={b}" for a, b in class_map)


def class_lookup(
    source_names: Sequence[str] | None,
    target_names: Sequence[str],
    *,
    class_map: Sequence[tuple[str, str]] = (),
    class_agnostic: bool = False,
    num_source: int | None = None,
    where: str | None = None,
) -> np.ndarray:
    """``(S,)`` int64: the target class index of each source class, -1 for a dropped class.

    Args:
        source_names: the model's class names, or None when it did not record them (then class
            ids are taken as target indices, with a warning, and ``num_source`` gives their count).
        target_names: the ground truth's class names (or the output's).
        class_map: source name → target name pairs (`parse_class_map`); an empty target drops it.
        class_agnostic: every source class → 0 (the caller collapses the target to one class too).
        num_source: number of source class ids seen (for ``source_names=None``).
        where: the option or file named in errors.

    Raises:
        InputError: a source name neither in the targets nor mapped, a map naming an unknown
            class, or (without names) a class id beyond the target classes.
    """
    targets = list(target_names)
    position = {n: i for i, n in enumerate(targets)}
    if source_names is None:
        n = int(num_source or 0)
        if class_agnostic:
            return np.zeros(n, np.int64)
        if class_map:
            raise InputError("--class-map needs the model's class names, and this run did not record them "
                             "(re-run `sitesight detect` with --classes)", where=where)
        if n > len(targets):
            raise InputError(f"the predictions use class ids 0..{n - 1} but the ground truth has {len(targets)} "
                             f"classes {targets}; the run did not record class names: re-run `sitesight detect` "
                             "with --classes, or pass --class-agnostic", where=where)
        if n:
            log.warning("the predictions carry no class names: class ids are taken as ground-truth classes %s",
                        targets[:n])
        return np.arange(n, dtype=np.int64)
    sources = list(source_names)
    if class_agnostic:
        return np.zeros(len(sources), np.int64)
    mapping = dict(class_map)
    stray = [a for a in mapping if a not in sources]
    if stray:
        raise InputError(f"--class-map names {stray}, which are not among the model's classes {sources}", where=where)
    bad_targets = [b for b in mapping.values() if b and b not in position]
    if bad_targets:
        raise InputError(f"--class-map maps onto {bad_targets}, which are not among the ground-truth classes {targets}",
                         where=where)
    out = np.empty(len(sources), np.int64)
    unknown = []
    for i, name in enumerate(sources):
        target = mapping.get(name, name)
        if target == "":
            out[i] = -1
        elif target in position:
            out[i] = position[target]
        else:
            unknown.append(name)
    if unknown:
        raise InputError(f"model classes {unknown} are not ground-truth classes; model classes {sources}, ground-truth "
                         f"classes {targets}: pass --class-map \"{unknown[0]}=<gt class>\" (empty target drops it) "
                         "or --class-agnostic", where=where)
    return out
