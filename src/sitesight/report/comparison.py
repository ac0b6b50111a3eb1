"""Two runs of the same kind side by side: metrics with deltas, per-class deltas, where they disagree.

Deltas are ``B - A`` (A = the first run given, usually the previous version). Classification runs
are lined up box by box on ``(image, box_index)``; detection runs on the ground-truth samples
(both must be evaluated on the same ground truth for the disagreement view); anomaly runs on the
image column; mining runs compare their top-ranked sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.errors import InputError
from sitesight.report.anomaly import load_anomaly
from sitesight.report.classification import class_names_of, load_classification, metrics_of, picture
from sitesight.report.crops import FrameCache, draw_thumbnail, palette
from sitesight.report.detection import GT_COLOUR, load_detection
from sitesight.report.error_examples import classify_errors
from sitesight.report.runs import ReportRun

__all__ = ["comparison_section"]

A_COLOUR = (52, 152, 219)
B_COLOUR = (230, 126, 34)


def _row(name: str, a: float | None, b: float | None) -> dict[str, Any]:
    delta = None if a is None or b is None else float(b) - float(a)
    return {"metric": name, "a": a, "b": b, "delta": delta}


def _classification(a: ReportRun, b: ReportRun, limit: int, cache: FrameCache) -> dict[str, Any]:
    da, db = load_classification(a), load_classification(b)
    names = class_names_of([da, db])
    ra, rb = metrics_of(da), metrics_of(db)
    headline = [_row("accuracy", ra.accuracy, rb.accuracy)]
    for scope, ma, mb in (("macro over active classes", ra.macro_active, rb.macro_active), ("macro over all classes", ra.macro_all, rb.macro_all)):
        headline += [_row(f"{k} ({scope})", ma.get(k), mb.get(k)) for k in ("ap", "f1", "precision", "recall")]
    per_class = []
    for n in names:
        ca, cb = ra.per_class[n], rb.per_class[n]
        per_class.append({"class": n, "support_a": ca.support, "support_b": cb.support,
                          "metrics": [_row(k, getattr(ca, k), getattr(cb, k)) for k in ("ap", "f1", "precision", "recall")]})
    index_b = {k: i for i, k in enumerate(db.keys())}
    pairs = [(i, index_b[k]) for i, k in enumerate(da.keys()) if k in index_b]
    pa, pb = da.y_pred, db.y_pred
    differ = [(i, j) for i, j in pairs if pa[i] != pb[j]]
    gap = [abs(da.probs[i, da.y_true[i]] - db.probs[j, db.y_true[j]]) for i, j in differ]
    cards = []
    expansion_a = a.config.get("checkpoint", {}).get("expansion")
    exp = {k: float(expansion_a[k]) for k in ("x", "top", "bottom")} if isinstance(expansion_a, dict) else None
    for idx in np.argsort(-np.array(gap), kind="stable")[:limit] if differ else []:
        i, j = differ[int(idx)]
        t = int(da.y_true[i])
        cards.append({"src": picture(da, i, cache, expansion=exp, label=names[t], colour=palette(t)),
                      "true": names[t], "a": names[pa[i]], "a_p": float(da.probs[i, pa[i]]),
                      "b": names[pb[j]], "b_p": float(db.probs[j, pb[j]]),
                      "where": Path(str(da.images[i])).name})
    return {"headline": headline, "per_class": per_class, "matched": len(pairs), "disagree": len(differ), "cards": cards}


def _detection(a: ReportRun, b: ReportRun, limit: int, cache: FrameCache, spec: str | None, conf: float | None,
               options: Mapping[str, Any] | None) -> dict[str, Any]:
    da, db = load_detection(a, spec=spec, conf=conf, options=options), load_detection(b, spec=spec, conf=conf, options=options)
    stat_names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
    headline = [_row(k, da.coco.get(k), db.coco.get(k)) for k in stat_names if k in da.coco and k in db.coco]
    headline += [_row(f"{k} @ conf {da.conf:g}", da.det.get(k), db.det.get(k)) for k in ("precision", "recall", "f1")]
    per_class = []
    for n in da.class_names:
        ca, cb = da.coco.get("per_class", {}).get(n, {}), db.coco.get("per_class", {}).get(n, {})
        per_class.append({"class": n, "metrics": [_row(k, ca.get(k), cb.get(k)) for k in ("AP", "AP50") if k in ca or k in cb]})
    cards: list[dict[str, Any]] = []
    disagree = None
    same_gt = da.dataset is not None and db.dataset is not None and len(da.dataset) == len(db.dataset)
    if same_gt and da.preds is not None and db.preds is not None:
        assert da.dataset is not None
        gts = [s.gt for s in da.dataset.samples]
        n = len(gts)
        ea = np.bincount([e.image for e in classify_errors(gts, da.preds, iou=da.iou, conf=da.conf)], minlength=n)
        eb = np.bincount([e.image for e in classify_errors(gts, db.preds, iou=db.iou, conf=db.conf)], minlength=n)
        diff = eb - ea
        disagree = int(np.sum(diff != 0))
        for i in np.argsort(-np.abs(diff), kind="stable")[:limit]:
            if diff[i] == 0:
                break
            frame = cache.get(da.dataset.image_path(da.dataset.samples[int(i)]))
            if frame is None:
                continue
            truth = [(xy, GT_COLOUR, "") for xy in gts[i].xyxy]
            pics = []
            for preds, colour, conf in ((da.preds[i], A_COLOUR, da.conf), (db.preds[i], B_COLOUR, db.conf)):
                keep = preds.score >= conf
                pics.append(draw_thumbnail(frame, truth + [(xy, colour, "") for xy in preds.xyxy[keep]], side=420))
            cards.append({"a_src": pics[0], "b_src": pics[1], "where": Path(str(da.dataset.samples[int(i)].path)).name,
                          "a_errors": int(ea[i]), "b_errors": int(eb[i])})
    return {"headline": headline, "per_class": per_class, "disagree": disagree, "cards": cards, "conf": da.conf, "data": (da, db)}


def _anomaly(a: ReportRun, b: ReportRun, limit: int) -> dict[str, Any]:
    from sitesight.evaluation.anomaly import anomaly_metrics

    (rows_a, la, sa), (rows_b, lb, sb) = load_anomaly(a), load_anomaly(b)
    ka, kb = la >= 0, lb >= 0
    if not ((la[ka] == 1).any() and (la[ka] == 0).any() and (lb[kb] == 1).any() and (lb[kb] == 0).any()):
        raise InputError("anomaly runs need normal and anomalous labels to be compared")
    ma, mb = anomaly_metrics(la[ka] == 1, sa[ka]), anomaly_metrics(lb[kb] == 1, sb[kb])
    headline = [_row(k, getattr(ma, k), getattr(mb, k)) for k in ("auroc", "aupr", "f1", "precision", "recall")]
    flags_a = {r["image"]: bool(s >= ma.threshold) for r, s in zip(rows_a, sa, strict=True)}
    rows = []
    for i, r in enumerate(rows_b):
        flag_b = bool(sb[i] >= mb.threshold)
        if r["image"] in flags_a and flags_a[r["image"]] != flag_b:
            rows.append({"image": r["image"], "label": ("normal", "anomalous", "unlabelled")[int(lb[i])], "a": flags_a[r["image"]], "b": flag_b})
    return {"headline": headline, "per_class": [], "disagree": len(rows), "flag_rows": rows[:limit], "cards": []}


def _mining(a: ReportRun, b: ReportRun, limit: int) -> dict[str, Any]:
    from sitesight.report.anomaly import read_table

    ta = read_table(a.artefact("ranking"), ("image", "score"))  # type: ignore[arg-type]
    tb = read_table(b.artefact("ranking"), ("image", "score"))  # type: ignore[arg-type]

    def top(rows: list[dict[str, str]]) -> list[str]:
        return [r["image"] for r in sorted(rows, key=lambda r: -float(r["score"]))[:limit]]

    sa, sb = set(top(ta)), set(top(tb))
    overlap = len(sa & sb) / max(1, len(sa | sb))
    return {"headline": [_row(f"top-{limit} overlap (Jaccard)", overlap, overlap)], "per_class": [],
            "disagree": len(sa ^ sb), "only_a": sorted(sa - sb), "only_b": sorted(sb - sa), "cards": []}


def _verdict(a: ReportRun, b: ReportRun, loaded: dict[str, Any], n_resamples: int) -> tuple[dict[str, Any] | None, str | None]:
    """The paired bootstrap verdict (`sitesight.compare`) as template values, or why there is none."""
    from sitesight.report.paired_runs import compare_anomaly_runs, compare_classification_runs, compare_detection_data
    from sitesight.report.verdict import verdict_section

    kw: dict[str, Any] = {"names": (a.name, b.name) if a.name != b.name else (f"A ({a.name})", f"B ({b.name})"),
                          "n_resamples": n_resamples}
    try:
        if a.kind == "detection":
            da, db = loaded["data"]
            if da.preds is None or db.preds is None:
                return None, "no verdict: a run holds only a stored evaluation (no boxes to resample)"
            cmp = compare_detection_data(da, db, **kw)
        elif a.kind == "classification":
            cmp = compare_classification_runs(a, b, **kw)
        elif a.kind == "anomaly":
            cmp = compare_anomaly_runs(a, b, **kw)
        else:
            return None, None
    except InputError as exc:
        return None, f"no verdict: {exc}"
    return verdict_section(cmp), None


def comparison_section(a: ReportRun, b: ReportRun, *, limit: int = 12, cache: FrameCache | None = None, spec: str | None = None,
                       conf: float | None = None, options: Mapping[str, Any] | None = None, n_resamples: int = 1000) -> dict[str, Any]:
    """The comparison of run ``b`` against run ``a`` (deltas ``B - A``) as plain values, led by the
    paired bootstrap verdict (`sitesight.compare`) when both runs have per-item predictions.

    Raises:
        InputError: the runs are of different kinds.
    """
    if a.kind != b.kind:
        raise InputError(f"cannot compare a {a.kind} run ({a.path}) with a {b.kind} run ({b.path})")
    cache = cache or FrameCache()
    body = {
        "classification": lambda: _classification(a, b, limit, cache),
        "detection": lambda: _detection(a, b, limit, cache, spec, conf, options),
        "anomaly": lambda: _anomaly(a, b, limit),
        "mining": lambda: _mining(a, b, limit),
    }[a.kind]()
    verdict, why = _verdict(a, b, body, n_resamples)
    body.pop("data", None)
    return {"kind": "comparison", "run_kind": a.kind, "a": a.name, "b": b.name, "verdict": verdict, "verdict_note": why, **body}
