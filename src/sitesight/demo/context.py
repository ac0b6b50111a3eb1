"""What the demo steps share: the output folder, the settings and every step's results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from sitesight.dataset import Dataset


@dataclass
class DemoContext:
    """What the demo steps share: the output folder, the settings and every step's results."""

    out: Path
    frames: int
    seed: int
    console: Console
    dataset: Dataset | None = None
    results: dict[str, Any] = field(default_factory=dict)
