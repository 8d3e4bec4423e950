"""The bench's rich tables for the terminal: every point, the BD-rates and the speed/size map."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from vcodec.eval.pareto import MIN_SHARED_DB
from vcodec.eval.report import ALL_CLIPS, METRIC_LABELS, POOLED, BenchPoint, by_clip_codec, unique


def _points_table(points: Sequence[BenchPoint]) -> Table:
    table = Table(title="Rate and quality")
    names = ("clip", "codec", "q", "kbps", "bpp", "PSNR-Y", "PSNR-YUV", "MS-SSIM", "ROI", "BG")
    for name in names:
        table.add_column(name, justify="left" if name in ("clip", "codec") else "right")
    # the task columns that any point has: (header, field)
    task = [
        (header, name)
        for header, name in (
            ("mAP50", "map50"),
            ("MOTA", "mota"),
            ("IDF1", "idf1"),
            ("mIoU", "miou"),
        )
        if any(getattr(p, name) is not None for p in points)
    ]
    for header, _ in task:
        table.add_column(header, justify="right")
    table.add_column("enc fps", justify="right")
    table.add_column("dec fps", justify="right")
    groups = by_clip_codec(points)
    for index, (clip, codecs) in enumerate(sorted(groups.items())):
        if index:
            table.add_section()
        for codec, curve in sorted(codecs.items()):
            for p in curve:
                table.add_row(
                    clip,
                    codec,
                    str(p.q),
                    f"{p.kbps:.1f}",
                    f"{p.bpp:.4f}",
                    f"{p.psnr_y:.2f}",
                    f"{p.psnr_yuv:.2f}",
                    f"{p.msssim_y:.4f}",
                    _db_cell(p.psnr_roi),
                    _db_cell(p.psnr_bg),
                    *(_db_cell(getattr(p, name)) for _, name in task),
                    f"{p.enc_fps:.1f}",
                    f"{p.dec_fps:.1f}",
                )
    return table


def _db_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _bd_cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}%"


def _bd_rate_table(bd_rows: Sequence[dict[str, Any]]) -> Table:
    """Rows clip x codec; a column per (anchor, metric); "-" where a codec is its own anchor."""
    columns = unique((r["anchor"], r["metric"]) for r in bd_rows)
    keys = unique((r["clip"], r["codec"]) for r in bd_rows)
    found = {(r["clip"], r["codec"], r["anchor"], r["metric"]): r["bd_rate_pct"] for r in bd_rows}
    table = Table(title="BD-rate (negative: fewer bits for the same quality)")
    table.add_column("clip")
    table.add_column("codec")
    for anchor, metric in columns:
        table.add_column(f"vs {anchor} {METRIC_LABELS.get(metric, metric)}", justify="right")
    keys.sort(key=lambda k: (k[0] in (ALL_CLIPS, POOLED), k[0]))
    for index, (clip, codec) in enumerate(keys):
        if index and clip != keys[index - 1][0]:
            table.add_section()
        cells = [
            _bd_cell(found[(clip, codec, a, m)]) if (clip, codec, a, m) in found else "-"
            for a, m in columns
        ]
        table.add_row(clip, codec, *cells)
    return table


# the BD-rate metrics the terminal shows (the JSON has them all): PSNR-YUV and MS-SSIM, and
# ROI-PSNR and mAP where the run has an ROI codec or a task
SHOWN_BD_METRICS = ("psnr_yuv", "msssim_y", "psnr_roi", "map50", "mota", "miou")


def _map_table(rows: Sequence[dict[str, Any]], reference: str) -> Table:
    """pareto.map_rows: per clip, each codec's BD-rate beside its speed, fastest first."""
    table = Table(title=f"Speed/size map (BD-rate on PSNR-YUV vs {reference})")
    for name in ("clip", "codec", "preset", "BD-rate", "enc fps", "dec fps", "dominated by"):
        left = name in ("clip", "codec", "preset", "dominated by")
        table.add_column(name, justify="left" if left else "right")
    clips = unique(r["clip"] for r in rows)
    for index, clip in enumerate(sorted(clips, key=lambda c: (c == ALL_CLIPS, c))):
        if index:
            table.add_section()
        for r in sorted((r for r in rows if r["clip"] == clip), key=lambda r: -r["encode_fps"]):
            dominated = r["dominated_by"]
            table.add_row(
                clip,
                r["codec"],
                r.get("setting") or "",
                _bd_cell(r["bd_rate"]),
                f"{r['encode_fps']:.1f}",
                f"{r['decode_fps']:.1f}",
                "" if dominated is None else ", ".join(dominated) or "none",
            )
    thin = [
        f"{r['codec']} and {', '.join(r['thin'])} on {r['clip']}" for r in rows if r.get("thin")
    ]
    if thin:
        table.caption = (
            f"Curves sharing under {MIN_SHARED_DB:g} dB of PSNR-YUV: {'; '.join(thin)}. Their "
            "size verdict rests on the curves' ends: a wider --qp sweep judges it better."
        )
    return table


