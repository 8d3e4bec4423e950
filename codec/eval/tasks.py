"""Task metrics of decoded video (seed 003): detection mAP, segmentation mIoU, and tracking
MOTA and IDF1 (a greedy IoU tracker on the detections), against ground-truth labels or, with
none, against the model's own output on the uncompressed frames (pseudo ground truth).

Label layouts (``find_labels``), each a clip the bench can read:
- MOT: a sequence folder with ``img1/`` (frames) and ``gt/gt.txt`` (``frame, id, x, y, w, h,
  flag, class, visibility``; 1-based frames; rows with flag 0 are ignored; MOT classes are
  mapped to COCO's, others dropped).
- YOLO: a folder with ``images/`` (frames, name order) and ``labels/`` (one ``.txt`` per frame
  of the same stem, ``class cx cy w h`` normalised to 0..1, COCO class ids; a missing file is a
  frame with no objects).
- Seed 003: a split folder (``val/``) with ``frames/VIDEO/`` and beside it ``labels/VIDEO/``
  (YOLO lines, or ``track_id class cx cy w h`` for tracking) and/or ``masks/VIDEO/`` (one PNG
  per frame of the same stem, one channel: 0 background, COCO class id + 1 for an object's
  pixels, 255 ignored). Each VIDEO is a clip (``expand_inputs``); a folder whose ``frames/``
  holds the images themselves is one clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcodec.errors import InputError
from vcodec.io import frame_files
from vcodec.models.detectors import SEGMENT_IGNORE, Detections, box_iou

IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.96, 0.05), 2))  # COCO's .5:.95
RECALL_POINTS = np.linspace(0, 1, 101)  # COCO's 101-point interpolated precision
PSEUDO_MIN_SCORE = 0.5  # the detector's boxes on the source that count as pseudo ground truth
MATCH_IOU = 0.5  # tracking metrics: a tracked box matches a truth box from this IoU up
TRACK_MIN_SCORE = 0.4  # the detections the tracker follows
TRACK_IOU = 0.3  # a detection continues a track from this IoU with its last box up
TRACK_MAX_GAP = 3  # frames a track may go unseen
# MOT17 classes -> COCO ids: pedestrian and person on vehicle / static person -> person,
# car, bicycle, motorbike; the rest (distractors, occluders, non-motorised vehicles) dropped
MOT_TO_COCO = {1: 0, 2: 0, 7: 0, 3: 2, 4: 1, 5: 3}


SEGMENT_CLASSES = 256  # mask values 0..255: background, COCO id + 1, ignore


@dataclass(frozen=True)
class Labels:
    """Where a clip's frames and ground truth are: ``frames`` (a folder the reader opens),
    ``truth`` (per frame, boxes and classes; scores are 1) and ``masks`` (per frame, a class
    map [H, W] uint8, as in the masks folder), each None where the clip has none (pseudo
    ground truth)."""

    frames: Path
    truth: list[Detections] | None
    layout: str  # "mot", "yolo", "seed003" or "none"
    masks: list[np.ndarray] | None = None


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Bench inputs with each seed-003 split folder (``frames/`` of video folders) replaced by
    its videos' frame folders, in name order."""
    out = []
    for path in map(Path, paths):
        frames = path / "frames"
        videos = sorted(p for p in frames.iterdir() if p.is_dir()) if frames.is_dir() else []
        out += videos or [path]
    return out


def find_labels(path: str | Path) -> Labels:
    """The layout of a bench input: a MOT sequence, a YOLO folder, a seed-003 video, else the
    input itself with no labels (pseudo ground truth)."""
    path = Path(path)
    if (path / "img1").is_dir() and (path / "gt" / "gt.txt").is_file():
        frames = path / "img1"
        return Labels(frames, read_mot(path / "gt" / "gt.txt", _frame_count(frames)), "mot")
    if (path / "images").is_dir() and (path / "labels").is_dir():
        frames = path / "images"
        return Labels(frames, read_yolo(frames, path / "labels"), "yolo")
    # seed 003: split/frames/VIDEO with split/labels/VIDEO and/or split/masks/VIDEO, or a
    # folder with frames/ and labels/ and/or masks/
    if path.parent.name == "frames":
        split = path.parents[1]
        frames, labels, masks = path, split / "labels" / path.name, split / "masks" / path.name
    else:
        frames, labels, masks = path / "frames", path / "labels", path / "masks"
    if frames.is_dir() and (labels.is_dir() or masks.is_dir()):
        return Labels(
            frames,
            read_yolo(frames, labels) if labels.is_dir() else None,
            "seed003",
            read_masks(frames, masks) if masks.is_dir() else None,
        )
    return Labels(path, None, "none")


