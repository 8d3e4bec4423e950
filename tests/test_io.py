"""vcodec.io: reading any input into GOPs and writing y4m, mp4/mkv and PNG outputs."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import SHARED_DATA, requires_data, synthetic_planes, write_test_clip

from vcodec.errors import InputError
from vcodec.frames import Gop, VideoInfo
from vcodec.io import frame_from_planes, open_video, planes_from_frame, read_audio
from vcodec.writers import open_writer, output_format


def read_all(path: Path, **kwargs: object) -> tuple[VideoInfo, list[Gop]]:
    with open_video(path, **kwargs) as reader:
        return reader.info, list(reader.gops())


def write_all(path: Path, info: VideoInfo, gops: list[Gop], **kwargs: object) -> None:
    with open_writer(path, info, **kwargs) as writer:
        for gop in gops:
            writer.write(gop)


def assert_same_video(a: list[Gop], b: list[Gop]) -> None:
    assert [g.n_frames for g in a] == [g.n_frames for g in b]
    for ga, gb in zip(a, b, strict=True):
        assert ga.start == gb.start
        for pa, pb in zip(ga.planes(), gb.planes(), strict=True):
            np.testing.assert_array_equal(pa, pb)


def packets(path: Path, kind: str) -> tuple[str, list[bytes]]:
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        data = [bytes(p) for p in container.demux(stream) if p.dts is not None]
        return stream.codec_context.name, data


# --- reading ------------------------------------------------------------------------------


@pytest.mark.parametrize("width,height", [(64, 64), (65, 49)])
@pytest.mark.parametrize("frames,gop_sizes", [(1, [1]), (17, [16, 1])])
def test_y4m_round_trip_is_bit_exact(tmp_path, width, height, frames, gop_sizes):
    write_test_clip(tmp_path / "in.y4m", width, height, frames)
    info, gops = read_all(tmp_path / "in.y4m")
    assert (info.width, info.height, info.fps) == (width, height, 25)
    assert [g.n_frames for g in gops] == gop_sizes
    assert [g.start for g in gops] == [0, 16][: len(gop_sizes)]
    truth = synthetic_planes(width, height, frames)
    for t, planes in enumerate(truth):
        gop = gops[t // 16]
        for got, want in zip(gop.planes(), planes, strict=True):
            np.testing.assert_array_equal(got[t % 16], want)

    write_all(tmp_path / "out.y4m", info, gops)
    assert_same_video(gops, read_all(tmp_path / "out.y4m")[1])
    with av.open(str(tmp_path / "out.y4m")) as container:  # ffmpeg agrees on rate and length
        assert container.streams.video[0].average_rate == 25
        assert sum(1 for _ in container.decode(video=0)) == frames


def test_gops_respects_gop_size_and_max_frames(clip_factory):
    path = clip_factory("in.y4m", 32, 32, 10)
    with open_video(path) as reader:
        assert [(g.start, g.n_frames) for g in reader.gops(4)] == [(0, 4), (4, 4), (8, 2)]
        assert [g.n_frames for g in reader.gops(4, max_frames=5)] == [4, 1]  # starts over


def test_reads_raw_h264_by_extension(clip_factory):
    info, gops = read_all(clip_factory("in.264", 48, 32, 5))
    assert (info.width, info.height, info.fps, info.frame_count) == (48, 32, 25, None)
    assert sum(g.n_frames for g in gops) == 5


def test_reads_png_directory_sorted_as_bt601_limited(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, value in enumerate([(255, 255, 255), (0, 0, 0), (255, 0, 0)]):
        rgb = np.tile(np.array(value, np.uint8), (24, 33, 1))
        av.VideoFrame.from_ndarray(rgb, format="rgb24").save(frames / f"f{i:02d}.png")
    (frames / "notes.txt").write_text("not a frame")

    info, gops = read_all(frames)
    assert (info.width, info.height, info.fps, info.frame_count) == (33, 24, 25, 3)
    assert (info.color_range, info.colorspace) == (1, 6)
    y, u, v = gops[0].planes()
    assert u.shape == (3, 12, 17)
    assert [int(y[t, 5, 5]) for t in range(3)] == [235, 16, 81]  # white, black, BT.601 red
    assert (int(u[2, 3, 3]), int(v[2, 3, 3])) == (90, 240)
    assert read_all(frames, fps=Fraction(12))[0].fps == 12
    assert read_audio(frames) is None


# --- writing ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
@pytest.mark.parametrize("width,height", [(64, 48), (65, 49)])
def test_lossless_x264_round_trip_is_bit_exact(tmp_path, suffix, width, height):
    info, gops = read_all(write_clip(tmp_path, width, height, 17))
    write_all(tmp_path / f"out{suffix}", info, gops, lossless=True)
    out_info, out_gops = read_all(tmp_path / f"out{suffix}")
    assert (out_info.width, out_info.height) == (width, height)
    assert_same_video(gops, out_gops)


def test_lossy_mp4_is_close_and_counted(tmp_path):
    info, gops = read_all(write_clip(tmp_path, 64, 48, 5))
    write_all(tmp_path / "out.mp4", info, gops)
    out_info, out_gops = read_all(tmp_path / "out.mp4")
    assert out_info.frame_count == 5
    error = out_gops[0].y.astype(float) - gops[0].y
    assert 10 * np.log10(255**2 / np.mean(error**2)) > 35


def test_fmt_wins_over_a_meaningless_suffix(tmp_path):
    info, gops = read_all(write_clip(tmp_path, 32, 32, 3))
    write_all(tmp_path / "partial.tmp", info, gops, fmt="mp4", lossless=True)
    with av.open(str(tmp_path / "partial.tmp")) as container:
        assert "mp4" in container.format.name
    assert_same_video(gops, read_all(tmp_path / "partial.tmp")[1])


@pytest.mark.parametrize("suffix", [".y4m", ".mp4", ".mkv"])
@pytest.mark.parametrize("fps", [Fraction(30000, 1001), Fraction(12)])
def test_fps_survives_exactly(tmp_path, suffix, fps):
    info, gops = read_all(write_clip(tmp_path, 32, 32, 3))
    write_all(tmp_path / f"out{suffix}", dataclasses.replace(info, fps=fps), gops, crf=30)
    out_info, out_gops = read_all(tmp_path / f"out{suffix}")
    assert out_info.fps == fps
    assert sum(g.n_frames for g in out_gops) == 3


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_colour_tags_survive(tmp_path, suffix):
    info, gops = read_all(write_clip(tmp_path, 32, 32, 2))
    tagged = dataclasses.replace(info, color_range=2, colorspace=1, color_primaries=1, color_trc=1)
    write_all(tmp_path / f"out{suffix}", tagged, gops, lossless=True)
    out_info, out_gops = read_all(tmp_path / f"out{suffix}")
    assert out_info == dataclasses.replace(tagged, frame_count=out_info.frame_count)
    assert_same_video(gops, out_gops)  # full range is carried, never converted


@pytest.mark.parametrize("color_range", [1, 2])
def test_y4m_keeps_colour_range(tmp_path, color_range):
    info, gops = read_all(write_clip(tmp_path, 32, 32, 1))
    write_all(tmp_path / "out.y4m", dataclasses.replace(info, color_range=color_range), gops)
    assert read_all(tmp_path / "out.y4m")[0].color_range == color_range


def test_png_directory_has_one_rgb_frame_each(tmp_path):
    info, gops = read_all(write_clip(tmp_path, 65, 49, 17))
    write_all(tmp_path / "frames", info, gops)  # no suffix: a PNG directory
    files = sorted((tmp_path / "frames").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(17)]
    with av.open(str(files[-1])) as image:
        frame = next(image.decode(video=0))
        assert (frame.width, frame.height, frame.format.name) == (65, 49, "rgb24")


@pytest.mark.parametrize(
    "color_range,colorspace,kr,kb", [(1, 6, 0.299, 0.114), (2, 1, 0.2126, 0.0722)]
)
def test_png_uses_the_stream_matrix_and_range(tmp_path, color_range, colorspace, kr, kb):
    yuv = (110, 90, 170)  # a flat colour, so chroma interpolation plays no part
    gop = Gop(*(np.full((1, n, n), c, np.uint8) for n, c in zip((16, 8, 8), yuv, strict=True)))
    info = VideoInfo(16, 16, Fraction(25), color_range=color_range, colorspace=colorspace)
    write_all(tmp_path / "png", info, [gop], fmt="png")
    with av.open(str(tmp_path / "png" / "000000.png")) as image:
        rgb = next(image.decode(video=0)).to_ndarray()[8, 8].astype(float)
    y, cb, cr = ((yuv[0] - 16) / 219, (yuv[1] - 128) / 224, (yuv[2] - 128) / 224)
    if color_range == 2:
        y, cb, cr = yuv[0] / 255, (yuv[1] - 128) / 255, (yuv[2] - 128) / 255
    r, b = y + 2 * (1 - kr) * cr, y + 2 * (1 - kb) * cb
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    np.testing.assert_allclose(rgb, np.clip(np.array([r, g, b]) * 255, 0, 255), atol=1.01)


def test_audio_is_carried_unchanged_into_mp4(clip_factory, tmp_path):
    source = clip_factory("in.mp4", 64, 48, 20, audio=True)
    audio = read_audio(source)
    assert audio is not None
    info, gops = read_all(source)
    write_all(tmp_path / "out.mp4", info, gops, audio=audio)
    assert packets(tmp_path / "out.mp4", "audio") == packets(source, "audio")
    assert sum(g.n_frames for g in read_all(tmp_path / "out.mp4")[1]) == 20


def test_no_audio_gives_none(clip_factory):
    assert read_audio(clip_factory("in.mkv", 32, 32, 2)) is None
    assert read_audio(clip_factory("in.264", 32, 32, 2)) is None


def test_writer_closes_quietly_on_error(tmp_path):
    info, gops = read_all(write_clip(tmp_path, 32, 32, 2))
    with pytest.raises(RuntimeError, match="boom"):
        with open_writer(tmp_path / "out.mp4", info) as writer:
            writer.write(gops[0])
            raise RuntimeError("boom")


def test_output_format_from_fmt_suffix_or_directory(tmp_path):
    assert output_format(tmp_path / "a.MP4") == "mp4"
    assert output_format(tmp_path / "a.y4m") == "y4m"
    assert output_format(tmp_path / "frames") == "png"
    assert output_format(tmp_path) == "png"
    assert output_format(tmp_path / "tmp123.part", "mkv") == "mkv"


def test_frame_helpers_round_trip_any_size():
    y, u, v = synthetic_planes(65, 49, 1)[0]
    frame = frame_from_planes(y, u, v)
    assert (frame.width, frame.height, frame.format.name) == (65, 49, "yuv420p")
    for got, want in zip(planes_from_frame(frame), (y, u, v), strict=True):
        np.testing.assert_array_equal(got, want)


# --- errors -------------------------------------------------------------------------------


def test_missing_input(tmp_path):
    with pytest.raises(InputError, match="missing.mp4.*does not exist"):
        open_video(tmp_path / "missing.mp4")


def test_text_file_is_not_a_video(tmp_path):
    (tmp_path / "notes.mp4").write_text("this is not a video\n" * 20)
    with pytest.raises(InputError, match="notes.mp4"):
        open_video(tmp_path / "notes.mp4")


def test_empty_directory(tmp_path):
    with pytest.raises(InputError, match="no PNG or JPG frames"):
        open_video(tmp_path)


@pytest.mark.parametrize("name,fmt", [("out.avi", None), ("out.mp4", "webm")])
def test_unsupported_output(tmp_path, name, fmt):
    info = VideoInfo(32, 32, Fraction(25))
    with pytest.raises(InputError, match=r"supported outputs are \.y4m, \.mp4, \.mkv"):
        open_writer(tmp_path / name, info, fmt=fmt)


# --- shared sample clips ------------------------------------------------------------------


@requires_data
def test_reads_shared_samples():
    clips = SHARED_DATA / "clips"
    with open_video(clips / "bikes.mp4") as reader:
        gop = next(reader.gops())
        assert (reader.info.width, reader.info.height, reader.info.fps) == (640, 272, 25)
    assert (gop.y.shape, gop.u.shape, gop.start) == ((16, 272, 640), (16, 136, 320), 0)
    with open_video(clips / "bgslib_wsdot_traffic_320x240_png") as reader:
        gop = next(reader.gops())
        assert reader.info.frame_count == len(list(reader.path.glob("*.png")))
    assert gop.y.shape == (16, 240, 320)


def write_clip(tmp_path: Path, width: int, height: int, frames: int) -> Path:
    path = tmp_path / f"source_{width}x{height}.y4m"
    write_test_clip(path, width, height, frames)
    return path
