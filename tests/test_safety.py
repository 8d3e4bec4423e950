"""Issue 17's findings 1-6, each as a test: outputs that are never lost or clobbered, no
leftovers after a signal, hostile streams refused before they allocate, the right kind of
error, and inputs whose changes are said out loud."""

from __future__ import annotations

import errno
import io
import json
import os
import resource
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import synthetic_planes, write_test_clip
from streams import split, with_header
from typer.testing import CliRunner

from vcodec.bitstream.container import (
    DEFAULT_MAX_PIXELS,
    ChunkType,
    Segment,
    StreamHeader,
    StreamLimits,
    VcxReader,
    encode_header,
)
from vcodec.bitstream.fields import ByteWriter
from vcodec.cli.main import app
from vcodec.errors import (
    EXIT_BAD_BITSTREAM,
    EXIT_BAD_INPUT,
    EXIT_MISSING_MODEL,
    EXIT_OUTPUT_EXISTS,
    EXIT_USAGE,
    LimitError,
    MalformedError,
    OutputError,
    OutputExistsError,
    TruncatedError,
    VcxError,
)
from vcodec.files import atomic_output, partial_path
from vcodec.pipeline.decoder import VcxDecoder

runner = CliRunner()
SIGNAL_WAIT_S = 120  # how long a test waits for a spawned vcodec to reach a point


