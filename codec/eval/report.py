"""Bench results out: rate points, pooling, BD-rates, JSON, CSV and RD plots."""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import bjontegaard as bd
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vcodec import __version__

BD_MIN_POINTS = 4  # RD points per curve needed for a BD-rate
BD_METHOD = "akima"  # bjontegaard's interpolation
ALL_CLIPS = "ALL"  # the clip name of the rows averaged over clips
# the clip name of points pooled over clips: every clip's frames as one set (dataset-level
# task metrics, whose per-clip curves on a few labelled frames are noise)
POOLED = "POOLED"
JSON_DECIMALS = 4  # decimals kept in JSON floats (significant digits below 1)
PLOT_DPI = 120  # dots per inch of the RD plot
PLOT_PANEL_SIZE = (5.5, 4.0)  # inches, width x height of one subplot
BITS_PER_BYTE = 8

METRIC_LABELS = {
    "psnr_y": "PSNR-Y",
    "psnr_yuv": "PSNR-YUV",
    "msssim_y": "MS-SSIM",
    "psnr_roi": "ROI-PSNR",
    "map50": "mAP@0.5",
    "mota": "MOTA",
    "miou": "mIoU",
}


@dataclass
class BenchPoint:
    """One encode of one clip by one codec at one quality setting, and what it measured."""

    clip: str
    codec: str
    q: int  # the codec's quality knob (CRF, QP or vcx quality)
    bytes: int  # the whole file
    frames: int
    kbps: float
    bpp: float  # bits per luma pixel
    psnr_y: float  # dB
    psnr_yuv: float  # dB
    msssim_y: float
    enc_fps: float  # frames per second
    dec_fps: float  # frames per second
    # PSNR-Y (dB) inside and outside the clip's regions of interest (bench.ROI_REFERENCE);
    # None where the maps leave a region empty
    psnr_roi: float | None = None
    psnr_bg: float | None = None
    # --task detect: mAP (points, 0..100) at IoU 0.5 and over .5:.95; None without a task
    map50: float | None = None
    map: float | None = None
    # --task track: MOTA and IDF1 (points, MOTA may be negative); None otherwise
    mota: float | None = None
    idf1: float | None = None
    # --task segment: mIoU (points) of the class maps; None otherwise
    miou: float | None = None


POINT_FIELDS = tuple(f.name for f in fields(BenchPoint))
# the point fields that pool() averages over clips, weighted by frames
FRAME_MEANS = ("psnr_y", "psnr_yuv", "msssim_y")


def pool(points: Sequence[BenchPoint], **fields_: Any) -> BenchPoint:
    """One codec's points at one quality setting on several clips as one point of clip POOLED:
    bytes and frames summed, rate over the total duration and pixel count, speed over the
    total time, FRAME_MEANS weighted by frames; the region and task metrics are None unless
    given in ``fields_`` (they do not average: the caller measures them on the pooled set)."""
    first = points[0]
    if any((p.codec, p.q) != (first.codec, first.q) for p in points):
        raise ValueError("pool() takes one codec's points at one quality setting")
    bits = [BITS_PER_BYTE * p.bytes for p in points]
    seconds = sum(b / (1000 * p.kbps) for b, p in zip(bits, points, strict=True))
    pixels = sum(b / p.bpp for b, p in zip(bits, points, strict=True))
    frames = sum(p.frames for p in points)
    means = {m: sum(getattr(p, m) * p.frames for p in points) / frames for m in FRAME_MEANS}
    return BenchPoint(
        clip=POOLED,
        codec=first.codec,
        q=first.q,
        bytes=sum(p.bytes for p in points),
        frames=frames,
        kbps=sum(bits) / seconds / 1000,
        bpp=sum(bits) / pixels,
        enc_fps=frames / sum(p.frames / p.enc_fps for p in points),
        dec_fps=frames / sum(p.frames / p.dec_fps for p in points),
        **means,
        **fields_,
    )


def rate_kbps_bpp(
    n_bytes: int, frames: int, fps: Fraction, width: int, height: int
) -> tuple[float, float]:
    """(kbps, bpp) of n_bytes carrying frames of width x height at fps."""
    if frames <= 0 or fps <= 0 or width <= 0 or height <= 0:
        raise ValueError(f"no rate for {frames} frames of {width}x{height} at {fps} fps")
    bits = BITS_PER_BYTE * n_bytes
    duration_s = frames / Fraction(fps)
    return float(bits / duration_s / 1000), bits / (frames * width * height)


