from __future__ import annotations

import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sitesight", *args], capture_output=True, text=True)


def test_version_and_help():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("sitesight ")
    out = run_cli("--help")
    assert out.returncode == 0 and "demo" in out.stdout


def test_usage_error_exits_2():
    out = run_cli("no-such-command")
    assert out.returncode == 2
