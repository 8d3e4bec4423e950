"""Regions of interest: the map's coding, its rectangles, the finders, and ROI in the codec."""

from __future__ import annotations

import io
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from conftest import SHARED_DATA, requires_data

from vcodec.bitstream.container import Roi
from vcodec.errors import InputError, MalformedError
from vcodec.frames import Gop, VideoInfo
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode_gops
from vcodec.stages.base_layer import BaseEncoder
from vcodec.stages.roi import (
    MAX_REGIONS,
    ROI_BLOCK,
    MotionFinder,
    NanoDetFinder,
    RoiMap,
    YoloFinder,
    camera_shifts,
    grid_size,
    qp_regions,
    read_roi,
    roi_chunk,
    soften_background,
)

CELLS = np.array([[0, 0, 0, 0, 0], [0, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]], dtype=bool)


def _covered(
    boxes: list[tuple[int, int, int, int]], shape: tuple[int, int], step: int
) -> np.ndarray:
    out = np.zeros(shape, bool)
    for x, y, w, h in boxes:
        out[y // step : (y + h) // step, x // step : (x + w) // step] = True
    return out


def test_map_golden_bytes_and_round_trip() -> None:
    roi = RoiMap("motion", CELLS)
    assert roi.pack().hex() == "6f502a"
    back = RoiMap.unpack("motion", *CELLS.shape, roi.pack())
    assert back.source == "motion" and np.array_equal(back.cells, CELLS)
    again = RoiMap.unpack("motion", *CELLS.shape, roi.pack(roi), previous=roi)
    assert np.array_equal(again.cells, CELLS)
    # with the previous GOP's map as context, an unchanged map costs less
    blob = RoiMap("motion", np.add.outer(np.arange(30), np.arange(40)) % 17 < 5)
    assert len(blob.pack(previous=blob)) < len(blob.pack()) / 2


def test_random_maps_round_trip() -> None:
    rng = np.random.default_rng(0)
    previous = None
    for _ in range(5):
        roi = RoiMap("yolo", rng.random((9, 13)) < 0.3)
        back = RoiMap.unpack("yolo", 9, 13, roi.pack(previous), previous)
        assert np.array_equal(back.cells, roi.cells)
        previous = roi


def test_chunk_checks_source_and_grid() -> None:
    roi = RoiMap("motion", CELLS)
    chunk = roi_chunk(0, roi, None)
    height, width = 4 * ROI_BLOCK - 3, 5 * ROI_BLOCK  # 61 lines still need 4 rows of cells
    assert np.array_equal(read_roi(chunk, height, width, None).cells, CELLS)
    with pytest.raises(MalformedError, match="grid"):
        read_roi(chunk, height + ROI_BLOCK, width, None)
    for source in (0, 9):
        with pytest.raises(MalformedError, match="source"):
            read_roi(Roi(0, source, 4, 5, chunk.data), height, width, None)


def test_regions_cover_the_cells_exactly_at_each_scale() -> None:
    roi = RoiMap("motion", CELLS)
    for scale in (1, 2):
        step = ROI_BLOCK // scale
        assert np.array_equal(_covered(roi.regions(scale), CELLS.shape, step), CELLS)
    # the background region comes last and covers the whole coded frame
    regions = qp_regions(roi, 2, 40, 32)
    assert regions[-1][:4] == (0, 0, 40, 32) and regions[-1][4] > 0
    assert all(r[4] < 0 for r in regions[:-1])
    assert qp_regions(RoiMap("motion", np.ones((2, 2), bool)), 1, 32, 32) == []


def test_too_many_regions_are_merged_into_a_superset() -> None:
    checker = (np.indices((40, 40)).sum(axis=0) % 2).astype(bool)
    roi = RoiMap("motion", checker)
    boxes = roi.regions()
    assert len(boxes) <= MAX_REGIONS
    covered = _covered(boxes, checker.shape, ROI_BLOCK)
    assert covered[checker].all()


def _scene(frames: int = 16, pan: int = 0) -> Gop:
    """Textured static background (panning ``pan`` pixels a frame) and a moving bright box."""
    rng = np.random.default_rng(3)
    world = rng.integers(30, 200, (160 + 16 * frames, 240 + 16 * frames)).astype(np.uint8)
    world = np.repeat(np.repeat(world[::4, ::4], 4, 0), 4, 1)  # blobs, not pixel noise
    ys = []
    for t in range(frames):
        y = world[pan * t : pan * t + 128, pan * t : pan * t + 192].copy()
        y[40:72, 20 + 4 * t : 52 + 4 * t] = 250
        ys.append(y)
    y = np.stack(ys)
    chroma = np.full((frames, 64, 96), 128, np.uint8)
    return Gop(y, chroma, chroma.copy())


@pytest.mark.parametrize(("pan", "half"), [(0, False), (3, False), (0, True), (4, True)])
def test_motion_finds_the_moving_object_even_when_the_camera_pans(monkeypatch, pan, half) -> None:
    if half:  # the half-resolution analysis of large frames
        monkeypatch.setattr("vcodec.stages.roi.MOTION_FULL_PIXELS", 0)
    gop = _scene(pan=pan)
    assert camera_shifts(__import__("torch").from_numpy(gop.y).double())[5] == (-5 * pan, -5 * pan)
    roi = MotionFinder().find(gop)
    assert roi.cells.shape == grid_size(128, 192)
    assert roi.cells[2:4, 2:6].all()  # the box's path: rows 40-72, columns 20-112
    assert 0 < roi.coverage < 0.35


def test_motion_ignores_a_cut_and_a_still_scene() -> None:
    still = _scene()
    still = Gop(np.repeat(still.y[:1], 16, 0), still.u, still.v)
    assert MotionFinder().find(still).coverage == 0
    gop = _scene()
    cut = gop.y.copy()
    cut[15] = 255 - cut[15]
    roi = MotionFinder().find(Gop(cut, gop.u, gop.v))
    assert np.array_equal(roi.cells, MotionFinder().find(gop).cells)


def test_roi_in_the_stream_and_in_the_base_layer() -> None:
    """--roi motion: every GOP's map is in the stream and the decoder reads it back, and the
    base layer's QP offsets take effect: the background loses, the ROI far less."""
    gop = _scene(frames=16)
    gops = [gop, Gop(gop.y[::-1].copy(), gop.u, gop.v, start=16)]
    info = VideoInfo(width=192, height=128, fps=25)
    decoded, sizes = {}, {}
    for roi in ("none", "motion"):
        buffer = io.BytesIO()
        config = EncodeConfig(qp=27, roi=roi, masks=False, post=False, preset="medium")
        encode_gops(gops, info, buffer, config)
        sizes[roi] = buffer.tell()
        buffer.seek(0)
        decoder = VcxDecoder(buffer, "cpu")
        decoded[roi] = list(decoder.gops())
        if roi == "motion":
            maps = [MotionFinder().find(g) for g in gops]
            assert [r.source for r in decoder.rois] == ["motion"] * 2
            assert all(
                np.array_equal(a.cells, b.cells) for a, b in zip(decoder.rois, maps, strict=True)
            )
        else:
            assert decoder.rois == []
    # per 16x16 block PSNR over the GOPs, averaged over the ROI blocks and the others (the
    # moving box's edges are near 17 dB either way and would swamp a pooled PSNR)
    cells = np.concatenate([m.cells for m in maps])
    blocks = {}
    for roi, out in decoded.items():
        error = np.concatenate(
            [(ref.y - test.y.astype(float)) ** 2 for ref, test in zip(gops, out, strict=True)]
        )
        mse = error.reshape(2, 16, 8, 16, 12, 16).mean(axis=(1, 3, 5)).reshape(16, 12)
        blocks[roi] = 10 * np.log10(255**2 / mse)
    gain = blocks["motion"] - blocks["none"]
    assert gain[~cells].mean() < -2  # the background pays
    assert gain[cells].mean() > gain[~cells].mean() + 3  # the ROI does not


def test_background_is_low_passed_and_the_roi_kept() -> None:
    """Seed 002's background reduction: ROI pixels as they were, the background low-passed
    (its detail gone, its mean kept), a ramp of one block between; odd sizes and chroma too."""
    rng = np.random.default_rng(3)
    h, w = 61, 81
    planes = [rng.integers(0, 256, (2, h, w), dtype=np.uint8)]
    planes += [rng.integers(0, 256, (2, (h + 1) // 2, (w + 1) // 2), dtype=np.uint8)] * 2
    gop = Gop(*planes)
    cells = np.zeros((4, 6), bool)
    cells[1:3, 1:3] = True  # pixels 16-48 x 16-48
    out = soften_background(gop, RoiMap("motion", cells), 2)
    inside = np.s_[:, 16:48, 16:48]
    assert np.array_equal(out.y[inside], gop.y[inside])
    far = np.s_[:, :, 64:]  # more than a block right of the ROI
    detail = np.abs(np.diff(out.y[far].astype(int), axis=-1)).mean()
    assert detail < 0.6 * np.abs(np.diff(gop.y[far].astype(int), axis=-1)).mean()
    assert abs(out.y.mean() - gop.y.mean()) < 1
    assert out.u.shape == gop.u.shape and not np.array_equal(out.u, gop.u)
    stronger = soften_background(gop, RoiMap("motion", cells), 4)
    assert np.abs(np.diff(stronger.y[far].astype(int), axis=-1)).mean() < detail
    for kept in (np.zeros_like(cells), np.ones_like(cells)):
        assert soften_background(gop, RoiMap("motion", kept), 2) is gop
    assert soften_background(gop, RoiMap("motion", cells), 1) is gop


def test_roi_on_av1_low_passes_the_background_without_offsets() -> None:
    """SVT-AV1 takes no QP offsets: on --base av1 the ROI stage sends its maps and low-passes
    the background, and the base layer codes exactly that, with no ROI side data."""
    gop = _scene(frames=16)
    info = VideoInfo(width=192, height=128, fps=25)
    config = EncodeConfig(qp=27, roi="motion", base="av1", background_scale=4).validate()
    assert (config.roi_qp_offset, config.background_qp_offset) == (0, 0)
    decoder = VcxDecoder(_encoded([gop], info, config), "cpu")
    (out,) = decoder.gops()
    roi = MotionFinder().find(gop)
    assert np.array_equal(decoder.rois[0].cells, roi.cells) and 0 < roi.coverage < 1
    softened = soften_background(gop, roi, 4)
    base = BaseEncoder("av1", 192, 128, Fraction(25), 27, roi=True)
    assert not base.roi
    packets = base.encode(softened, [(0, 0, 64, 64, Fraction(-4, 51))]) + base.flush()
    alone = BaseEncoder("av1", 192, 128, Fraction(25), 27)
    assert packets == alone.encode(softened) + alone.flush()
    far = ~roi.pixels(128, 192)
    far = far[:, 1:] & far[:, :-1]  # horizontal neighbours both in the background

    def detail(y: np.ndarray) -> float:
        return float(np.abs(np.diff(y.astype(int), axis=-1))[:, far].mean())

    sharp = list(VcxDecoder(_encoded([gop], info, replace(config, roi="none")), "cpu").gops())[0]
    assert detail(out.y) < 0.8 * detail(sharp.y)


def _encoded(gops: list[Gop], info: VideoInfo, config: EncodeConfig) -> io.BytesIO:
    buffer = io.BytesIO()
    encode_gops(gops, info, buffer, config)
    buffer.seek(0)
    return buffer


def test_bad_roi_settings_are_refused() -> None:
    with pytest.raises(InputError, match="need --base x264 or x265"):
        EncodeConfig(roi="motion", base="av1", background_qp_offset=6).validate()
    with pytest.raises(InputError, match="--mode hybrid"):
        EncodeConfig(roi="motion", mode="pure").validate()
    with pytest.raises(InputError, match="--roi-model"):
        EncodeConfig(roi="yolo").validate()
    with pytest.raises(InputError, match="--roi must be"):
        EncodeConfig(roi="faces").validate()
    with pytest.raises(InputError, match="--background-scale must be one of 1, 2, 4"):
        EncodeConfig(roi="motion", background_scale=3).validate()
    with pytest.raises(InputError, match="no such file"):
        YoloFinder("missing/weights.pt")


def test_yolo_finder_runs_a_model_built_from_its_yaml() -> None:
    """No weights offline: the untrained network from ultralytics' yaml runs end to end."""
    roi = YoloFinder("yolov8n-seg.yaml").find(_scene(frames=4))
    assert roi.source == "yolo" and roi.cells.shape == grid_size(128, 192)


@requires_data
def test_nanodet_finder_marks_the_people_of_a_mot_frame() -> None:
    from vcodec.io import open_video

    seq = SHARED_DATA / "labeled" / "MOT17-mini" / "train" / "MOT17-05-FRCNN"
    with open_video(seq / "img1") as reader:
        gop = next(reader.gops(16))
    model = SHARED_DATA / "weights" / "nanodet-m_coco_onnx" / "nanodet-m_320.onnx"
    roi = NanoDetFinder(model).find(gop)
    assert roi.source == "nanodet" and 0.02 < roi.coverage < 0.5
    assert roi.cells[150 // ROI_BLOCK : 330 // ROI_BLOCK, 20 // ROI_BLOCK].all()  # a walker


def test_gops_without_regions_between_gops_with_them(monkeypatch) -> None:
    """x265 reuses its frame buffers: a GOP whose map asks no offsets (all of it ROI) and then
    one with offsets crashed libx265 until every frame carried ROI side data."""
    gop = _scene(frames=16)
    maps = iter([np.ones(grid_size(128, 192), bool), np.zeros(grid_size(128, 192), bool)] * 3)
    monkeypatch.setattr(MotionFinder, "find", lambda self, g: RoiMap("motion", next(maps)))
    gops = [Gop(gop.y, gop.u, gop.v, start=16 * i) for i in range(6)]
    buffer = io.BytesIO()
    config = EncodeConfig(qp=32, roi="motion", masks=False, post=False, temporal=False)
    encode_gops(gops, VideoInfo(width=192, height=128, fps=25), buffer, config)
    buffer.seek(0)
    assert sum(g.n_frames for g in VcxDecoder(buffer, "cpu").gops()) == 96


@pytest.mark.parametrize("codec", ["x264", "x265"])
def test_zero_offsets_cost_what_no_offsets_cost(codec) -> None:
    """ROI side data at a zero offset leaves the rate alone. (The frames once left the ROI
    filter graph in a time base of 1 s; PyAV rescaled their timestamps and libx264, which
    gives frames that last longer more bits, made streams 7x larger.)"""
    gop = _scene(frames=16)
    sizes = []
    for regions in (None, [(0, 0, 192, 128, Fraction(0))]):
        encoder = BaseEncoder(codec, 192, 128, Fraction(25), 32, "medium", regions is not None)
        packets = encoder.encode(gop, regions) + encoder.flush()
        sizes.append(sum(map(len, packets)))
    assert abs(sizes[1] - sizes[0]) <= 0.05 * sizes[0], sizes
