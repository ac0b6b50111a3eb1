"""The CLI is assembled in one place, without an import cycle, and starts without loading numpy,
the command modules or anything they use (start-up figures: benchmarks/bench_cli_startup.py)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import typer

import sitesight
from sitesight.cli import main as cli_main

CLI = Path(cli_main.__file__).parent


def test_no_cli_module_imports_main():
    for path in sorted(CLI.glob("*.py")):
        if path.name == "main.py":
            continue
        tree = ast.parse(path.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "sitesight.cli.main" not in imported, f"{path.name} imports sitesight.cli.main (an import cycle)"


def test_commands_table_matches_what_the_modules_register():
    cli_main._register()
    root = typer.main.get_command(cli_main.app)
    registered = {name for name, cmd in root.commands.items() if not getattr(cmd, "hidden", False)}
    assert registered == set(cli_main.COMMANDS), registered ^ set(cli_main.COMMANDS)


def _imports_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"import sys; {code}; print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_sitesight_and_version_load_nothing_heavy():
    mods = _imports_after("import sitesight")
    assert not {"numpy", "pyarrow", "torch", "PIL"} & mods
    mods = _imports_after("from sitesight.cli.main import main; main(['--version'])")
    assert not {"numpy", "pyarrow", "torch", "rich.table"} & mods
    assert not {m for m in mods if m.startswith("sitesight.cli.") and m != "sitesight.cli.main"}
    mods = _imports_after("from sitesight.cli.main import main; main(['--help'])")
    assert "numpy" not in mods and not {m for m in mods if m.startswith("sitesight.cli.") and m != "sitesight.cli.main"}


def test_eval_coco_loads_only_the_eval_modules():
    mods = _imports_after("from sitesight.cli.main import main; main(['eval', 'coco', '--help'])")
    cli = {m for m in mods if m.startswith("sitesight.cli.")} - {"sitesight.cli.main", "sitesight.cli.spec_options", "sitesight.cli.jsonout"}
    assert cli <= {"sitesight.cli.eval", "sitesight.cli.det", "sitesight.cli.train"}, cli
    assert "torch" not in mods


def test_flat_api_names_resolve():
    assert set(sitesight.__all__) - {"__version__"} == set(sitesight._LAZY)
    # a flat name that equals a subpackage's name would turn into that module once the subpackage is imported
    importlib.import_module("sitesight.report.html")
    importlib.import_module("sitesight.report.paired_runs")
    for name in sitesight._LAZY:
        assert callable(getattr(sitesight, name)), name
