"""The bench's speed/size map: codec:preset names, the AV1 anchor's rate, dominance, pareto.png."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from vcodec.cli.main import app
from vcodec.errors import EXIT_BAD_INPUT, EXIT_OUTPUT_EXISTS, InputError
from vcodec.eval import anchors
from vcodec.eval.anchors import (
    OBU_SEQUENCE_HEADER,
    VCX_VARIANTS,
    CodecName,
    av1_obu_types,
    parse_codec,
    run_anchor,
    stream_bytes,
)
from vcodec.eval.bench import BenchConfig, vcx_config
from vcodec.eval.clips import Clip
from vcodec.eval.pareto import dominates, map_rows, plot_pareto
from vcodec.eval.report import ALL_CLIPS, BenchPoint, bd_table
from vcodec.eval.tables import render_tables
from vcodec.frames import Gop, VideoInfo
from vcodec.stages.base_layer import BaseEncoder

runner = CliRunner()


def vcodec(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_codec_names_with_presets_and_speeds(monkeypatch) -> None:
    assert parse_codec("x265:slow", "medium") == CodecName("x265", "slow")
    assert parse_codec("x265:medium", "medium") == CodecName("x265")  # the bench's preset
    assert parse_codec("x264:veryslow", "medium").preset("medium") == "veryslow"
    assert parse_codec("x265", "slow").preset("slow") == "slow"
    assert parse_codec("av1:6", "medium") == CodecName("av1", "6")
    assert parse_codec("av1:8", "medium").name == "av1"  # SVT-AV1's preset for medium
    assert parse_codec("av1", "slow").preset("slow") == "5"
    assert parse_codec("vcx:fast", "medium") == CodecName("vcx", "fast")
    assert parse_codec("vcx:medium", "medium").name == "vcx"  # the encoder's default speed
    assert parse_codec("vcx-nowiener:slow", "medium").speed() == "slow"
    for bad in ("av1:14", "av1:slow", "x265:6", "vcx:turbo", "vp9", "x265:"):
        with pytest.raises(InputError):
            parse_codec(bad, "medium")
    monkeypatch.setitem(VCX_VARIANTS, "vcx-roi-pure", {"roi": "motion", "mode": "pure"})
    monkeypatch.setattr(anchors, "FAMILIES", (*anchors.FAMILIES, "vcx-roi-pure"))
    with pytest.raises(InputError, match="--roi"):  # refused before the bench starts
        BenchConfig.from_strings(
            codecs="vcx-roi-pure", qps="30", frames=2, preset="medium", device="cpu"
        )
    config = BenchConfig.from_strings(
        codecs="vcx,vcx:medium,vcx:slow,x265,x265:medium,av1:4", qps="30,40", frames=2,
        preset="medium", device="cpu", base="av1",
    )  # fmt: skip
    # duplicates dropped; with --base av1, av1 at vcx's base preset joins as an anchor
    assert config.codecs == ("vcx", "vcx:slow", "x265", "av1:4", "av1")
    assert "av1" in config.anchors and config.setting("av1") == "8"
    enc = vcx_config(config, config.name("vcx:slow"), 30)
    assert (enc.speed, enc.base, enc.preset) == ("slow", "av1", "medium")
    assert vcx_config(config, config.name("vcx"), 30).speed == "medium"


def tiny_clip(frames: int = 3) -> Clip:
    rng = np.random.default_rng(7)
    planes = [
        (rng.integers(0, 256, (64, 64), np.uint8),) + (np.full((32, 32), 128, np.uint8),) * 2
        for _ in range(frames)
    ]
    info = VideoInfo(width=64, height=64, fps=Fraction(25), frame_count=frames)
    return Clip("tiny", info, [Gop.from_frames(planes)])


def test_av1_rate_counts_the_sequence_header() -> None:
    clip = tiny_clip()
    encoder = BaseEncoder("av1", 64, 64, Fraction(25), 40, "12")
    packets = encoder.encode(clip.gops[0]) + encoder.flush()
    types = av1_obu_types(packets[0])
    assert OBU_SEQUENCE_HEADER in types  # SVT-AV1 puts it in the first packet
    assert stream_bytes("av1", packets) == sum(map(len, packets))
    # a sequence header out of band (extradata) is counted as well
    without = [packets[0][:2] + packets[0][14:], *packets[1:]]  # TD, then drop the 12-byte OBU
    assert OBU_SEQUENCE_HEADER not in av1_obu_types(without[0])
    assert stream_bytes("av1", without, b"x" * 12) == sum(map(len, packets))
    decoded, n_bytes, _, _ = run_anchor(clip, CodecName("av1", "12"), 40, "medium")
    assert n_bytes == sum(map(len, packets)) and decoded[0].n_frames == 3


def row(codec: str, bd: float | None, fps: float, clip: str = "c") -> dict:
    return {"clip": clip, "codec": codec, "bd_rate": bd, "encode_fps": fps, "decode_fps": fps}


def test_dominance() -> None:
    assert dominates(row("av1", -5.0, 100.0), row("vcx", -3.0, 10.0))
    assert dominates(row("av1", -3.0, 100.0), row("vcx", -3.0, 10.0))  # as small, faster
    assert not dominates(row("av1", -3.0, 10.0), row("vcx", -3.0, 10.0))  # the same point
    assert not dominates(row("av1", -2.0, 100.0), row("vcx", -3.0, 10.0))  # bigger
    assert not dominates(row("av1", -5.0, 5.0), row("vcx", -3.0, 10.0))  # slower
    assert not dominates(row("av1", None, 100.0), row("vcx", -3.0, 10.0))


def test_dominance_by_a_direct_bd_rate() -> None:
    """Where a direct BD-rate of b against a is given, it decides the size (positive: a is
    smaller), whatever the two BD-rates against the reference say."""
    assert dominates(row("av1", -5.0, 100.0), row("vcx", -30.0, 10.0), direct=1.0)
    assert not dominates(row("av1", -30.0, 100.0), row("vcx", -5.0, 10.0), direct=-2.0)
    assert dominates(row("av1", -5.0, 100.0), row("vcx", -5.0, 10.0), direct=0.0)  # faster
    assert not dominates(row("av1", -5.0, 10.0), row("vcx", -5.0, 10.0), direct=0.0)


def test_the_map_judges_size_on_a_common_quality_range() -> None:
    """vcx's points lie below SVT-AV1's qualities: against x265 each BD-rate covers its own
    overlap with x265 (vcx -28 %, av1 -20 %), but where vcx and av1 meet (34-37 dB) av1 needs
    fewer bits, and it is faster: it dominates vcx."""

    def curve(codec: str, psnrs: list[int], factors: list[float], fps: float) -> list:
        rates = [f * 100 * 2 ** ((p - 31) / 3) for p, f in zip(psnrs, factors, strict=True)]
        return [
            BenchPoint(
                clip="c",
                codec=codec,
                q=40 - 4 * i,
                bytes=int(r),
                frames=10,
                kbps=r,
                bpp=r / 1e4,
                psnr_y=p - 1,
                psnr_yuv=p,
                msssim_y=0.9,
                enc_fps=fps,
                dec_fps=fps,
            )  # fmt: skip
            for i, (p, r) in enumerate(zip(psnrs, rates, strict=True))
        ]

    pts = curve("x265", [31, 34, 37, 40], [1.0] * 4, 200.0)
    pts += curve("av1", [34, 37, 40, 43], [0.8] * 4, 300.0)
    pts += curve("vcx", [28, 31, 34, 37], [0.3, 0.3, 0.9, 0.9], 5.0)
    found = {r["codec"]: r for r in map_rows(pts, bd_table(pts, ("x265",), ("psnr_yuv",)))}
    assert found["vcx"]["bd_rate"] < found["av1"]["bd_rate"] - 5  # smaller, against x265
    assert found["vcx"]["dominated_by"] == ["av1"]
    assert found["vcx"]["thin"] == []  # they share 34-37 dB
    pts = [p for p in pts if p.codec != "vcx"] + curve("vcx", [25, 28, 31, 34.5], [0.3] * 4, 5.0)
    rows = map_rows(pts, bd_table(pts, ("x265",), ("psnr_yuv",)))
    assert next(r for r in rows if r["codec"] == "vcx")["thin"] == ["av1"]  # 34-34.5 dB
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(render_tables(pts, bd_table(pts), rows, "x265 medium")[-1])
    assert "vcx and av1 on c" in console.export_text()


def points(clip: str, codec: str, scale: float, fps: float) -> list[BenchPoint]:
    """Four RD points: 3 dB per doubling of the rate; ``scale`` times x265's rate."""
    return [
        BenchPoint(
            clip=clip,
            codec=codec,
            q=40 - 4 * i,
            bytes=int(100 * scale * 2**i),
            frames=10,
            kbps=100 * scale * 2**i,
            bpp=0.01 * scale * 2**i,
            psnr_y=30 + 3 * i,
            psnr_yuv=31 + 3 * i,
            msssim_y=0.9,
            enc_fps=fps,
            dec_fps=2 * fps,
        )
        for i in range(4)
    ]


