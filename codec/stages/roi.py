"""Regions of interest (seed 002): where the objects are, per GOP, on a grid of 16x16 blocks.

A finder marks the blocks of a GOP that hold objects: ``motion`` (no weights: what differs from
the GOP's per-pixel temporal median, after aligning the camera's pan), ``yolo`` (an
ultralytics YOLO segmentation or detection model) or ``nanodet`` (NanoDet's boxes, ONNX through
OpenCV). The map is the union over the GOP's frames (for a detector, which sees a few of them,
grown by one block), so it covers an object over the whole GOP. The encoder steers the base
layer's bits with it (ROI blocks at a lower QP, the background at a higher one, through the
codec's own ROI interface) and writes it to the stream as side info (ROI chunk, FORMAT.md) for
whoever consumes the decoded video.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vcodec.bitstream.container import Roi
from vcodec.entropy import SymbolDecoder, SymbolEncoder
from vcodec.errors import InputError, MalformedError
from vcodec.frames import Gop
from vcodec.lazy import lazy_module
from vcodec.stages.base_layer import QpRegion
from vcodec.stages.stage import GopContext, Stage

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")

# --roi; the index is the ROI chunk's source byte
ROI_SOURCES = ("none", "motion", "yolo", "nanodet")
DETECTOR_ROI = {"onnx-nanodet": "nanodet", "ultralytics": "yolo"}  # --detector KIND -> source
ROI_BLOCK = 16  # pixels of the source frame per map cell (ffmpeg's ROI grid, x264's macroblock)
# Base-layer QP offsets (x264/x265 QP steps) of ROI and background blocks (-4/+6 gave more
# ROI-PSNR at the same rate than -6/+10 or -3/+12 on bikes; models/README.md)
ROI_QP_OFFSET = -4
BACKGROUND_QP_OFFSET = 6
BACKGROUND_SCALES = (1, 2, 4)  # --background-scale: how far the background is low-passed
QP_RANGE = 51  # ffmpeg's ROI qoffset is a fraction of the codec's QP range (51 at 8 bits)
MAX_REGIONS = 64  # rectangles per frame handed to the encoder; more are merged row-wise

MOTION_THRESHOLD = 18  # luma levels from the temporal median that count as moving
MOTION_FRACTION = 0.15  # share of a block's pixels that must move for it to be ROI
MOTION_FULL_PIXELS = 1280 * 720  # larger frames are analysed at half resolution (memory)
# a larger share of moving blocks is camera work, or an ROI too large to favour (the bits come
# from the background: carphone's 40 % ROI lost 0.7 dB ROI-PSNR at the same rate, bikes' 23 %
# gained 1.6 dB; benchmarks/roi_gain.py)
MAX_MOTION_COVERAGE = 0.35
DETECT_FRAMES = 4  # frames of a GOP a detector looks at (evenly spread)
YOLO_CONFIDENCE = 0.25
NANODET_CONFIDENCE = 0.35

# Context-adaptive coding of the map: a cell's context is (left, above, same cell in the
# previous GOP's map); each context's two counts start at 1 and grow by ROI_INCREMENT per use.
ROI_INCREMENT = 16
ROI_CONTEXTS = 8


def grid_size(height: int, width: int) -> tuple[int, int]:
    """(rows, cols) of the ROI map of a frame of this size."""
    return -(-height // ROI_BLOCK), -(-width // ROI_BLOCK)


@dataclass(frozen=True)
class RoiMap:
    """One GOP's regions of interest: ``cells`` is bool [rows, cols] on the ROI_BLOCK grid."""

    source: str
    cells: np.ndarray

    @property
    def coverage(self) -> float:
        return float(self.cells.mean()) if self.cells.size else 0.0

    def pixels(self, height: int, width: int) -> np.ndarray:
        """The map at pixel resolution: bool [height, width]."""
        full = self.cells.repeat(ROI_BLOCK, 0).repeat(ROI_BLOCK, 1)
        return full[:height, :width]

    def regions(self, scale: int = 1) -> list[tuple[int, int, int, int]]:
        """The ROI as (x, y, w, h) rectangles in pixels of a frame downscaled by ``scale``:
        runs of cells along each row, stacked where consecutive rows repeat them, and rows
        merged pairwise until there are at most MAX_REGIONS (merging only grows the ROI)."""
        cells = self.cells
        while True:
            boxes = _rectangles(cells)
            if len(boxes) <= MAX_REGIONS or cells.shape[0] == 1:
                break
            rows = cells.shape[0] + cells.shape[0] % 2
            padded = np.zeros((rows, cells.shape[1]), bool)
            padded[: cells.shape[0]] = cells
            cells = (padded[0::2] | padded[1::2]).repeat(2, 0)[: cells.shape[0]]
        step = ROI_BLOCK / scale
        return [
            (round(c0 * step), round(r0 * step), round((c1 - c0) * step), round((r1 - r0) * step))
            for r0, r1, c0, c1 in boxes
        ]

    def pack(self, previous: RoiMap | None = None) -> bytes:
        """The cells range coded in raster order under their contexts (previous: the last
        GOP's map, used when it has the same grid)."""
        bits = self.cells.astype(np.int32)
        contexts = _contexts(bits, _previous_cells(previous, bits.shape))
        counts = np.ones((ROI_CONTEXTS, 2), np.int64)
        rows = np.empty((bits.size, 2), np.float64)
        for i, (bit, ctx) in enumerate(zip(bits.ravel(), contexts.ravel(), strict=True)):
            rows[i] = counts[ctx] / counts[ctx].sum()
            counts[ctx, bit] += ROI_INCREMENT
        enc = SymbolEncoder()
        enc.encode_rows(bits.ravel(), rows)
        return enc.finish()

    @classmethod
    def unpack(
        cls, source: str, rows: int, cols: int, data: bytes, previous: RoiMap | None = None
    ) -> RoiMap:
        before = _previous_cells(previous, (rows, cols))
        dec = SymbolDecoder(data)
        cells = np.zeros((rows, cols), np.int32)
        counts = np.ones((ROI_CONTEXTS, 2), np.int64)
        for r in range(rows):
            for c in range(cols):
                left = cells[r, c - 1] if c else 0
                above = cells[r - 1, c] if r else 0
                ctx = left + 2 * above + 4 * before[r, c]
                bit = dec.decode_row(counts[ctx] / counts[ctx].sum())
                cells[r, c] = bit
                counts[ctx, bit] += ROI_INCREMENT
        return cls(source, cells.astype(bool))


