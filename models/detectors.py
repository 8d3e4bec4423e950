"""Pretrained detectors run on decoded frames, for the bench's task metrics (seed 003) and
seed 001's feature similarity: NanoDet (ONNX, through OpenCV's DNN module) and any
ultralytics YOLO model. ``--detector onnx-nanodet:PATH`` or ``ultralytics:PATH|NAME``.
Classes are COCO's 80 (0 = person), as both are trained on COCO.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcodec.errors import InputError
from vcodec.frames import Gop
from vcodec.io import frame_from_planes

# NanoDet-m's input normalisation (BGR), from its training configuration
NANODET_MEAN = (103.53, 116.28, 123.675)
NANODET_STD = (57.375, 57.12, 58.395)
NANODET_STRIDES = (8, 16, 32)
NANODET_BINS = 8  # GFL head: each box side is a distribution over 0..7 strides
MIN_SCORE = 0.05  # detections kept for mAP (the precision-recall curve needs the low ones)
NMS_IOU = 0.6
MAX_DETECTIONS = 100  # per frame, as COCO's evaluation
SEGMENT_MIN_SCORE = 0.25  # instances painted into a class map (ultralytics' own default)
SEGMENT_IGNORE = 255  # a class-map value that marks pixels no class is scored on
DETECTOR_KINDS = ("onnx-nanodet", "ultralytics")
COCO_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


@dataclass(frozen=True)
class Detections:
    """One frame's boxes: ``boxes`` float [N, 4] (x0, y0, x1, y1 in pixels), ``scores`` [N],
    ``classes`` int [N] (COCO ids), and for tracks ``ids`` int [N] (track identities)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    ids: np.ndarray | None = None

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.scores)

    def above(self, score: float) -> Detections:
        return self.take(self.scores >= score)

    def take(self, keep: np.ndarray) -> Detections:
        """The detections ``keep`` selects (a bool mask or indices)."""
        ids = None if self.ids is None else self.ids[keep]
        return Detections(self.boxes[keep], self.scores[keep], self.classes[keep], ids)