def test_map_rows_table_and_plot(tmp_path: Path) -> None:
    pts = []
    for clip, vcx_scale in (("a", 0.95), ("b", 0.6)):
        pts += points(clip, "x265", 1.0, 200.0) + points(clip, "x265:slow", 0.9, 90.0)
        pts += points(clip, "av1:6", 0.7, 150.0) + points(clip, "vcx", vcx_scale, 5.0)
        pts += points(clip, "vcx:fast", 1.1, 300.0)
    rows = map_rows(pts, bd_table(pts, ("x265",), ("psnr_yuv",)), setting={"x265": "medium"})
    found = {(r["clip"], r["codec"]): r for r in rows}
    assert found["a", "x265"]["bd_rate"] == 0.0 and found["a", "x265"]["setting"] == "medium"
    assert found["a", "av1:6"]["bd_rate"] == pytest.approx(-30.0, abs=0.5)
    assert found["a", "vcx"]["dominated_by"] == ["x265:slow", "av1:6"]  # x265 is bigger
    assert found["b", "vcx"]["dominated_by"] == []  # -40 %: smaller than every classical point
    assert found["b", "vcx:fast"]["dominated_by"] == []  # the fastest point
    assert found["a", "av1:6"]["dominated_by"] is None  # only vcx points are judged
    # ALL: the mean BD-rate, encode speed over every clip's points
    assert found[ALL_CLIPS, "vcx"]["bd_rate"] == pytest.approx(-22.5, abs=0.5)
    assert found[ALL_CLIPS, "vcx"]["encode_fps"] == pytest.approx(5.0)
    plot_pareto(tmp_path / "pareto.png", rows, "x265 medium")
    assert (tmp_path / "pareto.png").read_bytes().startswith(b"\x89PNG")
    tables = render_tables(pts, bd_table(pts), rows, "x265 medium")
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(tables[-1])
    text = console.export_text()
    assert "Speed/size map" in text and "x265:slow, av1:6" in text