def roi_chunk(gop: int, roi: RoiMap, previous: RoiMap | None) -> Roi:
    """GOP ``gop``'s ROI chunk (``previous``: the map of the stream's last ROI chunk)."""
    rows, cols = roi.cells.shape
    return Roi(gop, ROI_SOURCES.index(roi.source), rows, cols, roi.pack(previous))


def read_roi(chunk: Roi, height: int, width: int, previous: RoiMap | None) -> RoiMap:
    """The map of an ROI chunk in a stream of ``width`` x ``height`` frames."""
    if not 0 < chunk.source < len(ROI_SOURCES):
        raise MalformedError(f"ROI chunk of GOP {chunk.gop}: unknown source {chunk.source}")
    if (chunk.rows, chunk.cols) != grid_size(height, width):
        raise MalformedError(f"ROI chunk of GOP {chunk.gop}: its grid does not fit the frame")
    source = ROI_SOURCES[chunk.source]
    return RoiMap.unpack(source, chunk.rows, chunk.cols, chunk.data, previous)


def _previous_cells(previous: RoiMap | None, shape: tuple[int, int]) -> np.ndarray:
    if previous is None or previous.cells.shape != shape:
        return np.zeros(shape, np.int32)
    return previous.cells.astype(np.int32)


def _contexts(bits: np.ndarray, before: np.ndarray) -> np.ndarray:
    left = np.zeros_like(bits)
    left[:, 1:] = bits[:, :-1]
    above = np.zeros_like(bits)
    above[1:] = bits[:-1]
    return left + 2 * above + 4 * before


