"""Write a file so that its final name only ever holds a complete file.

Every writer in sitesight goes through `atomic_path` (or the `write_text` / `write_bytes` /
`write_json` shortcuts): the content goes to a temporary file in the *same folder* (so the rename
never crosses file systems), is flushed and fsync'd, and is then renamed over the final name with
`os.replace` (atomic on POSIX and Windows). On any error, or a KeyboardInterrupt, the temporary
file is removed and the final name keeps what it held before. A SIGKILL can leave a temporary
file behind (nothing can run then): its name, ``.tmp-<pid>-<random>-<final name>``, says which
process wrote it, and the next write of the same final name removes those of dead processes
(`remove_stale` sweeps a whole folder).

Example:
    >>> from sitesight.atomic import atomic_path, write_json
    >>> write_json("out/summary.json", {"frames": 3})              # doctest: +SKIP
    >>> with atomic_path("out/table.parquet") as tmp:              # doctest: +SKIP
    ...     pq.write_table(table, tmp)                             # any library that takes a path
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["TMP_PREFIX", "atomic_path", "open_atomic", "write_bytes", "write_text", "write_json", "write_parquet", "remove_stale",
           "fsync_path"]  # fmt: skip

TMP_PREFIX = ".tmp-"


def _tmp_name(path: Path) -> Path:
    # Bounded: a 255-byte final name must not make the temporary name too long for the file system.
    return path.with_name(f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}-{path.name[:120]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _remove_orphans(path: Path) -> None:
    """Delete temporaries of ``path`` left by writers that were killed (their process is gone)."""
    try:
        for tmp in path.parent.glob(f"{TMP_PREFIX}*-*-{glob.escape(path.name[:120])}"):
            pid = tmp.name[len(TMP_PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    tmp.unlink()
    except OSError:
        pass


def fsync_path(path: Path | str) -> None:
    """Flush a written file's data to disk (no-op where the platform refuses)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable on POSIX; directories cannot be opened on Windows.
    if os.name == "posix":
        fsync_path(folder)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it becomes ``path``, on error it is removed.

    The caller writes a complete file at the yielded path (by any means: ``open``, pyarrow,
    ``zipfile``, ``torch.save``). Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(path)
    tmp = _tmp_name(path)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def open_atomic(path: Path | str, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open(path, mode, **kwargs)`` for writing, atomically: a drop-in for ``with open(...) as f``.

    Example:
        >>> with open_atomic("out/table.csv", "w", newline="") as fh:   # doctest: +SKIP
        ...     csv.writer(fh).writerows(rows)
    """
    if not mode.startswith(("w", "x")):
        raise ValueError(f"open_atomic writes a new file: mode must start with 'w', got {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def write_parquet(table: Any, path: Path | str, **kwargs: Any) -> Path:
    """``pyarrow.parquet.write_table(table, path, **kwargs)``, atomically."""
    import pyarrow.parquet as pq

    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **kwargs)
    return path


def write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path


def write_text(path: Path | str, text: str, encoding: str | None = "utf-8", *, newline: str | None = None) -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding=encoding, newline=newline) as f:
        f.write(text)
    return path


def _check_finite(value: Any, where: str = "$") -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"refusing to write a non-finite number ({value}) at {where}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite(v, f"{where}[{i}]")


def write_json(path: Path | str, doc: Any, *, indent: int | None = None, sort_keys: bool = False) -> Path:
    """Write ``doc`` as JSON atomically. NaN and infinities are refused (they are not JSON).

    Raises:
        ValueError: ``doc`` holds a non-finite float (the message gives its place).
    """
    try:
        text = json.dumps(doc, indent=indent, sort_keys=sort_keys, allow_nan=False)
    except ValueError:
        _check_finite(doc)
        raise
    return write_text(path, text)


def remove_stale(folder: Path | str) -> int:
    """Delete temporary files left in ``folder`` by a killed writer; returns how many."""
    count = 0
    for stale in Path(folder).glob(f"{TMP_PREFIX}*"):
        with contextlib.suppress(OSError):
            stale.unlink()
            count += 1
    return count
