"""The speed/size map: each codec's BD-rate against x265 beside its encode speed, and pareto.png."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from vcodec.eval.anchors import CLASSICAL, MAP_REFERENCE, VCX_VARIANTS, base_of
from vcodec.eval.report import ALL_CLIPS, PLOT_DPI, POOLED, BenchPoint, bd_rate, unique

MAP_METRIC = "psnr_yuv"  # the map's BD-rate metric (DESIGN §5)
MAP_PANEL_SIZE = (6.5, 4.5)  # inches, width x height of one clip's map
# a direct BD-rate on curves sharing less of the metric's range than this (dB) rests on their
# ends (intel_car at qp 22-42: vcx and av1 share 0.6 dB; -14.6 % where the sweep reaches qp 51)
MIN_SHARED_DB = 1.0
VCX_COLOR = "tab:red"
CLASSICAL_COLORS = {"x264": "tab:blue", "x265": "tab:green", "av1": "tab:purple"}


def is_vcx(codec: str) -> bool:
    """Whether a bench codec name (vcx, vcx-nowiener:slow, ...) is a vcx point."""
    return codec.partition(":")[0] in VCX_VARIANTS


def map_rows(
    points: Sequence[BenchPoint],
    bd_rows: Sequence[dict[str, Any]],
    reference: str = MAP_REFERENCE,
    metric: str = MAP_METRIC,
    setting: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One row per clip and codec: {clip, codec, setting (its preset or --speed, from
    ``setting``), bd_rate (% against ``reference`` on
    ``metric``, from ``bd_rows``), encode_fps, decode_fps (frames over seconds of all its
    points), dominated_by, thin}; with several clips also rows of clip ALL (the mean BD-rate, the
    speed over every clip's points). ``dominated_by``: for a vcx row, the classical codecs of
    its clip at least as fast and as small and better in one (None where its BD-rate is). Size
    is judged by the vcx codec's BD-rate against that classical codec measured directly (on the
    quality range the two share; ALL: the mean over the clips), where there is one: two
    BD-rates against the reference cover the ranges each shares with it, which may differ
    (a vcx codec far below SVT-AV1's qualities looked smaller than it); else by those.
    ``thin``: for a vcx row, the classical codecs at least as fast whose curve shares less than
    MIN_SHARED_DB of ``metric`` with it (on some clip, for ALL): the verdict on them rests on
    the curves' ends, and a wider --qp sweep would judge it better."""
    points = [p for p in points if p.clip != POOLED]
    clips = unique(p.clip for p in points)
    found = {
        (r["clip"], r["codec"]): r["bd_rate_pct"]
        for r in bd_rows
        if r["anchor"] == reference and r["metric"] == metric
    }
    curves: dict[tuple[str, str], list[BenchPoint]] = {}
    for p in points:
        curves.setdefault((p.clip, p.codec), []).append(p)

    def direct(clip: str, codec: str, other: str) -> float | None:
        """``codec``'s BD-rate against ``other`` (ALL: the mean over the clips, if each has one)."""
        values = [
            bd_rate(curves.get((c, other), []), curves.get((c, codec), []), metric)
            for c in (clips if clip == ALL_CLIPS else [clip])
        ]
        return None if None in values else sum(values) / len(values)

    def thin(clip: str, codec: str, other: str) -> bool:
        """Whether the two curves share less than MIN_SHARED_DB of the metric on ``clip``
        (ALL: on any clip where both have points)."""
        for c in clips if clip == ALL_CLIPS else [clip]:
            a, b = curves.get((c, codec)), curves.get((c, other))
            if a and b and shared_range(a, b, metric) < MIN_SHARED_DB:
                return True
        return False

    rows = []
    for clip in clips + ([ALL_CLIPS] if len(clips) > 1 else []):
        shown = [p for p in points if clip in (ALL_CLIPS, p.clip)]
        for codec in unique(p.codec for p in shown):
            mine = [p for p in shown if p.codec == codec]
            have_all = clip != ALL_CLIPS or {p.clip for p in mine} == set(clips)
            if codec == reference:
                bd = 0.0 if have_all else None
            else:
                bd = found.get((clip, codec))
            frames = sum(p.frames for p in mine)
            rows.append(
                {
                    "clip": clip,
                    "codec": codec,
                    "setting": (setting or {}).get(codec),
                    "bd_rate": bd,
                    "encode_fps": frames / sum(p.frames / p.enc_fps for p in mine),
                    "decode_fps": frames / sum(p.frames / p.dec_fps for p in mine),
                    "dominated_by": None,
                    "thin": None,
                }
            )
    for row in rows:
        if is_vcx(row["codec"]) and row["bd_rate"] is not None:
            faster = [
                other
                for other in rows
                if other["clip"] == row["clip"]
                and not is_vcx(other["codec"])
                and other["encode_fps"] >= row["encode_fps"]  # (else no BD-rate to compute)
            ]
            row["dominated_by"] = [
                other["codec"]
                for other in faster
                if dominates(other, row, direct(row["clip"], row["codec"], other["codec"]))
            ]
            row["thin"] = [
                other["codec"]
                for other in faster
                if thin(row["clip"], row["codec"], other["codec"])
            ]
    return rows


