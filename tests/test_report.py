"""Tests of the bench report: rates, BD-rate, the BD table, JSON, CSV, plot and tables."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import fields, replace
from fractions import Fraction
from pathlib import Path

import pytest
from rich.console import Console

from vcodec.eval.report import (
    ALL_CLIPS,
    POOLED,
    BenchPoint,
    bd_psnr,
    bd_rate,
    bd_table,
    plot_rd,
    pool,
    rate_kbps_bpp,
    read_csv,
    write_csv,
    write_json,
)
from vcodec.eval.tables import render_tables

KBPS = (100.0, 200.0, 400.0, 800.0, 1600.0)


def curve(clip: str, codec: str, scale: float = 1.0, offset_db: float = 0.0) -> list[BenchPoint]:
    """An RD curve: PSNR rises 3 dB per doubling of the rate (times scale)."""
    points = []
    for i, kbps in enumerate(KBPS):
        rate = kbps * scale
        points.append(
            BenchPoint(
                clip=clip,
                codec=codec,
                q=40 - 4 * i,
                bytes=int(rate * 250),
                frames=50,
                kbps=rate,
                bpp=rate / 5760.0,
                psnr_y=30.0 + 3 * i + offset_db,
                psnr_yuv=31.0 + 3 * i + offset_db,
                msssim_y=0.90 + 0.02 * i,
                enc_fps=50.0,
                dec_fps=120.0,
                psnr_roi=33.0 + 3 * i + offset_db,
                psnr_bg=None if clip == "clipB" else 29.0 + 3 * i + offset_db,
            )
        )
    return points


def test_rate_kbps_bpp() -> None:
    kbps, bpp = rate_kbps_bpp(10_000, 50, Fraction(25), 640, 360)
    assert kbps == pytest.approx(80_000 / 2 / 1000)
    assert bpp == pytest.approx(80_000 / (50 * 640 * 360))
    kbps, _ = rate_kbps_bpp(1000, 30, Fraction(30000, 1001), 64, 64)
    assert kbps == pytest.approx(8.0 / (30 * 1001 / 30000))
    with pytest.raises(ValueError):
        rate_kbps_bpp(1000, 0, Fraction(25), 64, 64)


def test_bd_rate_identical_and_scaled() -> None:
    anchor = curve("a", "x264")
    assert bd_rate(anchor, curve("a", "vcx")) == pytest.approx(0.0, abs=1e-9)
    assert bd_rate(anchor, curve("a", "vcx", scale=0.9)) == pytest.approx(-10.0, abs=0.5)
    assert bd_rate(anchor, curve("a", "vcx", scale=1.2), "msssim_y") == pytest.approx(20, abs=0.5)


def test_bd_rate_needs_points_and_overlap() -> None:
    anchor = curve("a", "x264")
    assert bd_rate(anchor, curve("a", "vcx")[:3]) is None
    assert bd_rate(anchor[:3], curve("a", "vcx")) is None
    assert bd_rate(anchor, curve("a", "vcx", offset_db=20.0)) is None
    with pytest.raises(ValueError):
        bd_rate(anchor, anchor, "nope")


def test_bd_rate_fits_monotonically_first() -> None:
    anchor = curve("a", "x264")
    test = curve("a", "vcx", scale=0.9)
    dip = replace(test[2], kbps=test[2].kbps * 1.1, psnr_yuv=test[0].psnr_yuv - 1)  # worse, dearer
    duplicate = replace(test[3], psnr_yuv=test[3].psnr_yuv - 0.5)  # same rate, lower quality
    shuffled = [test[4], dip, test[0], duplicate, test[1], test[3], test[2]]
    assert bd_rate(anchor, shuffled) == pytest.approx(bd_rate(anchor, test), abs=1e-9)
    # After the fix only 3 points are left: no BD-rate.
    flat = [replace(p, psnr_yuv=test[1].psnr_yuv) for p in test[1:]]
    assert bd_rate(anchor, test[:1] + flat) is None


def sample_points() -> list[BenchPoint]:
    return (
        curve("clipA", "x264")
        + curve("clipA", "x265", scale=0.8)
        + curve("clipA", "vcx", scale=0.7)
        + curve("clipB", "x264")
        + curve("clipB", "x265", scale=0.8)
        + curve("clipB", "vcx", scale=0.5)[:3]  # too few points on clip B
    )


def test_bd_table_rows_and_all_clips() -> None:
    rows = bd_table(sample_points())
    keys = {(r["clip"], r["codec"], r["anchor"], r["metric"]): r["bd_rate_pct"] for r in rows}
    assert keys[("clipA", "vcx", "x264", "psnr_yuv")] == pytest.approx(-30.0, abs=0.5)
    assert keys[("clipA", "x265", "x264", "psnr_y")] == pytest.approx(-20.0, abs=0.5)
    assert keys[("clipA", "x264", "x265", "msssim_y")] == pytest.approx(25.0, abs=0.5)
    assert keys[("clipB", "vcx", "x265", "psnr_yuv")] is None
    assert ("clipA", "x264", "x264", "psnr_y") not in keys
    assert keys[(ALL_CLIPS, "x265", "x264", "psnr_yuv")] == pytest.approx(-20.0, abs=0.5)
    assert keys[(ALL_CLIPS, "vcx", "x264", "psnr_yuv")] is None  # clip B has no value
    assert keys[("clipA", "vcx", "x264", "psnr_roi")] == pytest.approx(-30.0, abs=0.5)
    assert len(rows) == (2 + 1) * 4 * 4  # (2 clips + ALL) x 4 (codec, anchor) pairs x 4 metrics


def test_pool_sums_rates_and_weights_by_frames() -> None:
    small = BenchPoint("a", "x264", 32, 1000, 10, 2.0, 0.01, 30.0, 31.0, 0.9, 10.0, 100.0)
    # 20 frames of a clip at twice the frame rate and 4x the pixels: 8000 bytes, 64 kbps
    large = BenchPoint("b", "x264", 32, 8000, 20, 64.0, 0.005, 36.0, 37.0, 0.96, 40.0, 100.0)
    p = pool([small, large], map50=50.0)
    assert (p.clip, p.codec, p.q, p.bytes, p.frames) == (POOLED, "x264", 32, 9000, 30)
    assert p.kbps == pytest.approx(9000 * 8 / (4.0 + 1.0) / 1000)  # 4 s and 1 s of video
    assert p.bpp == pytest.approx(72000 / (800_000 + 12_800_000))
    assert p.psnr_y == pytest.approx(34.0) and p.msssim_y == pytest.approx(0.94)
    assert p.enc_fps == pytest.approx(30 / 1.5)
    assert (p.map50, p.map, p.psnr_roi) == (50.0, None, None)
    with pytest.raises(ValueError, match="one codec"):
        pool([small, replace(large, q=27)])


def test_pooled_clip_has_its_own_rows_outside_the_mean() -> None:
    points = curve("clipA", "x264") + curve("clipA", "vcx", scale=0.7)
    pooled = [replace(p, clip=POOLED) for p in curve("x", "x264") + curve("x", "vcx", scale=0.5)]
    rows = bd_table(points + pooled, metrics=("psnr_yuv",))
    keys = {(r["clip"], r["codec"], r["anchor"]): r["bd_rate_pct"] for r in rows}
    assert keys[(POOLED, "vcx", "x264")] == pytest.approx(-50.0, abs=0.5)
    assert keys[(ALL_CLIPS, "vcx", "x264")] == pytest.approx(-30.0, abs=0.5)  # clip A alone


def test_bd_psnr_is_the_gain_at_the_same_rate() -> None:
    anchor = curve("c", "vcx")
    assert bd_psnr(anchor, curve("c", "vcx-roi", offset_db=2.0), "psnr_roi") == pytest.approx(2.0)
    assert bd_psnr(anchor, curve("c", "x", scale=2.0), "psnr_y") == pytest.approx(-3.0)
    assert bd_psnr(curve("clipB", "a"), curve("clipB", "b"), "psnr_bg") is None  # no values


def test_json_and_csv_round_trip(tmp_path: Path) -> None:
    points = sample_points()
    rows = bd_table(points)
    settings = {"preset": "medium", "crf": (18, 23, 28), "fps": Fraction(25), "nan": float("nan")}
    write_json(tmp_path / "out" / "bench.json", points, rows, settings, [{"name": "clipA"}])
    doc = json.loads((tmp_path / "out" / "bench.json").read_text())
    keys = {"vcodec_version", "created", "settings", "clips", "points", "bd_rate", "map"}
    assert set(doc) == keys and doc["map"] == []  # no speed/size map given
    assert doc["settings"] == {"preset": "medium", "crf": [18, 23, 28], "fps": "25", "nan": None}
    assert len(doc["points"]) == len(points) and doc["points"][0]["clip"] == "clipA"
    assert doc["points"][0]["bpp"] == pytest.approx(points[0].bpp, rel=1e-3)
    assert doc["bd_rate"][0]["bd_rate_pct"] == round(rows[0]["bd_rate_pct"], 4)
    assert any(r["bd_rate_pct"] is None for r in doc["bd_rate"])

    write_csv(tmp_path / "bench.csv", points)
    with (tmp_path / "bench.csv").open(newline="") as f:
        assert next(csv.reader(f)) == [f.name for f in fields(BenchPoint)]
    again = read_csv(tmp_path / "bench.csv")
    assert again == points  # repr of a float reads back exactly


def test_plot_and_tables(tmp_path: Path) -> None:
    points = sample_points()
    plot_rd(tmp_path / "rd.png", points)
    data = (tmp_path / "rd.png").read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000
    points_table, bd_rate_table = render_tables(points, bd_table(points))
    assert points_table.row_count == len(points)
    headers = [c.header for c in bd_rate_table.columns]
    assert "vs x264 PSNR-YUV" in headers and "vs x265 MS-SSIM" in headers
    console = Console(width=250, record=True, file=io.StringIO())
    console.print(points_table, bd_rate_table)
    text = console.export_text()
    assert "n/a" in text and "-30.0" in text and ALL_CLIPS in text
    assert "vs x264 ROI-PSNR" not in headers  # no ROI codec in this run


def test_task_points_get_a_map_panel_and_column(tmp_path: Path) -> None:
    from PIL import Image

    points = sample_points()
    plot_rd(tmp_path / "plain.png", points)
    tasks = [replace(p, map50=20.0 + p.psnr_y, map=10.0 + p.psnr_y) for p in points]
    plot_rd(tmp_path / "task.png", tasks)
    widths = [Image.open(tmp_path / f"{n}.png").size[0] for n in ("plain", "task")]
    assert widths[1] > widths[0] * 1.4  # a third panel
    rows = bd_table(tasks, metrics=("psnr_yuv", "map50"))
    points_table, bd_rate_table = render_tables(tasks, rows)
    assert "mAP50" in [c.header for c in points_table.columns]
    assert "vs x264 mAP@0.5" in [c.header for c in bd_rate_table.columns]


def test_ablation_table_puts_a_stages_seconds_beside_its_bd_rate() -> None:
    """vcx against vcx without a stage: the BD-rate, and the milliseconds a frame vcx spends
    more (here the variant encodes at 100 fps against vcx's 50: +10 ms a frame)."""
    points = sample_points()
    points += [replace(p, codec="vcx-nowiener", enc_fps=100.0) for p in curve("clipA", "vcx")]
    rows = bd_table(points, anchors=("x264", "vcx-nowiener"))
    tables = render_tables(points, rows)
    assert len(tables) == 3
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(tables[2])
    text = console.export_text()
    assert "vcx-nowiener" in text and "-30.00%" in text and "+10.0" in text
    assert len(render_tables(sample_points(), bd_table(sample_points()))) == 2  # no variant