def _frame_count(folder: Path) -> int:
    return len(frame_files(folder))


def read_mot(path: Path, frames: int) -> list[Detections]:
    """Per-frame boxes of a MOT ``gt.txt`` for a sequence of ``frames`` frames."""
    rows: list[list[tuple]] = [[] for _ in range(frames)]
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split(",")]
            frame, track, x, y, w, h, flag, cls = values[:8]
        except ValueError:
            raise InputError(
                f"{path}:{number}: a MOT line is frame,id,x,y,w,h,flag,class,visibility"
            ) from None
        if not 1 <= frame <= frames or w <= 0 or h <= 0:
            raise InputError(f"{path}:{number}: frame {frame:g} or box size out of range")
        if flag == 0 or int(cls) not in MOT_TO_COCO:
            continue
        rows[int(frame) - 1].append((x, y, x + w, y + h, MOT_TO_COCO[int(cls)], track))
    return [_truth(r) for r in rows]


def read_yolo(images: Path, labels: Path) -> list[Detections]:
    """Per-frame boxes of YOLO label files for the frames in ``images`` (name order): lines of
    ``class cx cy w h``, or ``track_id class cx cy w h`` (seed 003's tracking labels; the
    boxes then carry identities), one kind per file."""
    from PIL import Image

    out = []
    for image in frame_files(images):
        with Image.open(image) as im:
            width, height = im.size
        rows = []
        label = labels / f"{image.stem}.txt"
        lines = label.read_text().splitlines() if label.is_file() else []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{label}:{number}"
            try:
                values = [float(v) for v in line.split()]
            except ValueError:
                values = []
            if len(values) not in (5, 6) or (rows and len(values) != len(rows[0])):
                raise InputError(
                    f"{where}: a YOLO line is class cx cy w h, or track_id class cx cy w h "
                    "for tracking (one kind per file)"
                )
            *track, cls, cx, cy, w, h = values
            if not (0 <= cx <= 1 and 0 <= cy <= 1 and 0 < w <= 1 and 0 < h <= 1):
                raise InputError(f"{where}: box values must be normalised to 0..1")
            if cls < 0 or cls != int(cls) or any(t != int(t) for t in track):
                raise InputError(f"{where}: class and track ids are whole numbers from 0")
            x0, y0 = (cx - w / 2) * width, (cy - h / 2) * height
            rows.append((x0, y0, x0 + w * width, y0 + h * height, int(cls), *track))
        out.append(_truth(rows))
    return out


def read_masks(images: Path, masks: Path) -> list[np.ndarray]:
    """Per-frame class maps [H, W] uint8 of the frames in ``images`` (name order): the PNG of
    the same stem in ``masks``, one channel, the frame's size."""
    from PIL import Image

    out = []
    for image in frame_files(images):
        mask = masks / f"{image.stem}.png"
        if not mask.is_file():
            raise InputError(f"{mask}: no mask for frame {image.name}")
        with Image.open(image) as im, Image.open(mask) as m:
            if m.mode not in ("L", "P"):
                raise InputError(f"{mask}: a mask is one channel of class ids, not {m.mode}")
            if m.size != im.size:
                raise InputError(f"{mask}: {m.size[0]}x{m.size[1]}, its frame is "
                                 f"{im.size[0]}x{im.size[1]}")  # fmt: skip
            out.append(np.asarray(m, dtype=np.uint8))
    return out


def confusion(found: list[np.ndarray], truth: list[np.ndarray]) -> np.ndarray:
    """Pixel counts [SEGMENT_CLASSES, SEGMENT_CLASSES] of (truth class, found class) over the
    frames' class maps, pixels that truth marks SEGMENT_IGNORE left out."""
    if len(found) != len(truth):
        raise ValueError(f"{len(found)} frames of masks for {len(truth)} of truth")
    counts = np.zeros(SEGMENT_CLASSES * SEGMENT_CLASSES, np.int64)
    for f, t in zip(found, truth, strict=True):
        if f.shape != t.shape:
            raise ValueError(f"a {f.shape} class map against a {t.shape} truth")
        scored = t != SEGMENT_IGNORE
        pairs = t[scored].astype(np.int64) * SEGMENT_CLASSES + f[scored]
        counts += np.bincount(pairs, minlength=counts.size)
    return counts.reshape(SEGMENT_CLASSES, SEGMENT_CLASSES)