def vcodec(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, code: int, *words: str) -> str:
    assert result.exit_code == code, (result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert "Traceback" not in result.output and "internal error" not in errors[0]
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def warnings_of(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


def spawn(*args: object, cwd: Path) -> subprocess.Popen:
    """`vcodec ARGS` in a new process, as the console script runs it (signal handlers on)."""
    command = [sys.executable, "-m", "vcodec.cli.main", *map(str, args)]
    return subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(condition, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + SIGNAL_WAIT_S
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture()
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "in.y4m"
    write_test_clip(path, 64, 48, 18)
    return path


@pytest.fixture()
def vcx(tmp_path: Path, clip: Path) -> Path:
    # x265: the damage below is made of HEVC packets and the codec's name
    result = vcodec("encode", clip, "-o", tmp_path / "a.vcx", "--qp", "30", "--base", "x265")
    assert result.exit_code == 0, result.output
    return tmp_path / "a.vcx"


def no_partials(folder: Path) -> bool:
    return not list(folder.glob(".*partial*"))


# --- 1. data loss ---------------------------------------------------------------------------


def test_force_never_deletes_a_folder_of_other_files(tmp_path, clip, vcx) -> None:
    victim = tmp_path / "victim"
    (victim / "deep").mkdir(parents=True)
    (victim / "notes.txt").write_text("mine")
    (victim / "deep" / "000000.png").write_text("not a frame of ours")
    one_line_error(vcodec("encode", clip, "-o", victim, "--force"), EXIT_OUTPUT_EXISTS, "victim")
    one_line_error(vcodec("decode", vcx, "-o", victim, "--force"), EXIT_OUTPUT_EXISTS, "2 entries")
    assert (victim / "notes.txt").read_text() == "mine" and (victim / "deep").is_dir()
    assert no_partials(tmp_path)


def test_force_replaces_a_file_and_a_folder_of_frames(tmp_path, clip, vcx) -> None:
    frames = tmp_path / "frames"
    assert vcodec("decode", vcx, "-o", frames).exit_code == 0
    assert vcodec("decode", vcx, "-o", frames, "--force").exit_code == 0
    assert len(list(frames.glob("*.png"))) == 18
    assert vcodec("encode", clip, "-o", frames, "--force").exit_code == 0
    assert frames.is_file() and VcxReader(frames.open("rb")).header.width == 64
    assert no_partials(tmp_path)


def test_the_input_is_never_the_output(tmp_path, clip, vcx) -> None:
    before = clip.read_bytes()
    one_line_error(vcodec("encode", clip, "-o", clip, "--force"), EXIT_OUTPUT_EXISTS, "input")
    alias = tmp_path / "alias.y4m"
    os.link(clip, alias)  # the same file under another name
    one_line_error(vcodec("encode", clip, "-o", alias, "--force"), EXIT_OUTPUT_EXISTS, "input")
    one_line_error(vcodec("decode", vcx, "-o", vcx, "--format", "y4m", "--force"), 6, "input")
    assert clip.read_bytes() == before and VcxReader(vcx.open("rb")).header.width == 64


# --- 2. races -------------------------------------------------------------------------------


def test_a_second_writer_of_the_same_output_fails_at_once(tmp_path, clip) -> None:
    out = tmp_path / "out.vcx"
    with atomic_output(out) as tmp:
        tmp.write_bytes(b"first run")
        one_line_error(vcodec("encode", clip, "-o", out), EXIT_OUTPUT_EXISTS, "another vcodec")
        one_line_error(vcodec("encode", clip, "-o", out, "--force"), EXIT_OUTPUT_EXISTS)
    assert out.read_bytes() == b"first run" and no_partials(tmp_path)


def test_an_output_made_meanwhile_is_not_clobbered(tmp_path) -> None:
    out = tmp_path / "out.vcx"
    with pytest.raises(OutputExistsError, match="created by another program"):
        with atomic_output(out) as tmp:
            tmp.write_bytes(b"ours")
            out.write_bytes(b"theirs")
    assert out.read_bytes() == b"theirs" and no_partials(tmp_path)
    with pytest.raises(OutputExistsError, match="created by another program"):
        with atomic_output(tmp_path / "frames", directory=True) as tmp:
            (tmp_path / "frames").mkdir()
            (tmp_path / "frames" / "x.txt").write_text("theirs")
    assert (tmp_path / "frames" / "x.txt").exists() and no_partials(tmp_path)


def test_two_encodes_to_one_new_output_one_succeeds(tmp_path) -> None:
    write_test_clip(tmp_path / "long.y4m", 320, 240, 48)  # long enough to overlap
    runs = [spawn("encode", "long.y4m", "-o", "out.vcx", cwd=tmp_path) for _ in range(2)]
    results = [(p.wait(SIGNAL_WAIT_S), p.communicate()[1]) for p in runs]
    assert sorted(code for code, _ in results) == [0, EXIT_OUTPUT_EXISTS], results
    failed = next(stderr for code, stderr in results if code)
    assert len(failed.strip().splitlines()) == 1 and "out.vcx" in failed
    assert VcxReader((tmp_path / "out.vcx").open("rb")).header.width == 320
    assert no_partials(tmp_path)


# --- 3. leftovers ---------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_leaves_nothing_behind(tmp_path, signum) -> None:
    # long enough that the signal comes mid-encode even when another job slows the polling
    # (96 frames once finished first on a loaded machine); the signal ends it early anyway
    write_test_clip(tmp_path / "long.y4m", 320, 240, 288)
    run = spawn("encode", "long.y4m", "-o", "out.vcx", cwd=tmp_path)
    wait_for(lambda: partial_path(tmp_path / "out.vcx").exists(), run)
    run.send_signal(signum)
    _, stderr = run.communicate(timeout=SIGNAL_WAIT_S)
    assert run.returncode == 128 + signum, stderr
    assert stderr.strip().splitlines() == [f"error: interrupted by {signum.name}"]
    assert not (tmp_path / "out.vcx").exists() and no_partials(tmp_path)


def test_a_killed_runs_partial_is_cleaned_by_the_next_run(tmp_path, clip, vcx) -> None:
    write_test_clip(tmp_path / "long.y4m", 320, 240, 96)
    run = spawn("encode", "long.y4m", "-o", "out.vcx", cwd=tmp_path)
    wait_for(lambda: partial_path(tmp_path / "out.vcx").exists(), run)
    run.kill()
    run.wait()
    assert partial_path(tmp_path / "out.vcx").exists()  # SIGKILL cannot be caught
    assert vcodec("encode", clip, "-o", tmp_path / "out.vcx").exit_code == 0
    assert no_partials(tmp_path)
    stale = partial_path(tmp_path / "frames")  # a killed PNG decode's frames
    stale.mkdir()
    (stale / "000099.png").write_bytes(b"stale")
    assert vcodec("decode", vcx, "-o", tmp_path / "frames").exit_code == 0
    assert len(list((tmp_path / "frames").iterdir())) == 18 and no_partials(tmp_path)
    stale.mkdir()
    (stale / "mine.txt").write_text("not vcodec's")
    one_line_error(vcodec("decode", vcx, "-o", tmp_path / "frames", "--force"), 6, stale.name)


# --- 4. memory bombs ------------------------------------------------------------------------

MAXRSS_SCRIPT = """
import resource, sys
from vcodec.cli.main import run
try:
    run()
finally:
    print("maxrss_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def test_a_huge_header_is_refused_before_allocating(tmp_path, vcx) -> None:
    data = vcx.read_bytes()
    for side in (65535, 8192):
        bomb = tmp_path / f"bomb{side}.vcx"
        bomb.write_bytes(with_header(data, width=side, height=side))
        one_line_error(vcodec("decode", bomb, "-o", tmp_path / "x.y4m"), 4, "--max-pixels")
        one_line_error(vcodec("info", bomb), EXIT_BAD_BITSTREAM, f"{side}x{side}")
    run = subprocess.run(
        [sys.executable, "-c", MAXRSS_SCRIPT, "decode", "bomb8192.vcx", "-o", "x.y4m"],
        cwd=tmp_path, capture_output=True, text=True, timeout=SIGNAL_WAIT_S,
    )  # fmt: skip
    assert run.returncode == EXIT_BAD_BITSTREAM, run.stderr
    peak_mib = int(run.stderr.split("maxrss_kib")[-1]) / 1024
    assert peak_mib < 1500, peak_mib  # the interpreter, torch and PyAV; not a 7 GB frame
    assert not (tmp_path / "x.y4m").exists() and no_partials(tmp_path)


def test_max_pixels_admits_8k_and_can_be_lowered(tmp_path, vcx) -> None:
    assert DEFAULT_MAX_PIXELS >= 8192 * 4320
    eight_k = with_header(vcx.read_bytes(), width=8192, height=4320)
    assert VcxReader(io.BytesIO(eight_k)).header.width == 8192  # within the default limits
    with pytest.raises(LimitError):
        VcxReader(io.BytesIO(eight_k), StreamLimits(max_pixels=8192 * 4320 - 1))
    one_line_error(vcodec("decode", vcx, "-o", tmp_path / "x.y4m", "--max-pixels", 3000), 4)
    assert vcodec("decode", vcx, "-o", tmp_path / "x.y4m", "--max-pixels", 3072).exit_code == 0


class _Pipe(io.RawIOBase):
    """A stream that cannot seek, like a pipe: the reader cannot know the file's size."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_chunk_lengths_are_checked_against_the_file(tmp_path) -> None:
    import tracemalloc

    header = encode_header(StreamHeader(width=64, height=48, fps_num=25, fps_den=1))
    liar = header + ByteWriter().u8(ChunkType.BASE).varint(200 << 20).getvalue() + b"x" * 10
    with pytest.raises(TruncatedError, match="past the end of the file"):
        list(VcxReader(io.BytesIO(liar)))
    tracemalloc.start()
    with pytest.raises(TruncatedError):
        list(VcxReader(io.BufferedReader(_Pipe(liar))))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20, peak  # pieces of what is there, not the 200 MB the length claims


def _big_hevc(side: int, frames: int, height: int | None = None) -> bytes:
    """Annex B HEVC of ``frames`` black ``side`` x ``side`` (or x ``height``) frames: a few
    hundred bytes."""
    height = height or side
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="hevc") as out:
        stream = out.add_stream("libx265", rate=25)
        stream.width, stream.height = side, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "x265-params": "log-level=none"}
        black = np.zeros((height * 3 // 2, side), np.uint8)
        for t in range(frames):
            frame = av.VideoFrame.from_ndarray(black, format="yuv420p")
            frame.pts = t
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def test_a_base_layer_larger_than_its_segment_allocates_nothing(vcx) -> None:
    import tracemalloc

    raw = split(vcx.read_bytes())
    chunks = [c for c in raw.chunks if c[0] != ChunkType.BASE]
    at = next(i for i, c in enumerate(chunks) if c[0] == ChunkType.SEGMENT) + 1
    raw.chunks = chunks[:at] + [(ChunkType.BASE, _big_hevc(1024, 32))] + chunks[at:]
    tracemalloc.start()
    with pytest.raises(VcxError):
        list(VcxDecoder(io.BytesIO(raw.to_bytes()), "cpu").gops())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20, f"{peak >> 20} MiB for 5 KB of base layer"  # 32 1024x1024 frames


def test_base_frames_far_ahead_of_their_gop_chunks_are_refused(vcx, monkeypatch) -> None:
    """Frames of the right size but more than a look-ahead's worth before any GOP chunk: the
    decoder stops instead of holding them (the cap here 2 GOPs, 32 frames)."""
    from vcodec.pipeline import decoder

    monkeypatch.setattr(decoder, "WAITING_PIXELS", 0)
    monkeypatch.setattr(decoder, "WAITING_GOPS", 2)
    assert len(list(VcxDecoder(io.BytesIO(vcx.read_bytes()), "cpu").gops())) == 2  # 18 frames
    segment = next(c for c in VcxReader(io.BytesIO(vcx.read_bytes())) if isinstance(c, Segment))
    raw = split(vcx.read_bytes())
    at = next(i for i, c in enumerate(raw.chunks) if c[0] == ChunkType.SEGMENT) + 1
    extra = (ChunkType.BASE, _big_hevc(segment.width, 40, segment.height))
    raw.chunks = raw.chunks[:at] + [extra] + raw.chunks[at:]
    with pytest.raises(MalformedError, match="ahead of its GOP chunks"):
        list(VcxDecoder(io.BytesIO(raw.to_bytes()), "cpu").gops())


# --- 5. the right kind of error -------------------------------------------------------------


def test_usage_errors_are_one_line(tmp_path, clip) -> None:
    one_line_error(vcodec("encode", clip, "-o", tmp_path / "x.vcx", "--qp", "abc"), EXIT_USAGE)
    one_line_error(vcodec("encode", clip), EXIT_USAGE, "--output")
    one_line_error(vcodec("decode"), EXIT_USAGE)
    one_line_error(vcodec("info", clip, "--max-pixels", "0"), EXIT_USAGE)


def test_usage_errors_are_one_line_from_the_console_script(tmp_path, clip) -> None:
    run = spawn("encode", clip, "--qp", "abc", "-o", "x.vcx", cwd=tmp_path)
    _, stderr = run.communicate(timeout=SIGNAL_WAIT_S)
    assert run.returncode == EXIT_USAGE and len(stderr.strip().splitlines()) == 1, stderr


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (root ignores modes: /sys refuses it)."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o555)
        return folder
    if os.access("/sys", os.W_OK) and Path("/sys/class").is_dir():
        try:
            os.close(os.open("/sys/.vcodec-probe", os.O_CREAT | os.O_WRONLY))
        except OSError:
            return Path("/sys")
    pytest.skip("no folder this process cannot write to")


def test_an_unwritable_folder_is_exit_3(tmp_path, clip, vcx) -> None:
    folder = unwritable_folder(tmp_path)
    one_line_error(vcodec("encode", clip, "-o", folder / "x.vcx"), EXIT_BAD_INPUT, "cannot write")
    one_line_error(vcodec("decode", vcx, "-o", folder / "f"), EXIT_BAD_INPUT, "cannot write")


def test_a_full_disk_is_exit_3(tmp_path, clip, vcx, monkeypatch) -> None:
    from vcodec import writers as video_io
    from vcodec.pipeline import stream

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(stream.shutil, "copyfileobj", full)
    result = vcodec("encode", clip, "-o", tmp_path / "x.vcx")
    one_line_error(result, EXIT_BAD_INPUT, "No space left")
    monkeypatch.setattr(video_io.PngWriter, "_write_frame", full)
    one_line_error(vcodec("decode", vcx, "-o", tmp_path / "f"), EXIT_BAD_INPUT, "No space left")
    assert not (tmp_path / "x.vcx").exists() and no_partials(tmp_path)


def test_a_file_size_limit_is_exit_3(tmp_path, clip) -> None:
    """A real write error in a real process: RLIMIT_FSIZE makes writes past 1 KB fail (the
    stream is about 1.5 KB)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    command = [sys.executable, "-m", "vcodec.cli.main", "encode", str(clip), "-o", "x.vcx"]
    run = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, preexec_fn=limit,
        timeout=SIGNAL_WAIT_S,
    )  # fmt: skip
    assert run.returncode == EXIT_BAD_INPUT, run.stderr
    assert run.stderr.strip().splitlines() == ["error: cannot write x.vcx: File too large"]
    assert not (tmp_path / "x.vcx").exists() and no_partials(tmp_path)


def _replace_segment_codec(data: bytes, codec: bytes) -> bytes:
    raw = split(data)
    for i, (ctype, payload) in enumerate(raw.chunks):
        if ctype == ChunkType.SEGMENT:
            raw.chunks[i] = (ctype, payload[:1] + codec + payload[1 + len(codec) :])
    return raw.to_bytes()


def test_base_codec_names_are_bitstream_errors(tmp_path, vcx) -> None:
    damaged = tmp_path / "damaged.vcx"
    damaged.write_bytes(_replace_segment_codec(vcx.read_bytes(), b"*265"))
    message = one_line_error(vcodec("decode", damaged, "-o", tmp_path / "x.y4m"), 4, "SEGMENT")
    assert "choose" not in message
    one_line_error(vcodec("info", damaged), EXIT_BAD_BITSTREAM, "SEGMENT")
    raw = split(vcx.read_bytes())
    raw.metadata = raw.metadata.replace(b"\x04x265", b"\x04*265")
    damaged.write_bytes(raw.to_bytes())
    one_line_error(vcodec("decode", damaged, "-o", tmp_path / "x.y4m"), 4, "base codec")
    one_line_error(vcodec("info", damaged), EXIT_BAD_BITSTREAM, "base codec")


def test_info_says_when_a_model_is_missing(tmp_path, vcx) -> None:
    unknown = tmp_path / "unknown.vcx"
    unknown.write_bytes(with_header(vcx.read_bytes(), models={"mystery-v9": "00000000"}))
    one_line_error(vcodec("info", unknown), EXIT_MISSING_MODEL, "mystery-v9")
    other = tmp_path / "other.vcx"
    other.write_bytes(with_header(vcx.read_bytes(), models={"predict-v1": "deadbeef"}))
    result = vcodec("info", other, "--json")
    one_line_error(result, EXIT_MISSING_MODEL, "predict-v1")
    assert "predict-v1" in json.loads(result.stdout)["missing_models"][0]
    one_line_error(vcodec("decode", other, "-o", tmp_path / "x.y4m"), EXIT_MISSING_MODEL)


# --- 6. silent changes to the input ---------------------------------------------------------


def _write_mp4(path: Path, pts: list[int], time_base: Fraction, faststart: bool = False) -> None:
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = time_base
        stream.options = {"crf": "18", "preset": "veryfast", "x264-params": "log=-1"}
        for t, yuv in zip(pts, synthetic_planes(64, 48, len(pts)), strict=True):
            planes = np.concatenate([p.ravel() for p in yuv]).reshape(-1, 64)
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts, frame.time_base = t, time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _write_ffv1(path: Path, pix_fmt: str, frames: int = 4) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        for t in range(frames):
            rgb = np.full((48, 64, 3), 40 * t, np.uint8)
            rgb[:, :, 0] = np.arange(64, dtype=np.uint8)[None] * 3
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            frame.pts = t
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _notes(path: Path) -> list[str]:
    return json.loads(vcodec("info", path, "--json").stdout)["header"]["notes"]


def test_a_truncated_input_is_said(tmp_path) -> None:
    whole = tmp_path / "whole.mp4"
    _write_mp4(whole, list(range(100)), Fraction(1, 25), faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    result = vcodec("encode", cut, "-o", tmp_path / "cut.vcx")
    assert result.exit_code == 0, result.output
    [warning] = warnings_of(result)
    assert "truncated" in warning and "100 frames" in warning
    assert any("truncated" in n for n in _notes(tmp_path / "cut.vcx"))
    result = vcodec("encode", whole, "-o", tmp_path / "whole.vcx")
    assert result.exit_code == 0 and not warnings_of(result) and not _notes(tmp_path / "whole.vcx")


def test_a_variable_frame_rate_is_said(tmp_path) -> None:
    pts = list(np.cumsum([0] + [40 if i % 3 else 120 for i in range(31)]))
    _write_mp4(tmp_path / "vfr.mp4", [int(t) for t in pts], Fraction(1, 1000))
    result = vcodec("encode", tmp_path / "vfr.mp4", "-o", tmp_path / "vfr.vcx")
    assert result.exit_code == 0, result.output
    [warning] = warnings_of(result)
    assert "variable frame rate" in warning and "constant" in warning
    assert any("variable frame rate" in n for n in _notes(tmp_path / "vfr.vcx"))


@pytest.mark.parametrize(
    "pix_fmt, words", [("yuv420p10le", "10-bit"), ("yuv444p", "4:4:4"), ("gray", "grey")]
)
def test_a_converted_pixel_format_is_said(tmp_path, pix_fmt, words) -> None:
    _write_ffv1(tmp_path / "in.mkv", pix_fmt)
    result = vcodec("encode", tmp_path / "in.mkv", "-o", tmp_path / "in.vcx")
    assert result.exit_code == 0, result.output
    [warning] = warnings_of(result)
    assert pix_fmt in warning and words in warning and "8-bit YUV 4:2:0" in warning
    assert any(pix_fmt in n for n in _notes(tmp_path / "in.vcx"))


def test_frames_trims_the_audio(tmp_path) -> None:
    write_test_clip(tmp_path / "in.mp4", 64, 48, 50, audio=True)
    result = vcodec("encode", tmp_path / "in.mp4", "-o", tmp_path / "a.vcx", "--frames", "16")
    assert result.exit_code == 0, result.output
    assert "audio, not in the rate" in result.stdout
    assert vcodec("decode", tmp_path / "a.vcx", "-o", tmp_path / "b.mkv").exit_code == 0
    with av.open(str(tmp_path / "b.mkv")) as container:
        audio = container.streams.audio[0]
        seconds = sum(p.duration or 0 for p in container.demux(audio)) * audio.time_base
    assert 0.6 <= seconds < 0.75, float(seconds)  # 16 frames at 25 fps: 0.64 s, not 2 s


def test_decoding_to_y4m_says_the_audio_is_not_written(tmp_path) -> None:
    write_test_clip(tmp_path / "in.mp4", 64, 48, 8, audio=True)
    assert vcodec("encode", tmp_path / "in.mp4", "-o", tmp_path / "a.vcx").exit_code == 0
    result = vcodec("decode", tmp_path / "a.vcx", "-o", tmp_path / "b.y4m")
    assert result.exit_code == 0
    assert [w for w in warnings_of(result) if "audio was not written" in w]
    result = vcodec("decode", tmp_path / "a.vcx", "-o", tmp_path / "b.mp4")
    assert result.exit_code == 0 and not warnings_of(result)


def test_output_errors_are_output_errors() -> None:
    """OutputError is an OSError and exit 3; the CLI's line comes from its message."""
    assert issubclass(OutputError, OSError) and OutputError.exit_code == EXIT_BAD_INPUT