class NanoDet:
    """NanoDet-m from its ONNX file: a square ``size`` x ``size`` BGR input (320 or 416, from
    the file name), outputs per stride (8, 16, 32) of class scores and box distributions."""

    def __init__(self, path: str | Path) -> None:
        import cv2

        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such detector weights (NanoDet .onnx)")
        try:
            self.net = cv2.dnn.readNet(str(path))
        except cv2.error:
            raise InputError(f"{path}: OpenCV cannot read it as an ONNX network") from None
        self.size = 416 if "416" in path.stem else 320
        self.outputs = self.net.getUnconnectedOutLayersNames()
        self.name = f"onnx-nanodet:{path.name}"
        centres = []
        for stride in NANODET_STRIDES:
            cells = self.size // stride
            y, x = np.mgrid[0:cells, 0:cells]
            centres.append(np.stack([x.ravel(), y.ravel()], 1) * stride + 0.5 * (stride - 1))
        self._centres = np.concatenate(centres).astype(np.float64)
        self._strides = np.concatenate(
            [np.full((self.size // s) ** 2, s, np.float64) for s in NANODET_STRIDES]
        )

    def run(self, bgr: np.ndarray) -> tuple[list[np.ndarray], float, int, int]:
        """The raw outputs for one BGR frame, letterboxed into the square input: (outputs,
        the frame's scale into the input, left and top padding)."""
        import cv2

        h, w = bgr.shape[:2]
        scale = self.size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        top, left = (self.size - nh) // 2, (self.size - nw) // 2
        image = np.zeros((self.size, self.size, 3), np.uint8)
        image[top : top + nh, left : left + nw] = cv2.resize(
            bgr, (nw, nh), interpolation=cv2.INTER_AREA
        )
        blob = (image.astype(np.float32) - NANODET_MEAN) / NANODET_STD
        self.net.setInput(blob.transpose(2, 0, 1)[None].astype(np.float32))
        outputs = [np.asarray(o).reshape(-1, o.shape[-1]) for o in self.net.forward(self.outputs)]
        return outputs, scale, left, top

    def detect_frame(self, bgr: np.ndarray) -> Detections:
        """Boxes on one BGR frame: GFL decoding, then per-class NMS."""
        outputs, scale, left, top = self.run(bgr)
        scores = np.concatenate([o for o in outputs if o.shape[1] != 4 * NANODET_BINS])
        dist = np.concatenate([o for o in outputs if o.shape[1] == 4 * NANODET_BINS])
        dist = dist.reshape(-1, 4, NANODET_BINS).astype(np.float64)
        dist = np.exp(dist - dist.max(axis=2, keepdims=True))
        dist /= dist.sum(axis=2, keepdims=True)
        sides = (dist @ np.arange(NANODET_BINS)) * self._strides[:, None]
        boxes = np.concatenate([self._centres - sides[:, :2], self._centres + sides[:, 2:]], 1)
        boxes = (boxes - [left, top, left, top]) / scale
        h, w = bgr.shape[:2]
        boxes = boxes.clip(0, [w, h, w, h])
        classes = scores.argmax(axis=1)
        best = scores.max(axis=1).astype(np.float64)
        return nms(Detections(boxes, best, classes).above(MIN_SCORE))

    def detect(self, gop: Gop) -> list[Detections]:
        return [self.detect_frame(bgr_frame(gop, t)) for t in range(gop.n_frames)]

    def features(self, gop: Gop) -> np.ndarray:
        """One feature vector per frame, [T, F]: every output of the network, flattened."""
        rows = []
        for t in range(gop.n_frames):
            rows.append(np.concatenate([o.ravel() for o in self.run(bgr_frame(gop, t))[0]]))
        return np.stack(rows)


class UltralyticsDetector:
    """Any ultralytics YOLO detection or segmentation model (its boxes)."""

    def __init__(self, model: str | Path, device: str = "cpu") -> None:
        from vcodec.models.detectors import load_yolo

        self.model = load_yolo(model, "--detector ultralytics:")
        self.device = device
        self.name = f"ultralytics:{Path(model).name}"

    def detect(self, gop: Gop) -> list[Detections]:
        images = [bgr_frame(gop, t) for t in range(gop.n_frames)]
        results = self.model.predict(
            images, conf=MIN_SCORE, iou=NMS_IOU, max_det=MAX_DETECTIONS, verbose=False,
            device=self.device,
        )  # fmt: skip
        out = []
        for r in results:
            b = r.boxes
            out.append(
                Detections(
                    b.xyxy.cpu().numpy().astype(np.float64),
                    b.conf.cpu().numpy().astype(np.float64),
                    b.cls.cpu().numpy().astype(np.int64),
                )
            )
        return out

    def segment(self, gop: Gop, min_score: float = SEGMENT_MIN_SCORE) -> list[np.ndarray]:
        """Per frame, a class map [H, W] uint8 (tasks.read_masks' values): 0 background,
        COCO id + 1 where an instance mask at ``min_score`` and up covers the pixel, the most
        confident instance on top."""
        if self.model.task != "segment":
            raise InputError(f"{self.name} is a {self.model.task} model: --task segment needs "
                             "a segmentation (-seg) model")  # fmt: skip
        images = [bgr_frame(gop, t) for t in range(gop.n_frames)]
        results = self.model.predict(
            images, conf=min_score, iou=NMS_IOU, max_det=MAX_DETECTIONS, verbose=False,
            device=self.device, retina_masks=True,
        )  # fmt: skip
        out = []
        for r in results:
            maps = np.zeros((gop.height, gop.width), np.uint8)
            if r.masks is not None:
                masks = r.masks.data.cpu().numpy()[:, : gop.height, : gop.width] > 0.5
                order = np.argsort(r.boxes.conf.cpu().numpy(), kind="stable")  # least first
                classes = r.boxes.cls.cpu().numpy().astype(np.int64)
                for i in order:
                    maps[masks[i]] = min(classes[i] + 1, SEGMENT_IGNORE - 1)
            out.append(maps)
        return out


def load_detector(spec: str, device: str = "cpu") -> NanoDet | UltralyticsDetector:
    """A detector from ``onnx-nanodet:PATH`` or ``ultralytics:PATH|NAME``."""
    kind, _, target = spec.partition(":")
    if kind not in DETECTOR_KINDS or not target:
        raise InputError(
            f"--detector must be onnx-nanodet:PATH or ultralytics:PATH|NAME, got {spec!r}"
        )
    if kind == "onnx-nanodet":
        return NanoDet(target)
    return UltralyticsDetector(target, device)


def nms(found: Detections, iou: float = NMS_IOU) -> Detections:
    """Per-class non-maximum suppression, then the MAX_DETECTIONS best."""
    keep: list[int] = []
    for c in np.unique(found.classes):
        idx = np.flatnonzero(found.classes == c)
        idx = idx[np.argsort(-found.scores[idx], kind="stable")]
        while idx.size:
            keep.append(int(idx[0]))
            idx = idx[1:][box_iou(found.boxes[idx[:1]], found.boxes[idx[1:]])[0] <= iou]
    keep = sorted(keep, key=lambda i: -found.scores[i])[:MAX_DETECTIONS]
    return found.take(np.asarray(keep, dtype=np.int64))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a [N, 4] with every box in b [M, 4] (x0, y0, x1, y1); [N, M]."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def bgr_frame(gop: Gop, t: int) -> np.ndarray:
    """Frame t of a GOP as an 8-bit BGR image (what OpenCV and ultralytics take)."""
    return frame_from_planes(gop.y[t], gop.u[t], gop.v[t]).to_ndarray(format="bgr24")


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two [T, F] feature arrays; [T]."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)


def load_yolo(model: str | Path | None, option: str = "--roi-model "):
    """An ultralytics YOLO model from a weights path (.pt), a model .yaml (untrained: tests),
    or a name ultralytics can download; InputError with what to do when none of these works."""
    os.environ.setdefault("YOLO_VERBOSE", "False")  # no banners on our stdout
    try:
        from ultralytics import YOLO
    except ImportError as exc:  # pragma: no cover - a dependency
        raise InputError(f"--roi yolo needs ultralytics, which does not import: {exc}") from None
    if not model:
        raise InputError("--roi yolo needs --roi-model PATH (YOLO-seg weights, e.g. .pt)")
    path = Path(model)
    if path.parent != Path(".") and not path.exists():
        raise InputError(f"{option}{model}: no such file (give YOLO weights, e.g. .pt)")
    try:
        yolo = YOLO(str(model))
    except Exception as exc:  # ultralytics raises many kinds; all mean "no usable weights"
        raise InputError(
            f"{option}{model}: cannot load YOLO weights ({type(exc).__name__}); give a path "
            "to YOLO weights, or a model name while online so ultralytics can download it"
        ) from None
    if yolo.task not in ("segment", "detect"):
        raise InputError(f"{option}{model} is a {yolo.task} model, not segment or detect")
    return yolo