def mean_iou(counts: np.ndarray) -> float:
    """mIoU of a confusion matrix: the mean IoU over the classes (background too) that truth
    or the found maps have; NaN when no pixel is scored."""
    hits = np.diag(counts).astype(np.float64)
    union = counts.sum(0) + counts.sum(1) - hits
    present = union > 0
    return float(np.mean(hits[present] / union[present])) if present.any() else float("nan")


def _truth(rows: list[tuple]) -> Detections:
    """Boxes from (x0, y0, x1, y1, class[, track id]) rows."""
    if not rows:
        return Detections.empty()
    a = np.asarray(rows, dtype=np.float64)
    ids = a[:, 5].astype(np.int64) if a.shape[1] > 5 else None
    return Detections(a[:, :4], np.ones(len(a)), a[:, 4].astype(np.int64), ids)


def pseudo_truth(found: list[Detections]) -> list[Detections]:
    """The detector's confident boxes on the uncompressed frames, as ground truth (tracked,
    so that they carry identities for the tracking metrics)."""
    tracks = track(found, PSEUDO_MIN_SCORE)
    return [Detections(t.boxes, np.ones(len(t)), t.classes, t.ids) for t in tracks]


def track(found: list[Detections], min_score: float = TRACK_MIN_SCORE) -> list[Detections]:
    """Identities for per-frame detections: a greedy IoU tracker. Each frame's boxes at
    ``min_score`` and up are matched to the live tracks of their class by the best IoU (at
    least TRACK_IOU, one-to-one); the rest start tracks; a track not seen for TRACK_MAX_GAP
    frames ends."""
    from scipy.optimize import linear_sum_assignment

    live: list[tuple[int, np.ndarray, int, int]] = []  # (id, box, class, last frame)
    next_id, out = 1, []
    for t, frame in enumerate(found):
        dets = frame.above(min_score)
        ids = np.zeros(len(dets), dtype=np.int64)
        live = [tr for tr in live if t - tr[3] <= TRACK_MAX_GAP]
        if live and len(dets):
            iou = box_iou(dets.boxes, np.stack([tr[1] for tr in live]))
            iou[dets.classes[:, None] != np.array([tr[2] for tr in live])[None, :]] = 0
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols, strict=True):
                if iou[r, c] >= TRACK_IOU:
                    ids[r] = live[c][0]
        updated = {tr[0]: tr for tr in live}
        for i in range(len(dets)):
            if ids[i] == 0:
                ids[i], next_id = next_id, next_id + 1
            updated[int(ids[i])] = (int(ids[i]), dets.boxes[i], int(dets.classes[i]), t)
        live = list(updated.values())
        out.append(Detections(dets.boxes, dets.scores, dets.classes, ids))
    return out


