"""Segments: cut by content, coded alone (each its own base layer), byte-identical whatever
codes them (one process, workers, a Ray cluster), resumable after a kill."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_planes
from typer.testing import CliRunner

from vcodec.bitstream.container import Cut, StreamHeader, VcxReader
from vcodec.cli.main import app
from vcodec.errors import MalformedError
from vcodec.frames import GOP_SIZE, Gop, VideoInfo
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode_window
from vcodec.pipeline.jobs import WindowJob, regroup
from vcodec.pipeline.resume import store_path
from vcodec.pipeline.segments import longest_segment, scene_segments, window_gops
from vcodec.pipeline.stream import SegmentMerger

runner = CliRunner()
FPS = 25
KILL_WAIT_S = 120


def vcodec(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def write_y4m(path: Path, planes: list[tuple[np.ndarray, ...]]) -> Path:
    height, width = planes[0][0].shape
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for yuv in planes:
            f.write(b"FRAME\n" + b"".join(p.tobytes() for p in yuv))
    return path


def still_then_moving(width: int = 96, height: int = 64, still: int = 112, moving: int = 112):
    """A still textured scene (no noise: a parked camera), then the moving test pattern."""
    rng = np.random.default_rng(7)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    y = rng.integers(40, 200, (height, width)).astype(np.uint8)
    y = (y // 32 * 32).astype(np.uint8)  # flat patches: cheap to code, but not empty
    first = [(y, np.full((ch, cw), 120, np.uint8), np.full((ch, cw), 130, np.uint8))] * still
    return first + synthetic_planes(width, height, moving)


def cuts_of(pieces) -> list[tuple[int, int]]:
    """(segment or window, frames) of each."""
    out: dict[int, int] = {}
    for piece in pieces:
        key, gop = (piece.segment, piece.gop) if hasattr(piece, "segment") else piece
        out[key] = out.get(key, 0) + gop.n_frames
    return sorted(out.items())


def as_gops(planes, size: int = 7) -> list[Gop]:
    """The frames as GOPs of an odd size: the cuts must not depend on how they are read."""
    return [Gop.from_frames(planes[i : i + size], i) for i in range(0, len(planes), size)]


def test_windows_and_cuts_at_scene_changes() -> None:
    planes = synthetic_planes(64, 48, 40)
    cut = [tuple(255 - p for p in yuv) for yuv in planes[:30]]  # a new scene at frame 40
    pieces = list(scene_segments(as_gops(planes + cut)))
    assert cuts_of(pieces) == [(0, 40), (1, 30)]
    assert all(p.gop.n_frames <= GOP_SIZE for p in pieces)
    assert [p.gop.start for p in pieces if p.segment == 1] == [0, 16]  # from its own start
    length = longest_segment(Fraction(FPS), 2)  # 2 s = 50 frames: whole GOPs, 48
    windows = list(window_gops(as_gops(synthetic_planes(64, 48, 100)), length))
    assert cuts_of(windows) == [(0, 48), (1, 48), (2, 4)]
    assert all(g.n_frames == GOP_SIZE for _, g in windows[:-1])
    moving = list(scene_segments(as_gops(still_then_moving())))
    assert cuts_of(moving) == [(0, 112), (1, 112)]  # the still scene's end is a scene change


def test_a_scene_change_cuts_its_window(tmp_path) -> None:
    """Windows of 32 frames (a grid from the first), the one with a new scene at frame 40 cut
    there too: the same cuts and bytes however the input is read (a y4m indexed by its
    timestamps, or a folder of frames read in a first pass) and whoever codes it."""
    planes = synthetic_planes(64, 48, 40)
    planes += [tuple(255 - p for p in yuv) for yuv in synthetic_planes(64, 48, 40)]
    src = write_y4m(tmp_path / "in.y4m", planes)
    args = ("--threads", "1", "--segment-seconds", "1.3", "--qp", "40")
    outputs = []
    for name, jobs in (("a", "1"), ("b", "2")):
        out = tmp_path / f"{name}.vcx"
        result = vcodec("encode", src, "-o", out, "--jobs", jobs, *args)
        assert result.exit_code == 0, result.output
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    segments = json.loads(vcodec("info", tmp_path / "a.vcx", "--json").stdout)["segments"]
    assert [(s["first_frame"], s["frames"]) for s in segments] == [
        (0, 32), (32, 8), (40, 24), (64, 16)
    ]  # fmt: skip
    folder = tmp_path / "frames"
    assert vcodec("decode", tmp_path / "a.vcx", "-o", tmp_path / "d.y4m").exit_code == 0
    folder.mkdir()
    import av

    with av.open(str(src)) as clip:
        for n, frame in enumerate(clip.decode(video=0)):
            frame.to_image().save(folder / f"{n:04d}.png")
    for jobs in ("1", "2"):
        out = tmp_path / f"frames{jobs}.vcx"
        result = vcodec("encode", folder, "-o", out, "--jobs", jobs, *args)
        assert result.exit_code == 0, result.output
    assert (tmp_path / "frames1.vcx").read_bytes() == (tmp_path / "frames2.vcx").read_bytes()
    segments = json.loads(vcodec("info", tmp_path / "frames1.vcx", "--json").stdout)["segments"]
    assert [s["frames"] for s in segments] == [32, 8, 24, 16]


def test_an_mp4_with_b_frames_is_read_window_by_window(tmp_path, clip_factory) -> None:
    """Windows found by demuxing an mp4 (reordered frames, one keyframe) and read after a
    seek give the bytes one pass from the start gives, and every frame once."""
    src = clip_factory("in.mp4", 64, 48, 70)
    args = ("--threads", "1", "--segment-seconds", "1")
    for jobs in ("1", "2"):
        result = vcodec("encode", src, "-o", tmp_path / f"{jobs}.vcx", "--jobs", jobs, *args)
        assert result.exit_code == 0, result.output
    assert (tmp_path / "1.vcx").read_bytes() == (tmp_path / "2.vcx").read_bytes()
    with open(tmp_path / "1.vcx", "rb") as f:
        decoded = [f for g in VcxDecoder(f, "cpu").gops() for f in g.y]
    source = [yuv[0] for yuv in synthetic_planes(64, 48, 70)]
    assert len(decoded) == 70
    from vcodec.io import open_video

    with open_video(src) as reader:
        assert len(reader.index(5).pts) == 5  # --frames under the frames peeked on opening
    for ref, test in zip(source, decoded, strict=True):
        assert np.abs(ref.astype(int) - test).mean() < 6  # each frame in its place


def test_segments_of_different_base_layers_join_into_one_stream(tmp_path) -> None:
    """The format lets each segment have its own base layer and stages: a still segment on
    x265 with temporal scaling, a moving one on SVT-AV1, joined, decode as one stream."""
    planes = still_then_moving()
    info = VideoInfo(96, 64, Fraction(FPS))
    merger = SegmentMerger()
    for base, frames in (("x265", planes[:112]), ("av1", planes[112:])):
        gops = list(regroup([Gop.from_frames(frames)]))
        config = EncodeConfig(qp=32, base=base, device="cpu", threads=1)
        merger.add(encode_window(WindowJob(0, info, config, gops=gops)).data)
    out = tmp_path / "a.vcx"
    with open(out, "wb") as f:
        merger.write(f, StreamHeader(96, 64, FPS, 1), None)
    summary = json.loads(vcodec("info", out, "--json").stdout)
    assert summary["gop_temporal_steps"]["8"] > 0  # the still segment drops frames
    assert [(s["frames"], s["base"]) for s in summary["segments"]] == [
        (112, "x265"),
        (112, "av1"),
    ]
    text = vcodec("info", out).stdout
    assert "2 segments" in text and "x265" in text and "av1" in text
    assert vcodec("decode", out, "-o", tmp_path / "a.y4m").exit_code == 0
    with open(out, "rb") as f:
        decoded = list(VcxDecoder(f, "cpu").gops())
    assert sum(g.n_frames for g in decoded) == 224
    assert [g.start for g in decoded[:9]] == [0, 16, 32, 48, 64, 80, 96, 112, 128]


def test_the_bytes_do_not_depend_on_the_workers(tmp_path) -> None:
    src = write_y4m(tmp_path / "in.y4m", synthetic_planes(96, 64, 80))
    outputs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"j{jobs}.vcx"
        args = ("--jobs", jobs, "--threads", "1", "--segment-seconds", "1")
        result = vcodec("encode", src, "-o", out, *args)
        assert result.exit_code == 0, result.output
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    with open(tmp_path / "j1.vcx", "rb") as f:
        cuts = [c for c in VcxReader(f) if isinstance(c, Cut)]
    assert len(cuts) == 5 and all(c.threads == 1 for c in cuts)  # 1 s: 16-frame GOPs


def test_forked_workers_give_the_same_bytes(tmp_path) -> None:
    """The CLI's driver never loads torch, so its workers are forked (a test process may have
    loaded it: spawned there)."""
    src = write_y4m(tmp_path / "in.y4m", synthetic_planes(96, 64, 64))
    outputs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"{jobs}.vcx"
        command = [sys.executable, "-m", "vcodec.cli.main", "encode", str(src), "-o", str(out)]
        args = ["--jobs", jobs, "--threads", "1", "--segment-seconds", "1"]
        done = subprocess.run(command + args, capture_output=True, text=True, timeout=KILL_WAIT_S)
        assert done.returncode == 0, done.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_a_process_that_coded_frames_itself_spawns_its_workers(tmp_path) -> None:
    """A batch's driver codes a one-window file itself (OpenCV's pool runs there): workers
    for its next file are spawned, not forked (a forked child can hang in that pool)."""
    from vcodec.pipeline.jobs import may_fork

    src = write_y4m(tmp_path / "in.y4m", synthetic_planes(64, 48, 8))
    assert vcodec("encode", src, "-o", tmp_path / "a.vcx", "--jobs", "1").exit_code == 0
    assert not may_fork()


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs vcodec[cluster]: ray")
def test_a_ray_cluster_gives_the_same_bytes(tmp_path) -> None:
    src = write_y4m(tmp_path / "in.y4m", synthetic_planes(96, 64, 64))
    args = ("--threads", "1", "--segment-seconds", "1")
    assert vcodec("encode", src, "-o", tmp_path / "a.vcx", "--jobs", "1", *args).exit_code == 0
    result = vcodec("encode", src, "-o", tmp_path / "r.vcx", "--cluster", "local", *args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.vcx").read_bytes() == (tmp_path / "a.vcx").read_bytes()


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs vcodec[cluster]: ray")
def test_the_bench_grid_on_a_ray_cluster_measures_the_same_points(tmp_path) -> None:
    src = write_y4m(tmp_path / "in.y4m", synthetic_planes(64, 48, 16))
    args = ("--codecs", "vcx,vcx:fast", "--qp", "30,40", "--frames", "16", "--device", "cpu")
    found = []
    for name, extra in (("here", ()), ("ray", ("--cluster", "local"))):
        result = vcodec("bench", src, *args, "--out", tmp_path / name, *extra)
        assert result.exit_code == 0, result.output
        points = json.loads((tmp_path / name / "bench.json").read_text())["points"]
        found.append([(p["codec"], p["q"], p["bytes"], round(p["psnr_yuv"], 6)) for p in points])
    assert found[0] == found[1] and len(found[0]) == 6  # SVT-AV1 comes with vcx on its base


def indexed_windows(src: Path, seconds: float = 1) -> list[WindowJob]:
    from vcodec.io import open_video
    from vcodec.pipeline.jobs import plan_windows

    config = EncodeConfig(threads=1, segment_seconds=seconds, device="cpu")
    with open_video(src) as reader:
        return plan_windows(reader, src, config)


def test_a_window_sent_as_its_packets_codes_to_the_same_bytes(tmp_path, clip_factory) -> None:
    """A worker that cannot read the input gets the window's packets (io.excerpt) and codes
    the same bytes; one that sees another file by that name says so."""
    from dataclasses import replace

    from vcodec.errors import InputNotVisibleError
    from vcodec.pipeline.workers import shipped

    src = clip_factory("in.mp4", 64, 48, 60)  # reordered frames, one keyframe
    jobs = indexed_windows(src)
    assert len(jobs) == 4
    for job in jobs:
        here = encode_window(job).data
        away = shipped(job)
        away = replace(away, source=replace(away.source, path=str(tmp_path / "elsewhere.mp4")))
        assert encode_window(away).data == here
    other = replace(jobs[1], source=replace(jobs[1].source, size=1))
    with pytest.raises(InputNotVisibleError):
        encode_window(other)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs vcodec[cluster]: ray")
def test_a_cluster_that_does_not_see_the_input_gets_its_packets(tmp_path, clip_factory) -> None:
    from dataclasses import replace

    from vcodec.pipeline.encoder import run_here
    from vcodec.pipeline.workers import ray_runner

    src = clip_factory("in.mp4", 64, 48, 60)
    jobs = indexed_windows(src)
    unseen = [replace(j, source=replace(j.source, size=1)) for j in jobs]  # another file there
    away = [r.data for r in ray_runner("local", 1)(iter(unseen))]
    assert away == [r.data for r in run_here(iter(jobs))]


def test_a_killed_encode_resumes_to_the_same_bytes(tmp_path, clip_factory) -> None:
    """Notes included: an mp4 states its frame count, which the kept windows' frames count
    towards (else the resumed run would note a truncated input the whole run did not)."""
    src = clip_factory("in.mp4", 128, 96, 320)
    args = ["--jobs", "1", "--threads", "1", "--segment-seconds", "0.64", "--base", "x265"]
    whole = tmp_path / "whole.vcx"
    assert vcodec("encode", src, "-o", whole, *args).exit_code == 0
    out = tmp_path / "out.vcx"
    command = [sys.executable, "-m", "vcodec.cli.main", "encode", str(src), "-o", str(out)]
    process = subprocess.Popen(command + args, stderr=subprocess.DEVNULL)
    manifest = store_path(out) / "manifest.json"
    deadline = time.monotonic() + KILL_WAIT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if len(json.loads(manifest.read_text())["windows"]) >= 3:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists() and manifest.exists()
    kept = len(json.loads(manifest.read_text())["windows"])
    assert 3 <= kept < 20
    again = vcodec("encode", src, "-o", out, *args, "--resume")
    assert again.exit_code == 0, again.output
    assert out.read_bytes() == whole.read_bytes() and not store_path(out).exists()
    assert not list(tmp_path.glob(".*partial*"))


def test_kept_segments_are_not_reused_without_resume_or_with_other_options(tmp_path) -> None:
    src = write_y4m(tmp_path / "in.y4m", synthetic_planes(96, 64, 48))
    out = tmp_path / "out.vcx"
    store = store_path(out)
    args = ["--jobs", "1", "--threads", "1", "--segment-seconds", "0.64"]
    store.mkdir()
    (store / "manifest.json").write_text(json.dumps({"key": {}, "windows": {"0": {}}}))
    result = vcodec("encode", src, "-o", out, *args, "--resume")
    assert result.exit_code == 0 and "other options" in result.stderr
    store.mkdir()
    (store / "manifest.json").write_text(json.dumps({"key": {}, "windows": {"0": {}}}))
    result = vcodec("encode", src, "-o", out, *args, "--force")
    assert "other options" in result.stderr and not store.exists()


def test_a_cut_out_of_place_is_damage(tmp_path) -> None:
    src = write_y4m(tmp_path / "in.y4m", synthetic_planes(96, 64, 48))
    out = tmp_path / "a.vcx"
    assert vcodec("encode", src, "-o", out, "--segment-seconds", "0.64").exit_code == 0
    data = out.read_bytes()
    with open(out, "rb") as f:
        reader = VcxReader(f)
        cuts = [c for c in reader if isinstance(c, Cut)]
    assert len(cuts) == 3
    from vcodec.bitstream.container import encode_chunk

    second = encode_chunk(cuts[1])
    bad = data.replace(second, encode_chunk(Cut(1, 20, 16, "av1", 32, 0)), 1)  # frame 16
    with pytest.raises(MalformedError, match="CUT"):
        list(VcxReader(io.BytesIO(bad)))


def test_the_same_input_gives_the_same_bytes_audio_included(tmp_path, clip_factory) -> None:
    src = clip_factory("in.mp4", 64, 48, 20, audio=True)
    for name in ("a.vcx", "b.vcx"):
        assert vcodec("encode", src, "-o", tmp_path / name, "--threads", "1").exit_code == 0
    assert (tmp_path / "a.vcx").read_bytes() == (tmp_path / "b.vcx").read_bytes()


def test_a_size_target_is_met_and_each_segment_reaches_a_psnr_target(tmp_path) -> None:
    src = write_y4m(tmp_path / "in.y4m", synthetic_planes(96, 64, 96))
    args = ("--jobs", "1", "--threads", "1", "--segment-seconds", "1")
    out = tmp_path / "size.vcx"
    result = vcodec("encode", src, "-o", out, "--target-size", "40kB", *args)
    assert result.exit_code == 0, result.output
    assert abs(out.stat().st_size - 40_000) <= 0.03 * 40_000
    summary = json.loads(vcodec("info", out, "--json").stdout)
    assert {s["target"] for s in summary["segments"]} == {"size 40000"}
    out = tmp_path / "psnr.vcx"
    result = vcodec("encode", src, "-o", out, "--target-psnr", "36", *args)
    assert result.exit_code == 0, result.output
    with open(out, "rb") as f:
        decoded = [g for g in VcxDecoder(f, "cpu").gops()]
    frames = [f for g in decoded for f in zip(*g.planes(), strict=True)]
    source = synthetic_planes(96, 64, 96)
    for segment in json.loads(vcodec("info", out, "--json").stdout)["segments"]:
        first, count = segment["first_frame"], segment["frames"]
        errors = np.zeros(3)
        pairs = zip(source[first : first + count], frames[first : first + count], strict=True)
        for ref, test in pairs:
            errors += [np.mean((a.astype(float) - b) ** 2) for a, b in zip(ref, test, strict=True)]
        mse = (6 * errors[0] + errors[1] + errors[2]) / 8 / count
        assert 36 <= 10 * np.log10(255**2 / mse) < 38, segment
    out = tmp_path / "msssim.vcx"
    result = vcodec("encode", src, "-o", out, "--target-msssim", "0.97", *args)
    assert result.exit_code == 0, result.output
    from vcodec.metrics import msssim_y

    with open(out, "rb") as f:
        decoded_y = np.concatenate([g.y for g in VcxDecoder(f, "cpu").gops()])
    source_y = np.stack([yuv[0] for yuv in source])
    for segment in json.loads(vcodec("info", out, "--json").stdout)["segments"]:
        window = slice(segment["first_frame"], segment["first_frame"] + segment["frames"])
        assert np.mean(msssim_y(source_y[window], decoded_y[window])) >= 0.97, segment
        assert segment["target"] == "msssim 0.97"
    bad = vcodec("encode", src, "-o", tmp_path / "x.vcx", "--target-size", "lots")
    assert bad.exit_code == 3 and "25MB" in bad.stderr


def test_a_folder_batch_finishes_the_good_files_and_reports_the_others(tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_y4m(folder / "good.y4m", synthetic_planes(64, 48, 8))
    (folder / "cut.y4m").write_bytes((folder / "good.y4m").read_bytes()[:40])
    (folder / "notes.txt").write_text("not a video")
    result = vcodec("encode", folder, "-o", tmp_path / "out")
    assert result.exit_code == 3, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.vcx"]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "cut.y4m" in errors[0] and "notes.txt" in errors[1]
    assert "good.y4m" in result.stdout and not list(tmp_path.glob("**/.*partial*"))


def test_the_bench_scores_a_clip_cut_at_a_scene_change(tmp_path) -> None:
    planes = synthetic_planes(64, 48, 20)
    planes += [tuple(255 - p for p in yuv) for yuv in synthetic_planes(64, 48, 20)]
    src = write_y4m(tmp_path / "cut.y4m", planes)  # a new scene at frame 20, mid-GOP
    out = tmp_path / "bench"
    args = ("--codecs", "vcx", "--qp", "32", "--frames", "40", "--out", out, "--device", "cpu")
    result = vcodec("bench", src, *args)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "bench.json").read_text())["points"][0]["frames"] == 40
