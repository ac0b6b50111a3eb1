"""Headless Chromium for the report tests and the report benchmark (Debian's ``chromium`` package)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")


def chromium() -> str | None:
    """The Chromium executable, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(page: Path, *extra: str, timeout: float = 60.0) -> tuple[subprocess.CompletedProcess, float]:
    """Run headless Chromium on a local page with ``extra`` flags; returns the process and its wall time."""
    exe = chromium()
    assert exe is not None
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *extra, page.resolve().as_uri()]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return proc, time.perf_counter() - t0


def console_errors(stderr: str) -> list[str]:
    """Lines where the page itself logged to the console or failed to load something."""
    keys = ("CONSOLE", "Failed to load", "Not allowed to load", "net::ERR")
    return [line for line in stderr.splitlines() if any(k in line for k in keys)]
