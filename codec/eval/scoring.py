"""The bench's task side (seed 003): a model on the decoded frames of one point, scored
against the clip's ground truth (detection mAP, segmentation mIoU, tracking MOTA / IDF1), the
pseudo ground truth of a clip with no labels, and the scores of several clips pooled."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcodec.errors import InputError
from vcodec.eval.tasks import (
    PSEUDO_MIN_SCORE,
    confusion,
    mean_average_precision,
    mean_iou,
    pseudo_truth,
    track,
    tracking_scores,
)
from vcodec.frames import Gop
from vcodec.models.detectors import COCO_NAMES, Detections

TASKS = ("detect", "segment", "track")
# the BenchPoint fields each task measures that get BD-rates
TASK_BD_METRICS = {"detect": ("map50",), "segment": ("miou",), "track": ("map50", "mota")}


@dataclass(frozen=True)
class Truth:
    """A clip's ground truth for a task: per frame ``boxes`` (detect, track) or ``masks``
    (class maps [H, W] uint8, segment), and where it came from (a label layout, or
    "pseudo")."""

    boxes: list[Detections] | None = None
    masks: list[np.ndarray] | None = None
    layout: str = "none"


@dataclass(frozen=True)
class TaskScore:
    """One point's task metrics: BenchPoint ``fields`` (points, 0..100; None where undefined),
    AP@0.5 per class name (detect, track), and ``evidence`` for pooling: the detections on
    every frame, or the confusion matrix of the class maps."""

    fields: dict[str, float | None]
    per_class: dict[str, float | None] | None
    evidence: list[Detections] | np.ndarray


def ground_truth(task: str, model, gops: list[Gop], labels: Truth, clip: str) -> Truth:
    """The truth ``task`` scores against: the clip's labels, or else the model's own output on
    the source frames (pseudo ground truth). Refuses labels that cannot score the task."""
    if task == "segment":
        if labels.masks is not None:
            return labels
        maps = [m for gop in gops for m in model.segment(gop, PSEUDO_MIN_SCORE)]
        return Truth(masks=maps, layout="pseudo")
    if labels.boxes is None:
        found = [d for gop in gops for d in model.detect(gop)]
        return Truth(boxes=pseudo_truth(found), layout="pseudo")
    if task == "track" and any(t.ids is None for t in labels.boxes if len(t)):
        raise InputError(
            f"{clip}: --task track needs identities: a MOT gt.txt, seed 003's track_id lines, "
            "or no labels (pseudo ground truth); YOLO labels have none"
        )
    return labels


def score(task: str, model, decoded: list[Gop], truth: Truth) -> TaskScore:
    """``model`` on every decoded frame, scored against ``truth``."""
    if task == "segment":
        counts = confusion([m for gop in decoded for m in model.segment(gop)], truth.masks)
        return TaskScore({"miou": _points(mean_iou(counts))}, None, counts)
    found = [d for gop in decoded for d in model.detect(gop)]
    scores = mean_average_precision(found, truth.boxes)
    fields = {k: _points(scores[k]) for k in ("map50", "map")}
    if task == "track":
        fields |= {k: _points(v) for k, v in tracking_scores(track(found), truth.boxes).items()}
    per_class = {_class_name(c): _points(v) for c, v in scores["per_class"].items()}
    return TaskScore(fields, per_class, found)


def pooled(task: str, scores: list[TaskScore], truths: list[Truth]) -> dict[str, float | None]:
    """The task metrics of several clips' points (one codec, one setting) over all their
    frames as one set, as COCO scores a dataset: mAP of all detections, mIoU of the summed
    confusion. Tracking is not pooled (identities are per clip)."""
    if task == "segment":
        return {"miou": _points(mean_iou(sum(s.evidence for s in scores)))}
    found = [d for s in scores for d in s.evidence]
    result = mean_average_precision(found, [t for truth in truths for t in truth.boxes])
    return {k: _points(result[k]) for k in ("map50", "map")}


def _class_name(cls: int) -> str:
    """COCO's name of a class id (labels may use ids past COCO's 80: their number)."""
    return COCO_NAMES[cls] if 0 <= cls < len(COCO_NAMES) else str(cls)


def _points(value: float) -> float | None:
    """A 0..1 score in points (0..100), None where undefined."""
    return None if value != value else 100 * value