def _ms_per_frame(curve: Sequence[BenchPoint], field: str) -> float:
    """Milliseconds a frame over a curve's points, from their frames per second."""
    frames = sum(p.frames for p in curve)
    return 1000 * sum(p.frames / getattr(p, field) for p in curve) / frames


def _ablation_table(points: Sequence[BenchPoint], bd_rows: Sequence[dict[str, Any]]) -> Table:
    """Per clip and vcx variant that ran beside plain vcx (vcx-nowiener, vcx-flow, ...): vcx's
    BD-rate (PSNR-YUV) against it, and what vcx spends a frame more than it, encoding and
    decoding (the stage's seconds beside what it buys)."""
    found = {
        (r["clip"], r["anchor"]): r["bd_rate_pct"]
        for r in bd_rows
        if r["codec"] == "vcx" and r["metric"] == "psnr_yuv"
    }
    table = Table(title="Ablation: vcx against each variant (negative: vcx saves bits)")
    for name in ("clip", "variant", "BD-rate", "enc ms/frame", "dec ms/frame"):
        table.add_column(name, justify="left" if name in ("clip", "variant") else "right")
    groups = by_clip_codec(points)
    if len(groups) > 1:  # every clip's points together, beside the mean BD-rate
        groups[ALL_CLIPS] = {}
        for codecs in list(groups.values()):
            for codec, curve in codecs.items():
                groups[ALL_CLIPS].setdefault(codec, []).extend(curve)
    for clip, codecs in sorted(groups.items(), key=lambda item: (item[0] == ALL_CLIPS, item[0])):
        if "vcx" not in codecs:
            continue
        for codec, curve in sorted(codecs.items()):
            if not codec.startswith("vcx-") or (clip, codec) not in found:
                continue
            extra = [
                _ms_per_frame(codecs["vcx"], f) - _ms_per_frame(curve, f)
                for f in ("enc_fps", "dec_fps")
            ]
            table.add_row(clip, codec, _bd_cell(found[clip, codec]), *(f"{v:+.1f}" for v in extra))
    return table


def render_tables(
    points: Sequence[BenchPoint],
    bd_rows: Sequence[dict[str, Any]],
    speed_map: Sequence[dict[str, Any]] = (),
    reference: str = "x265",
) -> list[Table]:
    """Rich tables: every point (by clip, codec, bpp), the BD-rates (None as "n/a"), the
    ablation of the vcx variants that ran and, given its rows, the speed/size map."""
    roi = any(p.codec.endswith("-roi") for p in points)
    shown = [m for m in SHOWN_BD_METRICS if m != "psnr_roi" or roi]
    tables = [_points_table(points), _bd_rate_table([r for r in bd_rows if r["metric"] in shown])]
    ablation = _ablation_table(points, bd_rows)
    tables += [ablation] if ablation.row_count else []
    return tables + ([_map_table(speed_map, reference)] if speed_map else [])