def shared_range(a: Sequence[BenchPoint], b: Sequence[BenchPoint], metric: str) -> float:
    """How much of ``metric``'s range two curves share (negative: the gap between them)."""
    va, vb = ([getattr(p, metric) for p in c] for c in (a, b))
    return min(max(va), max(vb)) - max(min(va), min(vb))


def dominates(a: dict[str, Any], b: dict[str, Any], direct: float | None = None) -> bool:
    """Whether map row ``a`` is at least as small and as fast (encode fps) as ``b``, and
    strictly better in one of the two. Size: ``direct``, b's BD-rate against a (positive: a is
    smaller), where given; else the two rows' BD-rates against the map's reference."""
    if direct is None:
        if a["bd_rate"] is None or b["bd_rate"] is None:
            return False
        direct = b["bd_rate"] - a["bd_rate"]  # only its sign counts
    no_worse = direct >= 0 and a["encode_fps"] >= b["encode_fps"]
    better = direct > 0 or a["encode_fps"] > b["encode_fps"]
    return no_worse and better


def plot_pareto(
    path: str | Path, rows: Sequence[dict[str, Any]], reference: str = MAP_REFERENCE
) -> None:
    """pareto.png: per clip (and ALL), BD-rate against encode fps (log), one point per codec;
    each classical codec's presets joined by a line, vcx points as red stars."""
    clips = unique(r["clip"] for r in rows)
    width, height = MAP_PANEL_SIZE
    columns = min(2, len(clips))
    lines = -(-len(clips) // columns)
    fig = Figure(figsize=(columns * width, lines * height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(lines, columns, squeeze=False).ravel()
    for ax, clip in zip(axes, clips, strict=False):
        shown = [r for r in rows if r["clip"] == clip and r["bd_rate"] is not None]
        for family in unique(r["codec"].partition(":")[0] for r in shown):
            group = sorted(
                (r for r in shown if r["codec"].partition(":")[0] == family),
                key=lambda r: r["encode_fps"],
            )
            vcx = is_vcx(family)
            ax.plot(
                [r["encode_fps"] for r in group],
                [r["bd_rate"] for r in group],
                "*" if vcx else "o-" if family in CLASSICAL else "s--",  # s--: tuned / ROI
                markersize=12 if vcx else 6,
                color=VCX_COLOR if vcx else CLASSICAL_COLORS.get(base_of(family)),
                label=family,
            )
            for r in group:
                ax.annotate(
                    label(r), (r["encode_fps"], r["bd_rate"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=7,
                )  # fmt: skip
        ax.axhline(0.0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{clip}: speed/size map")
        ax.set_xlabel("encode frames per second (log)")
        ax.set_ylabel(f"BD-rate vs {reference}, PSNR-YUV (%): lower is smaller")
        ax.grid(True, which="both", alpha=0.3)
        if shown:
            ax.legend(fontsize=8)
    for ax in axes[len(clips) :]:
        ax.set_visible(False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=PLOT_DPI)


def label(row: dict[str, Any]) -> str:
    """A map point's name with its setting: av1:8 for plain av1 at --preset medium."""
    codec, setting = row["codec"], row.get("setting")
    return codec if ":" in codec or not setting else f"{codec}:{setting}"
