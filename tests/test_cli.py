"""The CLI as a user meets it: commands, one-line errors with documented exit codes, no debris."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vcodec.cli.main import app
from vcodec.errors import EXIT_BAD_BITSTREAM, EXIT_BAD_INPUT, EXIT_OUTPUT_EXISTS

runner = CliRunner()


def vcodec(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, code: int) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output


@pytest.fixture()
def vcx(tmp_path, clip_factory):
    src = clip_factory(tmp_path / "in.y4m", 64, 48, 18)
    result = vcodec("encode", src, "-o", tmp_path / "a.vcx", "--qp", "30")
    assert result.exit_code == 0, result.output
    return tmp_path / "a.vcx"


def test_encode_decode_info(vcx, tmp_path) -> None:
    assert "18 frames" in vcodec("decode", vcx, "-o", tmp_path / "b.y4m").stdout
    assert (tmp_path / "b.y4m").stat().st_size > 0
    result = vcodec("decode", vcx, "-o", tmp_path / "frames", "--format", "png")
    assert result.exit_code == 0 and len(list((tmp_path / "frames").glob("*.png"))) == 18
    summary = json.loads(vcodec("info", vcx, "--json").stdout)
    assert summary["frames"] == 18 and summary["gops"] == 2
    assert summary["header"]["width"] == 64 and summary["bytes"] == vcx.stat().st_size
    # --base auto: this moving test pattern goes to SVT-AV1, and the stream says so
    assert summary["header"]["base_codec"] == "av1" and "av1: 1" in vcodec("info", vcx).stdout


def test_help_and_version() -> None:
    assert "encode" in vcodec("--help").stdout
    assert "--qp" in vcodec("encode", "--help").stdout
    assert vcodec("--version").stdout.startswith("vcodec ")


def test_errors_are_one_line(vcx, tmp_path) -> None:
    one_line_error(
        vcodec("encode", tmp_path / "nope.mp4", "-o", tmp_path / "x.vcx"), EXIT_BAD_INPUT
    )
    (tmp_path / "text.mp4").write_text("not a video")
    one_line_error(
        vcodec("encode", tmp_path / "text.mp4", "-o", tmp_path / "x.vcx"), EXIT_BAD_INPUT
    )
    one_line_error(
        vcodec("decode", tmp_path / "text.mp4", "-o", tmp_path / "x.y4m"), EXIT_BAD_BITSTREAM
    )
    (tmp_path / "cut.vcx").write_bytes(vcx.read_bytes()[:-20])
    one_line_error(
        vcodec("decode", tmp_path / "cut.vcx", "-o", tmp_path / "x.y4m"), EXIT_BAD_BITSTREAM
    )
    one_line_error(vcodec("info", tmp_path / "cut.vcx"), EXIT_BAD_BITSTREAM)
    one_line_error(vcodec("decode", vcx, "-o", tmp_path / "x.avi"), EXIT_BAD_INPUT)
    (tmp_path / "b.y4m").write_text("keep")
    one_line_error(vcodec("decode", vcx, "-o", tmp_path / "b.y4m"), EXIT_OUTPUT_EXISTS)
    assert (tmp_path / "b.y4m").read_text() == "keep"
    assert not (tmp_path / "x.vcx").exists() and not (tmp_path / "x.y4m").exists()
    assert not list(tmp_path.glob(".*partial*"))
    one_line_error(vcodec("encode", vcx, "-o", tmp_path / "y.vcx", "--qp", "99"), EXIT_BAD_INPUT)


def test_tiny_bench(tmp_path, clip_factory) -> None:
    src = clip_factory(tmp_path / "in.y4m", 96, 64, 8)
    out = tmp_path / "bench"
    args = ("bench", src, "--qp", "24,30,36,42", "--frames", "8", "--out", out)
    result = vcodec(*args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "bench.json").read_text())
    assert {p["codec"] for p in report["points"]} == {"vcx", "x264", "x265", "x265-psnr", "av1"}
    assert len(report["points"]) == 20 and (out / "rd.png").stat().st_size > 1000
    assert all(p["bytes"] > 0 and 15 < p["psnr_yuv"] < 60 for p in report["points"])
    assert "x265" in report["settings"]["anchors"]["x265"]["version"]
    assert report["settings"]["anchors"]["x265-psnr"]["tune"] == "psnr"
    assert "BD" in result.stdout or "bd" in result.stdout.lower()
    # a second run replaces its own outputs (tests/test_map.py: and refuses beside other files)


def test_bench_base_sets_the_vcx_codecs_base_layer(tmp_path, clip_factory) -> None:
    src = clip_factory(tmp_path / "in.y4m", 64, 64, 4)
    args = ("bench", src, "--qp", "30,40", "--codecs", "vcx,x264", "--out", tmp_path / "b")
    result = vcodec(*args, "--base", "x264", "--device", "cpu")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert report["settings"]["vcx"]["base"] == "x264"
    assert report["settings"]["vcx"]["tune"] == "psnr" and report["settings"]["vcx"]["wiener"]
    one_line_error(vcodec(*args, "--base", "vp9", "--force"), EXIT_BAD_INPUT)
    encode = ("encode", src, "-o", tmp_path / "x.vcx", "--base", "vp9")
    result = vcodec(*encode)
    one_line_error(result, EXIT_BAD_INPUT)
    assert "auto, x265, x264, av1" in result.stderr and not (tmp_path / "x.vcx").exists()


def test_bench_takes_a_named_set_of_clips(tmp_path, clip_factory) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    clip_factory("clips/fixedcam_a.y4m", 64, 48, 4)
    clip_factory("clips/moving.y4m", 64, 48, 4)  # not a fixed camera: left out
    out = tmp_path / "bench"
    args = ("--clips", folder, "--codecs", "x264", "--qp", "32", "--frames", "4", "--out", out)
    result = vcodec("bench", "--set", "fixed-cameras", *args)
    assert result.exit_code == 0, result.output
    clips = {p["clip"] for p in json.loads((out / "bench.json").read_text())["points"]}
    assert clips == {"fixedcam_a"}
    assert vcodec("bench", "--set", "nope", *args).exit_code == EXIT_BAD_INPUT