def monotone(rates: Iterable[float], values: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    """(rates, values) of the points that beat every cheaper point: increasing in both.

    Sorting by rate and keeping a point only when its value beats the running maximum makes
    the curve monotone (DESIGN §5) and drops duplicate rates (the best of a rate is kept).
    """
    pairs = sorted(zip(rates, values, strict=True), key=lambda rv: (rv[0], -rv[1]))
    kept_rates, kept_values, best = [], [], -math.inf
    for rate, value in pairs:
        if value > best and (not kept_rates or rate > kept_rates[-1]):
            kept_rates.append(rate)
            kept_values.append(value)
            best = value
    return np.asarray(kept_rates, dtype=np.float64), np.asarray(kept_values, dtype=np.float64)


def _monotone_curve(points: Iterable[BenchPoint], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(kbps, metric) of the points with a finite metric and rate, made monotone."""
    pairs = [(p.kbps, getattr(p, metric)) for p in points]
    pairs = [(r, m) for r, m in pairs if m is not None and r > 0 and math.isfinite(r * m)]
    return monotone([r for r, _ in pairs], [m for _, m in pairs])


def bd_rate(
    anchor: Sequence[BenchPoint], test: Sequence[BenchPoint], metric: str = "psnr_yuv"
) -> float | None:
    """BD-rate in percent of test against anchor on metric (negative: test needs fewer bits).

    Each curve is made monotone first (_monotone_curve) and needs BD_MIN_POINTS points after
    that. None when a curve is too short, the metric ranges do not overlap, or bjontegaard fails.
    """
    return _bjontegaard(bd.bd_rate, anchor, test, metric)


def bd_psnr(
    anchor: Sequence[BenchPoint], test: Sequence[BenchPoint], metric: str = "psnr_yuv"
) -> float | None:
    """BD-PSNR: the mean gain in metric of test over anchor at the same rate (as bd_rate)."""
    return _bjontegaard(bd.bd_psnr, anchor, test, metric)


def _bjontegaard(
    delta: Callable, anchor: Sequence[BenchPoint], test: Sequence[BenchPoint], metric: str
) -> float | None:
    if metric not in POINT_FIELDS:
        raise ValueError(f"unknown metric {metric!r}")
    rate_a, dist_a = _monotone_curve(anchor, metric)
    rate_t, dist_t = _monotone_curve(test, metric)
    if len(rate_a) < BD_MIN_POINTS or len(rate_t) < BD_MIN_POINTS:
        return None
    if min(dist_a[-1], dist_t[-1]) <= max(dist_a[0], dist_t[0]):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = delta(
                rate_a,
                dist_a,
                rate_t,
                dist_t,
                method=BD_METHOD,
                require_matching_points=False,
                min_overlap=0,
            )
    except (ValueError, AssertionError, ArithmeticError):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def unique(items: Iterable[str]) -> list[str]:
    """Items in order of first appearance, once each."""
    return list(dict.fromkeys(items))


def bd_table(
    points: Sequence[BenchPoint],
    anchors: Sequence[str] = ("x264", "x265"),
    metrics: Sequence[str] = ("psnr_y", "psnr_yuv", "msssim_y", "psnr_roi"),
) -> list[dict[str, Any]]:
    """BD-rate rows {clip, codec, anchor, metric, bd_rate_pct}: every codec against every anchor.

    Anchors are compared with each other too; a clip without an anchor gets no rows against it.
    The clip ALL_CLIPS holds the mean over clips, None unless every clip has a value; POOLED
    points are a clip of their own and stay out of that mean.
    """
    clips = unique(p.clip for p in points)
    codecs = unique(p.codec for p in points)
    by_key: dict[tuple[str, str], list[BenchPoint]] = {}
    for p in points:
        by_key.setdefault((p.clip, p.codec), []).append(p)
    rows: list[dict[str, Any]] = []
    for clip in clips:
        for anchor in anchors:
            for codec in codecs:
                if codec == anchor or (clip, codec) not in by_key or (clip, anchor) not in by_key:
                    continue
                for metric in metrics:
                    value = bd_rate(by_key.get((clip, anchor), []), by_key[(clip, codec)], metric)
                    rows.append(_bd_row(clip, codec, anchor, metric, value))
    clips = [c for c in clips if c != POOLED]
    return rows + _all_clip_rows(rows, clips, codecs, anchors, metrics)


def _bd_row(clip: str, codec: str, anchor: str, metric: str, value: float | None) -> dict[str, Any]:
    return {"clip": clip, "codec": codec, "anchor": anchor, "metric": metric, "bd_rate_pct": value}


def _all_clip_rows(
    rows: Sequence[dict[str, Any]],
    clips: Sequence[str],
    codecs: Sequence[str],
    anchors: Sequence[str],
    metrics: Sequence[str],
) -> list[dict[str, Any]]:
    """Mean over clips of each (codec, anchor, metric), None unless every clip has a value."""
    found = {(r["clip"], r["codec"], r["anchor"], r["metric"]): r["bd_rate_pct"] for r in rows}
    out = []
    for anchor in anchors:
        for codec in codecs:
            if codec == anchor or not any((c, codec, anchor, metrics[0]) in found for c in clips):
                continue
            for metric in metrics:
                values = [found.get((clip, codec, anchor, metric)) for clip in clips]
                mean = None if None in values else float(np.mean(values))
                out.append(_bd_row(ALL_CLIPS, codec, anchor, metric, mean))
    return out


def _jsonable(value: Any) -> Any:
    """Round floats (JSON_DECIMALS decimals, or as many significant digits below 1), NaN/inf to
    None, numpy scalars to Python, tuples to lists, recursively."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value == 0.0 or abs(value) >= 1.0:
            return round(value, JSON_DECIMALS)
        return float(f"{value:.{JSON_DECIMALS}g}")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Fraction | Path):
        return str(value)
    return value


def write_json(
    path: str | Path,
    points: Sequence[BenchPoint],
    bd_rows: Sequence[dict[str, Any]],
    settings: dict[str, Any],
    clips: Sequence[dict[str, Any]],
    per_class: Sequence[dict[str, Any]] = (),
    speed_map: Sequence[dict[str, Any]] = (),
    costs: Mapping[tuple[str, str, int], dict[str, Any]] | None = None,
) -> None:
    """Write the bench results: version, time, settings, clips, points, BD-rates and the
    speed/size map (pareto.map_rows); with a task, each point's per-class AP; ``costs`` by
    (clip, codec, q): a point's ``costs`` field (vcx: encode / decode seconds and stages)."""
    doc = {
        "vcodec_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": settings,
        "clips": list(clips),
        "points": [_point_entry(p, costs or {}) for p in points],
        "bd_rate": list(bd_rows),
        "map": list(speed_map),
    }
    if per_class:
        doc["per_class_ap50"] = list(per_class)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(doc), indent=2, default=str) + "\n", encoding="utf-8")


