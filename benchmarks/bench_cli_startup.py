"""CLI start-up and whole-process `sitesight eval coco` against hotcoco's `coco eval`, in one run.

Every figure is a separate process started from this script, timed by its wall clock and by the
CPU it used (user + system, from ``getrusage(RUSAGE_CHILDREN)``, children included); the table
gives medians over ``--repeats`` runs. On a shared machine the CPU column is the steadier one.

* start-up: ``sitesight --version``, ``sitesight --help``, ``python -c "import sitesight"`` and,
  as the peer's floor, ``coco --version`` (hotcoco's CLI);
* whole process: ``sitesight eval coco --gt GT --pred RES --json OUT`` against hotcoco's CLI
  ``coco eval --gt GT --dt RES --json`` and against a Python process that imports hotcoco, loads
  both files, evaluates and prints the stats (the least a hotcoco user's script does), on `bench_coco_eval.make_data` inputs (~10 ground-truth
  boxes and ~100 predictions per image, 5 classes) for each ``--images`` size; both JSON outputs
  are read back and the 12 stats compared.

    .venv/bin/python benchmarks/bench_cli_startup.py --images 250 5000 --repeats 5
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_coco_eval import make_data  # noqa: E402

BIN = Path(sys.executable).parent
STATS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


# Children run as a user's shell runs them: bytecode caches on (this machine's environment sets
# PYTHONDONTWRITEBYTECODE, which would recompile every module on every start), kept in a folder of
# the benchmark's own; each command runs once untimed first, so the caches exist.
_PYCACHE = tempfile.mkdtemp(prefix="bench_pycache_")
_ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "PYTHONPYCACHEPREFIX": _PYCACHE,
        "COLUMNS": "120"}  # fmt: skip


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, stdout) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=_ENV)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-400:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout


def medians(cmd: list[str], repeats: int, cwd: Path | None = None) -> tuple[float, float, str]:
    timed(cmd, cwd)  # warm-up: writes the bytecode caches, fills the page cache
    runs = [timed(cmd, cwd) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), runs[-1][2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[250, 5000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sitesight, hotcoco = str(BIN / "sitesight"), shutil.which("coco", path=str(BIN)) or shutil.which("coco")
    versions = {p: importlib.metadata.version(p) for p in ("sitesight", "typer", "numpy", "pyarrow", "hotcoco")
                if _installed(p)}  # fmt: skip
    print(f"Python {platform.python_version()}, {versions}, load average {os.getloadavg()[0]:.1f}, "
          f"{args.repeats} runs each (medians)\n")
    print("| process | wall s | CPU s |\n|---|---:|---:|")
    startup = [("sitesight --version", [sitesight, "--version"]), ("sitesight --help", [sitesight, "--help"]),
               ("python -c 'import sitesight'", [sys.executable, "-c", "import sitesight"]),
               ("python -c 'pass' (interpreter alone)", [sys.executable, "-c", "pass"])]  # fmt: skip
    if hotcoco:
        startup.append(("coco --version (hotcoco)", [hotcoco, "--version"]))
    for label, cmd in startup:
        wall, cpu, _ = medians(cmd, args.repeats)
        print(f"| {label} | {wall:.3f} | {cpu:.3f} |")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for n in args.images:
            gt_dict, results, _, _ = make_data(n)
            gt, res = folder / f"gt{n}.json", folder / f"res{n}.json"
            gt.write_text(json.dumps(gt_dict))
            res.write_text(json.dumps(results))
            out = folder / "sitesight.json"
            label = f"{n:,} images, {len(results):,} predictions"
            wall, cpu, _ = medians([sitesight, "eval", "coco", "--gt", str(gt), "--pred", str(res), "--json", str(out)], args.repeats)
            ours = json.loads(out.read_text())
            print(f"| **sitesight eval coco** ({label}) | {wall:.3f} | {cpu:.3f} |")
            if hotcoco:
                wall, cpu, stdout = medians([hotcoco, "eval", "--gt", str(gt), "--dt", str(res), "--json"], args.repeats)
                theirs = json.loads(stdout)["metrics"]
                gap = max(abs(ours[k] - theirs[k]) for k in STATS)
                print(f"| hotcoco `coco eval` CLI ({label}) | {wall:.3f} | {cpu:.3f} |  max \\|Δ stats\\| {gap:.1e}")
            if _installed("hotcoco"):
                script = (_HOTCOCO_PROCESS % (str(gt), str(res)))
                wall, cpu, stdout = medians([sys.executable, "-c", script], args.repeats)
                gap = max(abs(ours[k] - v) for k, v in zip(STATS, json.loads(stdout), strict=True))
                print(f"| hotcoco Python API as a process ({label}) | {wall:.3f} | {cpu:.3f} |  max \\|Δ stats\\| {gap:.1e}")


# the least a hotcoco user's process does: import, load both files, evaluate, print the 12 stats
_HOTCOCO_PROCESS = """
import contextlib, io, json, hotcoco
with contextlib.redirect_stdout(io.StringIO()):
    g = hotcoco.COCO(%r)
    e = hotcoco.COCOeval(g, g.load_res(%r), "bbox")
    e.evaluate(); e.accumulate(); e.summarize()
print(json.dumps([float(v) for v in e.stats]))
"""


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


if __name__ == "__main__":
    main()