def tracking_scores(tracks: list[Detections], truth: list[Detections]) -> dict[str, float]:
    """CLEAR-MOT's MOTA and IDF1 of tracked boxes against ground truth with identities (a
    match: same class, IoU at least 0.5). MOTA = 1 - (misses + false positives + identity
    switches) / truth boxes, with per-frame one-to-one matching; IDF1 = 2 IDTP / (truth boxes +
    tracked boxes), IDTP from the one-to-one pairing of whole truth and track identities that
    shares the most frames. NaN without truth."""
    from scipy.optimize import linear_sum_assignment

    if len(tracks) != len(truth):
        raise ValueError(f"{len(tracks)} frames of tracks for {len(truth)} of truth")
    misses = false = switches = total_truth = total_tracked = 0
    last: dict[int, int] = {}  # truth id -> the track id it last matched
    overlap: dict[tuple[int, int], int] = {}  # (truth id, track id) -> frames matched
    for found, gt in zip(tracks, truth, strict=True):
        if (len(gt) and gt.ids is None) or (len(found) and found.ids is None):
            raise ValueError("tracking scores need identities on both sides")
        total_truth += len(gt)
        total_tracked += len(found)
        iou = box_iou(gt.boxes, found.boxes) if len(gt) and len(found) else np.zeros((0, 0))
        if iou.size:
            iou[gt.classes[:, None] != found.classes[None, :]] = 0
            for g, f in zip(*np.nonzero(iou >= MATCH_IOU), strict=True):
                key = (int(gt.ids[g]), int(found.ids[f]))
                overlap[key] = overlap.get(key, 0) + 1
        matched = 0
        if iou.size:
            rows, cols = linear_sum_assignment(-iou)
            for g, f in zip(rows, cols, strict=True):
                if iou[g, f] < MATCH_IOU:
                    continue
                matched += 1
                truth_id, track_id = int(gt.ids[g]), int(found.ids[f])
                switches += truth_id in last and last[truth_id] != track_id
                last[truth_id] = track_id
        misses += len(gt) - matched
        false += len(found) - matched
    if total_truth == 0:
        return {"mota": float("nan"), "idf1": float("nan")}
    idtp = 0
    if overlap:
        gts = sorted({g for g, _ in overlap})
        trs = sorted({t for _, t in overlap})
        counts = np.zeros((len(gts), len(trs)))
        for (g, t), n in overlap.items():
            counts[gts.index(g), trs.index(t)] = n
        rows, cols = linear_sum_assignment(-counts)
        idtp = int(counts[rows, cols].sum())
    return {
        "mota": 1 - (misses + false + switches) / total_truth,
        "idf1": 2 * idtp / (total_truth + total_tracked),
    }


def mean_average_precision(
    found: list[Detections], truth: list[Detections]
) -> dict[str, float | dict[int, float]]:
    """COCO-style mAP of per-frame detections against per-frame truth: ``map50`` (IoU 0.5),
    ``map`` (mean over IoU .5:.95), and ``per_class`` AP at 0.5, over the classes with truth.
    Values in 0..1; NaN when there is no truth at all."""
    if len(found) != len(truth):
        raise ValueError(f"{len(found)} frames of detections for {len(truth)} of truth")
    classes = sorted({int(c) for t in truth for c in t.classes})
    if not classes:
        return {"map50": float("nan"), "map": float("nan"), "per_class": {}}
    table = np.array([[_ap(found, truth, c, iou) for iou in IOU_THRESHOLDS] for c in classes])
    return {
        "map50": float(table[:, 0].mean()),
        "map": float(table.mean()),
        "per_class": {c: float(v) for c, v in zip(classes, table[:, 0], strict=True)},
    }


def _ap(found: list[Detections], truth: list[Detections], cls: int, iou: float) -> float:
    """Average precision of class ``cls`` at one IoU threshold (greedy matching by score)."""
    return average_precision(*matches(found, truth, cls, iou))


def matches(
    found: list[Detections], truth: list[Detections], cls: int, iou: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """(scores, hits, truth count) of class ``cls`` over the frames: every detection's score
    and whether it took a truth box (greedy by score within its frame, IoU >= ``iou``). Two
    sets' matches concatenated are those of the two as one set."""
    scores, hits = [], []
    total = 0
    for f, t in zip(found, truth, strict=True):
        gt = t.boxes[t.classes == cls]
        total += len(gt)
        mine = f.classes == cls
        boxes, conf = f.boxes[mine], f.scores[mine]
        order = np.argsort(-conf, kind="stable")
        taken = np.zeros(len(gt), bool)
        overlaps = box_iou(boxes[order], gt) if len(gt) and len(order) else None
        for rank, i in enumerate(order):
            scores.append(conf[i])
            hit = False
            if overlaps is not None:
                candidates = np.where(taken, -1.0, overlaps[rank])
                best = int(np.argmax(candidates))
                if candidates[best] >= iou:
                    taken[best] = hit = True
            hits.append(hit)
    return np.asarray(scores, np.float64), np.asarray(hits, bool), total


def average_precision(scores: np.ndarray, hits: np.ndarray, total: int) -> float:
    """COCO's 101-point interpolated AP of ranked detections (``matches``); NaN without truth."""
    if total == 0:
        return float("nan")
    if not len(scores):
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    precision = tp / np.arange(1, len(tp) + 1)
    recall = tp / total
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    at = np.searchsorted(recall, RECALL_POINTS, side="left")
    return float(np.mean([envelope[i] if i < len(envelope) else 0.0 for i in at]))