def test_vcx_point_dominated_when_equal_bd_but_slower() -> None:
    pts = points("c", "x265", 1.0, 200.0) + points("c", "vcx", 1.0, 5.0)
    rows = map_rows(pts, bd_table(pts, ("x265",), ("psnr_yuv",)))
    vcx = next(r for r in rows if r["codec"] == "vcx")
    assert vcx["bd_rate"] == pytest.approx(0.0, abs=1e-6)
    assert len(rows) == 2  # one clip: no ALL rows


def test_bench_map_base_av1_and_outputs(tmp_path, clip_factory) -> None:
    src = clip_factory("in.y4m", 64, 64, 4)
    out = tmp_path / "map"
    args = ["bench", src, "--frames", "4", "--qp", "30,40", "--device", "cpu", "--out", out]
    result = vcodec(*args, "--codecs", "vcx:fast,x265,x265:ultrafast,av1:12", "--base", "av1")
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "bench.json").read_text())
    assert doc["settings"]["codecs"] == ["vcx:fast", "x265", "x265:ultrafast", "av1:12", "av1"]
    assert doc["settings"]["vcx"]["base"] == "av1"
    assert doc["settings"]["anchors"]["av1"]["preset"] == "8"
    assert doc["settings"]["anchors"]["av1"]["version"].startswith("SVT-AV1")
    assert {r["codec"] for r in doc["map"]} == set(doc["settings"]["codecs"])
    assert all(r["encode_fps"] > 0 for r in doc["map"])
    vcx = next(p for p in doc["points"] if p["codec"] == "vcx:fast")
    assert vcx["costs"]["encode_seconds"] > 0 and "base" in vcx["costs"]["stages"]
    assert all("costs" not in p for p in doc["points"] if p["codec"] != "vcx:fast")
    assert any(r["anchor"] == "av1" and r["codec"] == "vcx:fast" for r in doc["bd_rate"])
    assert (out / "pareto.png").stat().st_size > 1000 and "Speed/size map" in result.stdout
    # the same command again: the folder holds only bench outputs, which it replaces
    again = vcodec(*args, "--codecs", "x265", "--qp", "30")
    assert again.exit_code == 0, again.output
    assert json.loads((out / "bench.json").read_text())["settings"]["codecs"] == ["x265"]
    # beside a file the bench did not write: refused, unless --force (which keeps that file)
    (out / "notes.txt").write_text("mine")
    refused = vcodec(*args, "--codecs", "x265", "--qp", "30")
    assert refused.exit_code == EXIT_OUTPUT_EXISTS and "notes.txt" in refused.stderr
    assert vcodec(*args, "--codecs", "x264", "--qp", "30", "--force").exit_code == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert not list(out.glob(".*partial*"))


