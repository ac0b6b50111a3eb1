"""Frames on object storage for the Ray engine: ``s3://``, ``gs://``, ``hdfs://`` (and ``file://``) URLs.

Listing and reading go through pyarrow's filesystems (`pyarrow.fs.FileSystem.from_uri`: S3, GCS,
HDFS, local), which read credentials from the environment as each cloud's own tools do. A frame
read from a URL is decoded by the very function a local frame goes through
(`sitesight.images.read_image_rgb`, on a private temporary copy), so pixels and error reasons are
the same. ``file://`` URLs take this same path on the local disk; that is how the tests run it.

Example:
    >>> from sitesight.engines.storage import list_uri_frames
    >>> keys = list_uri_frames(["s3://site-captures/cam07/2024-05-12/"])  # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import PurePosixPath

import numpy as np

from sitesight.errors import InputError

__all__ = ["is_uri", "list_uri_frames", "read_uri_frame"]


def is_uri(text: str) -> bool:
    """True for ``scheme://...`` (a frame or folder on a pyarrow filesystem)."""
    return "://" in str(text)


def _filesystem(uri: str):  # noqa: ANN202 - pyarrow.fs.FileSystem, imported lazily
    import pyarrow.fs as pafs

    try:
        return pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(f"cannot open this storage URL ({str(exc)[:160]})", uri) from None


def list_uri_frames(uris: Sequence[str]) -> list[str]:
    """Frame keys (URLs) of image files: each URL a file, or a folder listed recursively, sorted.

    Raises:
        InputError: a URL that names nothing, or a folder without images.
    """
    import pyarrow.fs as pafs

    from sitesight.sliced.frames import IMAGE_EXTENSIONS

    keys: list[str] = []
    seen: set[str] = set()
    for uri in uris:
        fs, path = _filesystem(uri)
        scheme = uri.split("://", 1)[0]
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            found = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
                           if i.type == pafs.FileType.File and PurePosixPath(i.path).suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise InputError("no image under this URL", uri)
        elif info.type == pafs.FileType.File:
            found = [path]
        else:
            raise InputError("no such file or folder", uri)
        for p in found:
            key = f"{scheme}://{p}" if scheme != "file" else f"file://{p if p.startswith('/') else '/' + p}"
            if key not in seen:
                seen.add(key)
                keys.append(key)
    return keys


def read_uri_frame(uri: str) -> np.ndarray:
    """Decode one image named by a URL as RGB uint8 ``(H, W, 3)``, exactly as a local file decodes.

    Raises:
        InputError: unreadable URL or image (the reason names the URL).
    """
    from sitesight.images import read_image_rgb

    fs, path = _filesystem(uri)
    try:
        with fs.open_input_stream(path) as f:
            data = f.read()
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read ({str(exc)[:160]})", uri) from None
    fd, tmp = tempfile.mkstemp(suffix=PurePosixPath(path).suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return read_image_rgb(tmp)
    except InputError as exc:
        raise InputError(str(exc).split(": ", 1)[-1], uri) from None
    finally:
        os.unlink(tmp)
