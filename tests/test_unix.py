"""What a newcomer meets first: true timing from timestamps, pipes and devices as inputs and
outputs, names that say what a file is, and commands that start fast (no torch unless needed)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import AUDIO_RATE, synthetic_planes
from typer.testing import CliRunner

from vcodec.bitstream.container import Segment, VcxReader, VcxWriter
from vcodec.cli.main import app
from vcodec.errors import EXIT_BAD_BITSTREAM, EXIT_BAD_INPUT

runner = CliRunner()
AVI_TICKS = 50  # the AVI's time base: one packet a tick, frames on every other tick
AVI_FPS = 25


def vcodec(*args: object, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def warnings_of(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


def write_b_frame_avi(path: Path, frames: int) -> None:
    """A 25 fps AVI in a 1/50 time base with B-frames and PCM audio as long as the video: its
    header says 50 fps and counts an empty packet for every tick without a frame."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=AVI_TICKS)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.codec_context.time_base = Fraction(1, AVI_TICKS)
        video.options = {"bf": "2", "g": "12", "x264-params": "log=-1"}
        audio = out.add_stream("pcm_s16le", rate=AUDIO_RATE, layout="mono")
        for t, yuv in enumerate(synthetic_planes(64, 48, frames)):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane, data in zip(frame.planes, yuv, strict=True):
                rows = np.zeros((plane.height, plane.line_size), np.uint8)
                rows[:, : plane.width] = data
                plane.update(rows)
            frame.pts, frame.time_base = 2 * t, Fraction(1, AVI_TICKS)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        samples = frames * AUDIO_RATE // AVI_FPS
        sound = av.AudioFrame.from_ndarray(
            np.zeros((1, samples), np.int16), format="s16", layout="mono"
        )
        sound.sample_rate, sound.pts = AUDIO_RATE, 0
        out.mux(audio.encode(sound))
        out.mux(audio.encode(None))


def durations(path: Path) -> tuple[float, float]:
    """(video, audio) seconds of a decoded file, from its streams' packets."""
    ends = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.pts is None:
                continue
            end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            kind = packet.stream.type
            ends[kind] = max(ends.get(kind, 0.0), end)
    return ends["video"], ends["audio"]


def test_an_avi_with_b_frames_keeps_its_true_rate_and_audio_sync(tmp_path) -> None:
    src = tmp_path / "b.avi"
    write_b_frame_avi(src, 40)
    result = vcodec("encode", src, "-o", tmp_path / "b.vcx")
    assert result.exit_code == 0, result.output
    assert "40 frames" in result.stdout and not warnings_of(result), result.stderr
    with open(tmp_path / "b.vcx", "rb") as f:
        header = VcxReader(f).header
    assert Fraction(header.fps_num, header.fps_den) == AVI_FPS
    assert vcodec("decode", tmp_path / "b.vcx", "-o", tmp_path / "b.mkv").exit_code == 0
    video, audio = durations(tmp_path / "b.mkv")
    assert abs(video - 40 / AVI_FPS) < 1 / AVI_FPS and abs(video - audio) < 1 / AVI_FPS
    # --frames cuts the audio at the video's true duration
    assert vcodec("encode", src, "-o", tmp_path / "c.vcx", "--frames", "10").exit_code == 0
    vcodec("decode", tmp_path / "c.vcx", "-o", tmp_path / "c.mkv")
    video, audio = durations(tmp_path / "c.mkv")
    assert abs(video - 10 / AVI_FPS) < 1 / AVI_FPS and abs(audio - video) < 1 / AVI_FPS


def test_a_device_output_is_written_to_never_replaced(tmp_path, clip_factory) -> None:
    src = clip_factory("in.y4m", 64, 48, 8)
    before = os.stat("/dev/null")
    for args in (("--force",), ()):
        assert vcodec("encode", src, "-o", "/dev/null", *args).exit_code == 0
    assert vcodec("encode", src, "-o", tmp_path / "a.vcx").exit_code == 0
    assert vcodec("decode", tmp_path / "a.vcx", "-o", "/dev/null", "--force").exit_code == 0
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino
    link = tmp_path / "null.vcx"
    link.symlink_to("/dev/null")
    assert vcodec("encode", src, "-o", link, "--force").exit_code == 0
    assert link.is_symlink() and not list(tmp_path.glob(".*partial*"))


