"""Long fuzz campaign over every reader: the same engine as tests/fuzz, 100,000+ inputs.

Each input is a mutation of a seed file (small built-in files, and the real files in ../shared/data
when present) or a hand-made hostile input (deep nesting, 5,000-digit numbers, NaN/inf, entity and
alias bombs, 100 MB lines, ``../`` names), fed to one reader in a forked worker capped at +2 GiB of
address space and 10 s. It counts what the issue asks: exceptions other than `InputError`
("crash", a killed worker included), inputs over the time limit ("hang"), and non-finite values
that got through ("garbage"); plus ok/refused, the slowest input and the CPU seconds spent.

Run:  .venv/bin/python benchmarks/fuzz.py [--inputs 100000] [--seed 7] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz.engine import READERS, SHARED_DATA, campaign, main_counts  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=None, help="Write the counts here as JSON.")
    args = parser.parse_args()
    start = time.perf_counter()

    shown = [0]

    def progress(report) -> None:  # noqa: ANN001
        for failure in report.failures[shown[0] :]:
            print(f"  ! {failure}", file=sys.stderr, flush=True)
        shown[0] = len(report.failures)
        done = report.total
        print(f"  {done:>7} inputs, {time.perf_counter() - start:6.0f} s: crash {report.counts['crash']}, "
              f"hang {report.counts['hang']}, garbage {report.counts['garbage']}", file=sys.stderr, flush=True)  # fmt: skip

    report = campaign(args.inputs, base_seed=args.seed, time_limit=args.time_limit, shared=True, progress=progress)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    cpu = children.ru_utime + children.ru_stime + own.ru_utime + own.ru_stime
    print(main_counts(report))
    print(f"CPU {cpu:.0f} s ({1000 * cpu / max(report.total, 1):.1f} ms per input); wall {report.seconds:.0f} s; "
          f"shared data {'present' if SHARED_DATA.is_dir() else 'absent'}; Python {platform.python_version()}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({
            "inputs": report.total, "counts": dict(report.counts), "per_reader": {k: dict(v) for k, v in report.per_reader.items()},
            "slowest_s": report.slowest, "wall_s": report.seconds, "cpu_s": cpu, "readers": sorted(READERS),
            "failures": report.failures,
        }, indent=1))  # fmt: skip
    return 1 if report.bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