def _rectangles(cells: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(row0, row1, col0, col1) rectangles exactly covering the true cells."""
    open_runs: dict[tuple[int, int], int] = {}  # (col0, col1) -> first row
    boxes = []
    for r in range(cells.shape[0] + 1):
        runs = set(_runs(cells[r])) if r < cells.shape[0] else set()
        for run in list(open_runs):
            if run not in runs:
                boxes.append((open_runs.pop(run), r, *run))
        for run in runs:
            open_runs.setdefault(run, r)
    return sorted(boxes)


def _runs(row: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], row, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def grow(cells: np.ndarray) -> np.ndarray:
    """Cells with their 8 neighbours added (one block of margin around each object)."""
    x = torch.from_numpy(cells.astype(np.float32))[None, None]
    return F.max_pool2d(x, 3, stride=1, padding=1)[0, 0].numpy() > 0


def block_fraction(mask: np.ndarray) -> np.ndarray:
    """The share of each ROI block's pixels set in a bool [H, W] pixel mask; [rows, cols]."""
    rows, cols = grid_size(*mask.shape)
    padded = np.zeros((rows * ROI_BLOCK, cols * ROI_BLOCK), np.float32)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    return padded.reshape(rows, ROI_BLOCK, cols, ROI_BLOCK).mean(axis=(1, 3))


class MotionFinder:
    """Moving objects without weights: the GOP's frames are aligned on the camera's global
    motion (phase correlation, whole pixels), and the pixels far from their aligned temporal
    median are moving. A frame where more than MAX_MOTION_COVERAGE moves (a cut, a flash) is
    left out; a map that covers more than that is no object map to favour (camera work the
    alignment missed, or objects filling the frame): it comes back all set, which means no
    offsets."""

    source = "motion"

    def find(self, gop: Gop) -> RoiMap:
        shape = grid_size(gop.height, gop.width)
        if gop.n_frames < 2:
            return RoiMap(self.source, np.zeros(shape, bool))
        y = torch.from_numpy(gop.y)[:, None]
        if gop.height * gop.width > MOTION_FULL_PIXELS:  # large frames: half resolution
            factor, y = 2, F.avg_pool2d(y.float(), 2, ceil_mode=True)[:, 0]
        else:  # a 3x3 mean tames noise
            factor = 1
            y = F.avg_pool2d(y.double(), 3, stride=1, padding=1, count_include_pad=False)[:, 0]
        shifts = camera_shifts(y)
        aligned = torch.stack([_shift(f, -dy, -dx) for f, (dy, dx) in zip(y, shifts, strict=True)])
        moving = (aligned - aligned.nanmedian(dim=0).values).abs() > MOTION_THRESHOLD
        union = np.zeros(y.shape[1:], bool)
        for frame, (dy, dx) in zip(moving, shifts, strict=True):
            if frame.float().mean() > MAX_MOTION_COVERAGE:
                continue  # a cut or a flash, not objects
            union |= _shift(frame.float(), dy, dx).nan_to_num(0).numpy() > 0
        union = union.repeat(factor, 0).repeat(factor, 1)[: gop.height, : gop.width]
        cells = block_fraction(union) >= MOTION_FRACTION
        if cells.mean() > MAX_MOTION_COVERAGE:
            cells[:] = True
        return RoiMap(self.source, cells)


def camera_shifts(y: torch.Tensor) -> list[tuple[int, int]]:
    """Each frame's whole-pixel (dy, dx) from the first frame of [T, H, W] luma: phase
    correlation of consecutive frames, accumulated."""
    spectra = torch.fft.rfft2(y - y.mean(dim=(1, 2), keepdim=True))
    shifts = [(0, 0)]
    for a, b in zip(spectra[:-1], spectra[1:], strict=True):
        cross = b * a.conj()
        peak = torch.fft.irfft2(cross / cross.abs().clamp_min(1e-9), s=y.shape[1:])
        dy, dx = divmod(int(peak.argmax()), y.shape[2])
        dy = dy - y.shape[1] if dy > y.shape[1] // 2 else dy
        dx = dx - y.shape[2] if dx > y.shape[2] // 2 else dx
        shifts.append((shifts[-1][0] + dy, shifts[-1][1] + dx))
    return shifts


def _shift(frame: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``frame`` moved by (dy, dx) pixels; what moves in from outside is NaN."""
    out = torch.full_like(frame, float("nan"))
    h, w = frame.shape
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = frame[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


class YoloFinder:
    """Objects found by an ultralytics YOLO model: segmentation masks, or boxes from a detection
    model, on DETECT_FRAMES frames of each GOP."""

    source = "yolo"

    def __init__(self, model: str | Path | None, device: str = "cpu") -> None:
        from vcodec.models.detectors import load_yolo

        self.model = load_yolo(model)
        self.device = device

    def find(self, gop: Gop) -> RoiMap:
        from vcodec.models.detectors import bgr_frame

        images = [bgr_frame(gop, t) for t in _sampled(gop)]
        results = self.model.predict(
            images, conf=YOLO_CONFIDENCE, retina_masks=True, verbose=False, device=self.device
        )
        mask = np.zeros((gop.height, gop.width), bool)
        for result in results:
            if result.masks is not None:
                mask |= (
                    result.masks.data.cpu()
                    .numpy()
                    .astype(bool)
                    .any(axis=0)[: gop.height, : gop.width]
                )
            elif result.boxes is not None:
                _paint(mask, result.boxes.xyxy.cpu().numpy())
        return RoiMap(self.source, grow(block_fraction(mask) > 0))


class NanoDetFinder:
    """Objects found by NanoDet (ONNX, offline weights): their boxes at score
    NANODET_CONFIDENCE and up, on DETECT_FRAMES frames of each GOP."""

    source = "nanodet"

    def __init__(self, model: str | Path | None) -> None:
        from vcodec.models.detectors import NanoDet

        if not model:
            raise InputError("--roi nanodet needs --roi-model PATH (a NanoDet .onnx)")
        self.detector = NanoDet(model)

    def find(self, gop: Gop) -> RoiMap:
        from vcodec.models.detectors import bgr_frame

        mask = np.zeros((gop.height, gop.width), bool)
        for t in _sampled(gop):
            found = self.detector.detect_frame(bgr_frame(gop, t)).above(NANODET_CONFIDENCE)
            _paint(mask, found.boxes)
        return RoiMap(self.source, grow(block_fraction(mask) > 0))


def _paint(mask: np.ndarray, boxes: np.ndarray) -> None:
    """Set the pixels of every (x0, y0, x1, y1) box in a bool [H, W] mask."""
    for x0, y0, x1, y1 in np.round(boxes).astype(int):
        mask[max(y0, 0) : y1, max(x0, 0) : x1] = True


def _sampled(gop: Gop) -> list[int]:
    return np.linspace(0, gop.n_frames - 1, min(DETECT_FRAMES, gop.n_frames)).round().astype(int)


def detector_roi(spec: str | None) -> tuple[str, str | None]:
    """(--roi source, --roi-model) of a ``--detector KIND:PATH``: NanoDet's boxes or an
    ultralytics model's masks and boxes; the motion finder (no weights) without one."""
    if not spec:
        return "motion", None
    kind, _, model = spec.partition(":")
    if kind not in DETECTOR_ROI or not model:
        raise InputError(
            f"--detector must be onnx-nanodet:PATH or ultralytics:PATH|NAME, got {spec!r}"
        )
    return DETECTOR_ROI[kind], model


def roi_finder(source: str, model: str | None = None, device: str = "cpu"):
    """The finder for --roi (None for "none")."""
    if source not in ROI_SOURCES:
        raise InputError(f"--roi must be one of {', '.join(ROI_SOURCES)}, got {source!r}")
    if source == "motion":
        return MotionFinder()
    if source == "yolo":
        return YoloFinder(model, device)
    if source == "nanodet":
        return NanoDetFinder(model)
    return None


def qp_regions(
    roi: RoiMap,
    scale: int,
    width: int,
    height: int,
    roi_offset: int = ROI_QP_OFFSET,
    background_offset: int = BACKGROUND_QP_OFFSET,
) -> list[QpRegion]:
    """The base layer's QP offsets (QP steps) for its ``width`` x ``height`` frames
    (downscaled by ``scale``): the ROI rectangles, then the whole frame as background (where
    regions overlap, the first one listed wins)."""
    if roi.cells.all():
        return []  # all of the frame is of interest: no offsets
    inside = Fraction(roi_offset, QP_RANGE)
    regions = [(*box, inside) for box in roi.regions(scale)]
    return regions + [(0, 0, width, height, Fraction(background_offset, QP_RANGE))]


def soften_background(gop: Gop, roi: RoiMap, factor: int) -> Gop:
    """Seed 002's reduction of the background: outside the ROI, the source frames are
    low-passed as a ``factor``x down- and up-scale would leave them, so the legacy codec spends
    little on background texture and the stages after it (masks, post strength, Wiener
    filters) do not try to restore it. ROI pixels are untouched; the blend ramps over
    ROI_BLOCK pixels outside them. ``factor`` 1, a map without ROI or one that is all ROI:
    ``gop`` itself."""
    if factor <= 1 or not roi.cells.any() or roi.cells.all():
        return gop
    keep = torch.from_numpy(roi.pixels(gop.height, gop.width).astype(np.float32))[None, None]
    side, pad = 2 * ROI_BLOCK + 1, ROI_BLOCK
    # the ROI grown by the ramp, then the ramp: a square max and a square mean (over the pixels
    # inside the frame), each as a column then a row pass (the same values, 30x less work)
    for kernel, padding in (((side, 1), (pad, 0)), ((1, side), (0, pad))):
        keep = F.max_pool2d(keep, kernel, 1, padding)
    for kernel, padding in (((side, 1), (pad, 0)), ((1, side), (0, pad))):
        keep = F.avg_pool2d(keep, kernel, 1, padding, count_include_pad=False)
    planes = []
    for i, plane in enumerate(gop.planes()):
        x = torch.from_numpy(plane).float()[:, None]
        weight = keep if i == 0 else F.interpolate(keep, size=x.shape[-2:], mode="area")
        low = F.avg_pool2d(x, factor, ceil_mode=True)
        low = F.interpolate(low, size=x.shape[-2:], mode="bilinear", align_corners=False)
        out = weight * x + (1 - weight) * low
        planes.append(out.round().clamp(0, 255).to(torch.uint8)[:, 0].numpy())
    return Gop(*planes, gop.start)


class RoiStage(Stage):
    """Seed 002's ROI downsampler as a stage: a finder marks each GOP's objects, the background
    is low-passed before the base layer (which codes the ROI at a lower QP), and the map
    travels in the GOP's ROI chunk for whoever reads the decoded video."""

    name, seed, chunk = "roi", "002", Roi

    def __init__(
        self,
        finder,
        background_scale: int,
        roi_offset: int = ROI_QP_OFFSET,
        background_offset: int = BACKGROUND_QP_OFFSET,
    ) -> None:
        super().__init__()
        self.finder, self.background_scale = finder, background_scale
        self.offsets = roi_offset, background_offset  # the base layer's QP steps in / out
        self.last: RoiMap | None = None  # the previous GOP's map: the next one's context
        self.maps: list[RoiMap] = []  # decoder: the maps read so far, in GOP order

    def before_base(self, source: Gop, ctx: GopContext) -> Gop:
        with self.timed():
            ctx.roi = self.finder.find(source)
            return soften_background(source, ctx.roi, self.background_scale)

    def encode_gop(self, source: Gop, prediction: Gop, ctx: GopContext) -> tuple[Gop, Roi]:
        with self.timed():
            chunk = roi_chunk(ctx.index, ctx.roi, self.last)
        self.last, self._used = ctx.roi, True
        return prediction, chunk

    def qp_regions(self, roi: RoiMap, scale: int, width: int, height: int) -> list[QpRegion]:
        """This stage's QP offsets for the base layer's ``width`` x ``height`` frames."""
        return qp_regions(roi, scale, width, height, *self.offsets)

    def read(self, chunk: Roi, height: int, width: int) -> RoiMap:
        """Decoder: the map of the stream's next ROI chunk (the pixels do not depend on it)."""
        with self.timed():
            self.maps.append(read_roi(chunk, height, width, self.maps[-1] if self.maps else None))
        return self.maps[-1]