def test_bench_writes_nothing_on_bad_input(tmp_path) -> None:
    out = tmp_path / "deep" / "out"
    (tmp_path / "text.mp4").write_text("not a video")
    for src in (tmp_path / "missing.mp4", tmp_path / "text.mp4"):
        result = vcodec("bench", src, "--codecs", "x264", "--qp", "30", "--out", out)
        assert result.exit_code == EXIT_BAD_INPUT, result.output
    result = vcodec("bench", "--codecs", "x264:fastest", "--out", out)
    assert result.exit_code == EXIT_BAD_INPUT and "x264:fastest" in result.stderr
    assert not (tmp_path / "deep").exists()


def test_map_leaves_out_pooled_points() -> None:
    """A task run's POOLED points are a set of their own: the map has rows per clip only."""
    pts = points("a", "x265", 1.0, 200.0) + points("a", "vcx", 0.8, 5.0)
    pooled = [replace(p, clip="POOLED") for p in pts]
    rows = map_rows(pts + pooled, bd_table(pts + pooled, ("x265",), ("psnr_yuv",)))
    assert {r["clip"] for r in rows} == {"a"}


def test_speed_settings_pick_stage_sets_and_an_av1_base_drops_what_does_not_pay() -> None:
    from vcodec.pipeline.config import EncodeConfig

    fast, medium, slow = (
        EncodeConfig(base="x265", speed=s).validate() for s in ("fast", "medium", "slow")
    )
    assert fast.temporal and not fast.wiener and not fast.masks and not fast.flow
    assert medium.temporal and medium.wiener and not medium.post and not medium.flow
    assert slow.wiener and not slow.masks and not slow.post and not slow.predict_net
    assert EncodeConfig(speed="slow", masks=True).validate().masks  # asked by name: on
    on_av1 = EncodeConfig(base="av1").validate()
    assert not on_av1.temporal and not on_av1.wiener  # measured: neither pays on SVT-AV1
    assert EncodeConfig(base="av1", wiener=True).validate().wiener  # asked by name: on
    assert not EncodeConfig(base="av1", speed="slow").validate().wiener  # at every speed
    with pytest.raises(InputError, match="--speed"):
        EncodeConfig(speed="ludicrous").validate()
