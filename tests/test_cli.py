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


def test_typer_exit_code_survives_main(monkeypatch):
    import typer

    from sitesight.cli import main as cli_main

    @cli_main.app.command("_exit-three", hidden=True)
    def _exit_three() -> None:
        raise typer.Exit(3)

    try:
        assert cli_main.main(["_exit-three"]) == 3
    finally:
        cli_main.app.registered_commands = [c for c in cli_main.app.registered_commands if c.name != "_exit-three"]