def _point_entry(point: BenchPoint, costs: Mapping[tuple, dict[str, Any]]) -> dict[str, Any]:
    entry = asdict(point)
    key = (point.clip, point.codec, point.q)
    return entry | ({"costs": costs[key]} if key in costs else {})


def write_csv(path: str | Path, points: Sequence[BenchPoint]) -> None:
    """One row per point; the header is BenchPoint's field names."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=POINT_FIELDS)
        writer.writeheader()
        writer.writerows(asdict(p) for p in points)


def read_csv(path: str | Path) -> list[BenchPoint]:
    """The points of a file written by write_csv."""
    types = {f.name: f.type for f in fields(BenchPoint)}
    cast = {"str": str, "int": int, "float": float, "float | None": float}
    with Path(path).open(newline="", encoding="utf-8") as f:
        return [
            BenchPoint(**{k: None if v == "" else cast[types[k]](v) for k, v in row.items()})
            for row in csv.DictReader(f)
        ]


def by_clip_codec(points: Iterable[BenchPoint]) -> dict[str, dict[str, list[BenchPoint]]]:
    """Points grouped by clip then codec (in order of first appearance), each sorted by bpp."""
    out: dict[str, dict[str, list[BenchPoint]]] = {}
    for p in points:
        out.setdefault(p.clip, {}).setdefault(p.codec, []).append(p)
    for codecs in out.values():
        for curve in codecs.values():
            curve.sort(key=lambda p: p.bpp)
    return out


def plot_rd(path: str | Path, points: Sequence[BenchPoint]) -> None:
    """RD curves as a PNG: per clip, PSNR-YUV, MS-SSIM-Y (and with a task, mAP@0.5) vs bpp,
    a line per codec."""
    if not points:
        raise ValueError("no points to plot")
    groups = by_clip_codec(points)
    panels = [("psnr_yuv", "PSNR-YUV (dB)"), ("msssim_y", "MS-SSIM (Y)")]
    panels += [
        (metric, label)
        for metric, label in (("map50", "mAP@0.5 (points)"), ("miou", "mIoU (points)"))
        if any(getattr(p, metric) is not None for p in points)
    ]
    width, height = PLOT_PANEL_SIZE
    fig = Figure(figsize=(len(panels) * width, height * len(groups)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(groups), len(panels), squeeze=False)
    for row, (clip, codecs) in zip(axes, groups.items(), strict=True):
        for ax, (metric, label) in zip(row, panels, strict=True):
            for codec, curve in codecs.items():
                shown = [p for p in curve if getattr(p, metric) is not None]
                ax.plot(
                    [p.bpp for p in shown], [getattr(p, metric) for p in shown], "o-", label=codec
                )
            ax.set_title(f"{clip}: {label} vs rate")
            ax.set_xlabel("bits per pixel")
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
            ax.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=PLOT_DPI)