def test_a_fifo_is_read_and_written_in_place(tmp_path, clip_factory) -> None:
    src = clip_factory("in.y4m", 64, 48, 8)
    vcx = tmp_path / "a.vcx"
    assert vcodec("encode", src, "-o", vcx).exit_code == 0
    assert vcodec("decode", vcx, "-o", tmp_path / "ref.y4m").exit_code == 0
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    feeder = threading.Thread(target=lambda: fifo.write_bytes(vcx.read_bytes()))
    feeder.start()
    result = vcodec("decode", fifo, "-o", tmp_path / "fifo.y4m")
    feeder.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fifo.y4m").read_bytes() == (tmp_path / "ref.y4m").read_bytes()
    out_fifo = tmp_path / "out.fifo"
    os.mkfifo(out_fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(out_fifo.read_bytes()))
    reader.start()
    assert vcodec("decode", vcx, "-o", out_fifo).exit_code == 0
    reader.join(timeout=30)
    assert got == [(tmp_path / "ref.y4m").read_bytes()] and stat.S_ISFIFO(out_fifo.lstat().st_mode)


def test_dash_is_standard_input_and_output(tmp_path, clip_factory) -> None:
    src = clip_factory("in.y4m", 64, 48, 8)
    vcx = tmp_path / "a.vcx"
    assert vcodec("encode", src, "-o", vcx).exit_code == 0
    assert vcodec("decode", vcx, "-o", tmp_path / "ref.y4m").exit_code == 0
    reference = (tmp_path / "ref.y4m").read_bytes()
    piped = vcodec("decode", "-", "-o", tmp_path / "p.y4m", input=vcx.read_bytes())
    assert piped.exit_code == 0, piped.output
    assert (tmp_path / "p.y4m").read_bytes() == reference
    to_stdout = vcodec("decode", vcx, "-o", "-")
    assert to_stdout.exit_code == 0 and to_stdout.stdout_bytes == reference
    assert not Path("-").exists() and not (tmp_path / "-").exists()
    from_stdin = vcodec("encode", "-", "-o", tmp_path / "s.vcx", input=src.read_bytes())
    assert from_stdin.exit_code == 0, from_stdin.output
    assert (tmp_path / "s.vcx").read_bytes() == vcx.read_bytes()
    info = vcodec("info", "-", "--json", input=vcx.read_bytes())
    assert info.exit_code == 0 and '"frames": 8' in info.stdout


def test_an_encode_output_must_be_named_vcx(tmp_path, clip_factory) -> None:
    src = clip_factory("in.y4m", 64, 48, 8)
    for name in ("out.mp4", "out"):
        result = vcodec("encode", src, "-o", tmp_path / name)
        assert result.exit_code == EXIT_BAD_INPUT and "out.vcx" in result.stderr
        assert not (tmp_path / name).exists()


def test_a_bench_output_that_cannot_be_written_fails_first(tmp_path, clip_factory) -> None:
    src = clip_factory("in.y4m", 64, 48, 4)
    (tmp_path / "file").write_text("a file, not a folder")
    result = vcodec("bench", src, "--out", tmp_path / "file" / "bench", "--codecs", "x264")
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert "cannot write --out" in result.stderr and "internal" not in result.stderr


def test_info_runs_the_decoders_header_checks(tmp_path, clip_factory) -> None:
    src = clip_factory("in.y4m", 64, 48, 8)
    vcx = tmp_path / "a.vcx"
    assert vcodec("encode", src, "-o", vcx).exit_code == 0
    crafted = tmp_path / "crafted.vcx"
    with open(vcx, "rb") as f, open(crafted, "wb") as out:
        reader = VcxReader(f)
        writer = VcxWriter(out, reader.header)
        for chunk in reader:
            if isinstance(chunk, Segment):
                chunk = Segment(chunk.codec, chunk.width // 2, chunk.height, chunk.extradata)
            if type(chunk).__name__ != "End":
                writer.write(chunk)
        writer.close()
    for command in ("info", "decode"):
        args = (command, crafted) + (("-o", tmp_path / "x.y4m") if command == "decode" else ())
        result = vcodec(*args)
        assert result.exit_code == EXIT_BAD_BITSTREAM and "scale" in result.stderr, command


def test_help_has_no_bool_placeholders_and_keeps_its_width_in_a_pipe() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vcodec.cli.main", "decode", "--help"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "COLUMNS"},
    )
    assert result.returncode == 0 and "--lossless" in result.stdout
    assert "<bool>" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) > 100


NO_TORCH = """
import sys
from vcodec.cli.main import app
try:
    app(sys.argv[1:], prog_name="vcodec")
except SystemExit as exit:
    assert not exit.code, exit.code
print("torch" in sys.modules)
"""


@pytest.mark.parametrize("command", ["info", "decode"])
def test_info_and_a_decode_without_networks_import_no_torch(tmp_path, clip_factory, command):
    src = clip_factory("in.y4m", 64, 48, 8)
    vcx = tmp_path / "a.vcx"
    assert vcodec("encode", src, "-o", vcx).exit_code == 0
    args = [command, str(vcx)] + (["-o", str(tmp_path / "a.y4m")] if command == "decode" else [])
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
