"""Engines that run sitesight's stages: the local one (plain function calls, the default) and Ray.

The local engine is the library itself (`sitesight.sliced.predict.detect_to_run`, `sitesight.sliced.sweep`,
...). `sitesight.engines.ray` runs the same per-frame functions as Ray Data stages over the same
Parquet runs; it needs the ``[ray]`` extra and is imported only when ``--engine ray`` is asked for.
"""

ENGINES = ("local", "ray")

__all__ = ["ENGINES"]
