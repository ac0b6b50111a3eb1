"""MAD mining on Ray: per-frame discrepancies in tasks, top-k on the driver, boxes only for what is picked.

The pool's frames (those every run processed, in the first run's order, as `load_pool` keeps them)
are cut into groups; a group's frames are read from each run's shards that hold them
(`sitesight.mining.pool.load_flat_run` with ``shards=``), so the runs are co-partitioned by frame
whatever their own sharding; sliced runs are made final there by `sitesight.sliced.postprocess.postprocess`
under the same spec as the local `mine_runs` (each frame is post-processed on its own, so a part
gives what the whole run gives). Two passes of Ray tasks:

1. each model's maximum score per frame (scalars): the models' "confident" points are quantiles
   of those (`sitesight.mining.confident.confident_points`, run on a pool of one box per frame);
2. `sitesight.mining.discrepancy.all_pairs` per group with those points: per frame and pair the
   terms ``det, cls, cross, total, confident`` (scalars).

The driver selects each pair's top frames and the control set (`sitesight.mining.mad.select_pairs`),
reads boxes for those frames only, recomputes the pairs' per-box contributions there (the
discrepancy of a frame depends on that frame alone) and writes ``MINED/`` with the local
`mine_pool` and `finish_mined`. No unselected frame's boxes reach the driver.

Example:
    >>> from sitesight.engines.ray_mine import mine_runs_ray
    >>> result = mine_runs_ray({"a": "runs/a", "b": "runs/b"}, "mined/", budget=300)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sitesight.engines.ray import MAX_BLOCKS, RayOptions, connect, quiet_data_context
from sitesight.engines.ray_runs import frames_only_run
from sitesight.errors import InputError
from sitesight.mining.confident import confident_points
from sitesight.mining.discrepancy import DiscrepancyWeights, all_pairs
from sitesight.mining.mad import DEFAULT_SPEC, Handoff, MiningResult, finish_mined, mine_pool, select_pairs
from sitesight.mining.pool import FlatDetections, Pool, frame_metadata, load_flat_run, pool_classes
from sitesight.mining.select import Diversity
from sitesight.sliced.spec import PostprocessSpec

__all__ = ["mine_runs_ray"]

_TERMS = ("det", "cls", "cross", "total", "confident")


def _part_pool(keys: list[str], shards: Mapping[str, list[str]], runs: Mapping[str, str], sliced: Mapping[str, bool],
               class_names: tuple[str, ...], spec: PostprocessSpec) -> Pool:
    """The pool over ``keys``, each run read from the named shards only, made final under ``spec`` and its
    classes mapped onto ``class_names`` (`pool_classes`; empty: kept as they are)."""
    flats, wh = {}, None
    for name, path in runs.items():
        run_keys, run_wh, flat = load_flat_run(path, shards=shards[name], sliced=sliced[name], spec=spec, conf=spec.conf,
                                               class_names=class_names or None)
        position = {k: i for i, k in enumerate(run_keys.tolist())}
        rows = np.array([position[k] for k in keys], np.int64)
        flats[name] = flat.take_frames(rows)
        wh = run_wh[rows] if wh is None else wh
    return Pool(np.asarray(keys, object), wh, flats, None, None, class_names)


def _mine_part(batch: pa.Table, runs: dict[str, str], sliced: dict[str, bool], class_names: tuple[str, ...],
               spec: PostprocessSpec, pairs: dict[str, Any] | None) -> pa.Table:
    """Ray Data stage: per row's frames, each model's max score per frame (``pairs`` None) or the
    pair terms per frame (``pairs``: `all_pairs` keyword arguments)."""
    out: dict[str, list] = {"start": [], "values": []}
    for row in batch.to_pylist():
        pool = _part_pool(row["keys"], row["shards"], runs, sliced, class_names, spec)
        if pairs is None:
            values = []
            for flat in pool.runs.values():
                counts = flat.counts()
                top = np.full(pool.n_frames, np.nan)
                has = np.flatnonzero(counts > 0)
                if has.size:
                    top[has] = np.maximum.reduceat(flat.score, flat.offsets[has])
                values.append(top)
        else:
            values = [np.asarray(getattr(pd, t), np.float64) for pd in all_pairs(pool, **pairs) for t in _TERMS]
        out["start"].append(row["start"])
        out["values"].append(np.stack(values).ravel().tolist())
    return pa.table({"start": pa.array(out["start"], pa.int64()), "values": pa.array(out["values"], pa.list_(pa.float64()))})


def _pass(ray: Any, items: list[dict[str, Any]], fn_kwargs: dict[str, Any], rows: int, n_frames: int) -> np.ndarray:
    """One pass of `_mine_part` over the groups; ``(rows, n_frames)`` float64 in pool order."""
    out = np.zeros((rows, n_frames))
    ds = ray.data.from_items(items, override_num_blocks=min(len(items), MAX_BLOCKS))
    for row in ds.map_batches(_mine_part, fn_kwargs=fn_kwargs, batch_size=1, batch_format="pyarrow").iter_rows():
        values = np.asarray(row["values"], np.float64).reshape(rows, -1)
        out[:, row["start"] : row["start"] + values.shape[1]] = values
    return out


def mine_runs_ray(
    runs: Mapping[str, Path | str],
    out_dir: Path | str,
    *,
    budget: int = 300,
    weights: DiscrepancyWeights = DiscrepancyWeights(),
    diversity: Diversity = Diversity(),
    both_confident: bool = True,
    operating: Mapping[str, str | float | Path] | None = None,
    handoff: Handoff = Handoff(),
    seed: int = 0,
    spec: PostprocessSpec | None = None,
    timestamps: bool = False,
    frames_per_task: int = 4096,
    options: RayOptions = RayOptions(),
) -> MiningResult:
    """`sitesight.mining.mad.mine_runs` with the per-frame scoring on Ray: the same ``MINED/`` folder.

    Args:
        runs, out_dir, budget, weights, diversity, both_confident, operating, handoff, seed, spec, timestamps:
            as in `mine_runs` (every task makes its frames final with the same `postprocess` and ``spec``).
        frames_per_task: pool frames per Ray task.
        options: the cluster (only ``address`` is used).
    """
    if len(runs) < 2:
        raise InputError(f"mining by discrepancy needs at least two models, got {list(runs)}")
    spec = spec or DEFAULT_SPEC
    ray = connect(options.address)
    paths = {name: str(Path(p).resolve()) for name, p in runs.items()}
    indexed = {name: frames_only_run(p) for name, p in paths.items()}
    first = indexed[next(iter(paths))][0]
    present = [{f.key for f in run.frames} for run, _ in indexed.values()]
    frames = [f for f in first.frames if all(f.key in p for p in present)]
    keys = [f.key for f in frames]
    camera, timestamp = frame_metadata(keys)
    shard_of = {name: {row[1]: shard for shard, meta in index for row in meta} for name, (_, index) in indexed.items()}
    sliced = {name: "slice_wh" in run.parameters for name, (run, _) in indexed.items()}
    items = []
    for start in range(0, len(keys), frames_per_task):
        part = keys[start : start + frames_per_task]
        items.append({"start": start, "keys": part,
                      "shards": {name: sorted({shard_of[name][k] for k in part}) for name in paths}})
    classes = pool_classes(paths, handoff.class_names, spec) or ()  # the same classes as `load_pool` maps onto
    common = {"runs": paths, "sliced": sliced, "class_names": classes, "spec": spec}
    names = list(paths)
    with quiet_data_context():
        top = _pass(ray, items, {**common, "pairs": None}, len(names), len(keys)) if items else np.zeros((len(names), 0))
        # one box per frame holding the model's top score: all `confident_points` reads of a model
        stub = Pool(np.asarray(keys, object), np.array([f.image_wh for f in frames], np.int64).reshape(-1, 2),
                    {n: _max_boxes(top[i]) for i, n in enumerate(names)}, camera, timestamp, classes)
        points = confident_points(stub, operating=operating)
        pairs = {"weights": weights, "conf_hi": {n: p.hi for n, p in points.items()}, "conf_lo": {n: p.lo for n, p in points.items()}}
        n_pairs = len(names) * (len(names) - 1) // 2
        terms = _pass(ray, items, {**common, "pairs": pairs}, n_pairs * len(_TERMS), len(keys)) if items else None
    # the frames that get picked, and their boxes: the only ones read on the driver
    sparse = _sparse_pool(stub, paths, sliced, shard_of, spec, frames=np.zeros(0, np.int64))
    per_frame = all_pairs(sparse, **pairs)
    scored = [dataclasses.replace(pd, **{t: _typed(terms[k * len(_TERMS) + j], t) for j, t in enumerate(_TERMS)})
              for k, pd in enumerate(per_frame)] if terms is not None else per_frame
    _, _, mined, control = select_pairs(scored, camera, timestamp, budget=budget, diversity=diversity,
                                        both_confident=both_confident, hashes=None, seed=seed)
    sparse = _sparse_pool(stub, paths, sliced, shard_of, spec, frames=np.union1d(mined, control))
    boxes = all_pairs(sparse, **pairs)
    scored = [dataclasses.replace(b, **{t: getattr(s, t) for t in _TERMS}) for b, s in zip(boxes, scored, strict=True)]
    result = mine_pool(sparse, out_dir, budget=budget, weights=weights, diversity=diversity, both_confident=both_confident,
                       confident=points, seed=seed, scored=scored, spec=spec, timestamps=timestamps)
    return finish_mined(result, sparse, runs, handoff, spec=spec)


def _typed(values: np.ndarray, term: str) -> np.ndarray:
    """A term's per-frame values in `PairDiscrepancy`'s dtypes: float64, ``confident`` int64."""
    return values.astype(np.int64 if term == "confident" else np.float64)


def _max_boxes(top: np.ndarray) -> FlatDetections:
    """One (empty-area) box per frame with a score: the frame's top score; none where NaN."""
    has = ~np.isnan(top)
    return FlatDetections(np.r_[0, np.cumsum(has)].astype(np.int64), np.zeros((int(has.sum()), 4), np.float32),
                          top[has].astype(np.float32), np.zeros(int(has.sum()), np.int64))


def _sparse_pool(stub: Pool, runs: Mapping[str, str], sliced: Mapping[str, bool],
                 shard_of: Mapping[str, Mapping[str, str]], spec: PostprocessSpec, frames: np.ndarray) -> Pool:
    """The pool's frames with boxes read only for ``frames`` (every other frame empty)."""
    keys = stub.keys.tolist()
    picked = [keys[f] for f in frames.tolist()]
    flats = {}
    part = _part_pool(picked, {n: sorted({shard_of[n][k] for k in picked}) for n in runs}, runs, sliced,
                      stub.class_names, spec) if picked else None
    for name in runs:
        counts = np.zeros(len(keys), np.int64)
        if part is None:
            flats[name] = FlatDetections(np.zeros(len(keys) + 1, np.int64), np.zeros((0, 4), np.float32),
                                         np.zeros(0, np.float32), np.zeros(0, np.int64))
            continue
        sub = part.runs[name]
        counts[frames] = sub.counts()
        flats[name] = FlatDetections(np.r_[0, np.cumsum(counts)].astype(np.int64), sub.xyxy, sub.score, sub.class_id, sub.probs)
    return Pool(stub.keys, stub.image_wh, flats, stub.camera, stub.timestamp, stub.class_names)
