"""Task metrics: mAP, the MOT and YOLO label layouts, and `vcodec bench --task detect`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SHARED_DATA, requires_data
from PIL import Image
from typer.testing import CliRunner

from vcodec.bench import BenchConfig, Clip, pooled_points
from vcodec.bitstream.errors import InputError
from vcodec.cli.main import app
from vcodec.detectors import Detections, load_detector, nms
from vcodec.tasks import (
    find_labels,
    mean_average_precision,
    pseudo_truth,
    read_mot,
    track,
    tracking_scores,
)

NANODET = SHARED_DATA / "weights" / "nanodet-m_coco_onnx" / "nanodet-m_320.onnx"
MOT05 = SHARED_DATA / "labeled" / "MOT17-mini" / "train" / "MOT17-05-FRCNN"


def boxes(rows, scores=None) -> Detections:
    a = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    s = np.ones(len(a)) if scores is None else np.asarray(scores, dtype=np.float64)
    return Detections(a[:, :4], s, a[:, 4].astype(np.int64))


def test_map_of_perfect_shifted_and_wrong_detections() -> None:
    truth = [boxes([[0, 0, 10, 10, 0], [20, 20, 40, 40, 2]]), boxes([[5, 5, 15, 15, 0]])]
    perfect = mean_average_precision(truth, truth)
    assert perfect["map50"] == pytest.approx(1.0) and perfect["map"] == pytest.approx(1.0)
    # moved by 1 px right and down: IoU 0.68 (10x10 box) and 0.82 (20x20): found at 0.5,
    # missed at 0.9
    shifted = [boxes(np.c_[t.boxes + 1, t.classes]) for t in truth]
    s = mean_average_precision(shifted, truth)
    assert s["map50"] == pytest.approx(1.0) and 0.3 < s["map"] < 0.9
    # one true positive (0.9), a false positive (0.8), the other truth found at 0.7
    found = [
        boxes([[0, 0, 10, 10, 0], [50, 50, 60, 60, 0]], [0.9, 0.8]),
        boxes([[5, 5, 15, 15, 0]], [0.7]),
    ]
    person = mean_average_precision(found, truth)["per_class"][0]
    assert person == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101)
    # the car is never found: AP 0 for its class
    assert mean_average_precision(found, truth)["per_class"][2] == 0.0
    assert np.isnan(mean_average_precision([Detections.empty()], [Detections.empty()])["map50"])


def test_nms_keeps_the_best_of_overlapping_boxes_per_class() -> None:
    found = boxes(
        [[0, 0, 10, 10, 0], [1, 1, 11, 11, 0], [1, 1, 11, 11, 2], [30, 30, 40, 40, 0]],
        [0.5, 0.9, 0.4, 0.3],
    )
    kept = nms(found)
    assert sorted(kept.scores.tolist()) == [0.3, 0.4, 0.9]


def test_pooled_points_score_every_clips_frames_as_one_set() -> None:
    from vcodec.report import POOLED, BenchPoint

    truth = {"a": [boxes([[0, 0, 10, 10, 0]])], "b": [boxes([[0, 0, 10, 10, 0]])] * 3}
    clips = [Clip(name, None, [], truth=t) for name, t in truth.items()]
    # clip a: its one box found; clip b: one of its three, and a false box ranked first
    found = {
        ("a", "x264", 32): [boxes([[0, 0, 10, 10, 0]], [0.9])],
        ("b", "x264", 32): [boxes([[0, 0, 10, 10, 0], [50, 50, 60, 60, 0]], [0.8, 0.95])]
        + [Detections.empty()] * 2,
    }
    points = [
        BenchPoint(name, "x264", 32, 100, len(t), 1.0, 0.1, 30, 30, 0.9, 10, 10, map50=1.0)
        for name, t in truth.items()
    ]
    (p,) = pooled_points(clips, points, found)
    every = [d for key in (("a", "x264", 32), ("b", "x264", 32)) for d in found[key]]
    expected = mean_average_precision(every, truth["a"] + truth["b"])["map50"]
    assert (p.clip, p.frames, p.bytes) == (POOLED, 4, 200)
    assert p.map50 == pytest.approx(100 * expected) and 0 < expected < 1
    assert p.map50 not in (1.0, 100.0)  # not the clips' own values


def test_pseudo_truth_keeps_confident_boxes() -> None:
    found = [boxes([[0, 0, 10, 10, 0], [5, 5, 9, 9, 1]], [0.9, 0.2])]
    truth = pseudo_truth(found)
    assert len(truth[0]) == 1 and truth[0].scores.tolist() == [1.0]


def tracked(rows_per_frame) -> list[Detections]:
    """Frames of (x0, y0, x1, y1, class, id) rows."""
    out = []
    for rows in rows_per_frame:
        a = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
        out.append(Detections(a[:, :4], np.ones(len(a)), a[:, 4].astype(int), a[:, 5].astype(int)))
    return out


def test_tracker_keeps_identities_of_moving_boxes() -> None:
    frames = [
        boxes([[10 + 3 * t, 10, 30 + 3 * t, 50, 0], [100, 100 - 2 * t, 140, 120 - 2 * t, 2]])
        for t in range(5)
    ]
    tracks = track(frames)
    assert [t.ids.tolist() for t in tracks] == [[1, 2]] * 5
    # a box gone for longer than the allowed gap comes back as a new track
    gap = track([frames[0], Detections.empty(), Detections.empty(), Detections.empty(),
                 Detections.empty(), frames[0]])  # fmt: skip
    assert gap[-1].ids.tolist() == [3, 4]


def test_mota_and_idf1() -> None:
    truth = tracked([[[0, 0, 10, 10, 0, 1], [50, 50, 60, 60, 0, 2]]] * 4)
    perfect = tracking_scores(truth, truth)
    assert perfect == {"mota": 1.0, "idf1": 1.0}
    # the tracker swaps the identity of object 1 halfway: one switch in 8 truth boxes
    swapped = tracked(
        [[[0, 0, 10, 10, 0, 7], [50, 50, 60, 60, 0, 2]]] * 2
        + [[[0, 0, 10, 10, 0, 9], [50, 50, 60, 60, 0, 2]]] * 2
    )
    scores = tracking_scores(swapped, truth)
    assert scores["mota"] == pytest.approx(1 - 1 / 8)
    assert scores["idf1"] == pytest.approx(2 * 6 / 16)  # object 1 keeps 2 of its 4 frames
    # a missed box and a false one
    sloppy = tracked(
        [[[0, 0, 10, 10, 0, 1], [80, 80, 90, 90, 0, 5]]] + [[[0, 0, 10, 10, 0, 1]]] * 3
    )
    assert tracking_scores(sloppy, truth)["mota"] == pytest.approx(1 - (4 + 1) / 8)
    with pytest.raises(ValueError, match="identities"):
        tracking_scores([boxes([[0, 0, 1, 1, 0]])], truth[:1])


def _frames(folder, n: int = 3, size=(64, 48)) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", size, (40 * i, 80, 120)).save(folder / f"{i:06d}.png")


def test_mot_layout(tmp_path) -> None:
    seq = tmp_path / "seq"
    _frames(seq / "img1")
    (seq / "gt").mkdir()
    (seq / "gt" / "gt.txt").write_text(
        "1,1,10,5,20,30,1,1,1.0\n2,1,12,5,20,30,1,1,1.0\n2,2,0,0,5,5,0,1,1.0\n3,3,1,1,4,4,1,3,1\n"
        "3,4,1,1,4,4,1,8,1\n"
    )
    labels = find_labels(seq)
    assert labels.layout == "mot" and labels.frames == seq / "img1"
    assert labels.truth[0].boxes.tolist() == [[10, 5, 30, 35]]
    assert len(labels.truth[1]) == 1  # the flag-0 row is ignored
    assert labels.truth[2].classes.tolist() == [2]  # MOT car -> COCO car; class 8 dropped
    (seq / "gt" / "gt.txt").write_text("9,1,10,5,20,30,1,1,1.0\n")
    with pytest.raises(InputError, match="out of range"):
        read_mot(seq / "gt" / "gt.txt", 3)
    (seq / "gt" / "gt.txt").write_text("1;1;10\n")
    with pytest.raises(InputError, match="a MOT line"):
        find_labels(seq)


def test_yolo_layout(tmp_path) -> None:
    _frames(tmp_path / "images")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "000000.txt").write_text("0 0.5 0.5 0.5 0.25\n")
    labels = find_labels(tmp_path)
    assert labels.layout == "yolo" and len(labels.truth) == 3
    np.testing.assert_allclose(labels.truth[0].boxes, [[16, 18, 48, 30]])
    assert len(labels.truth[1]) == 0  # no file: no objects
    (tmp_path / "labels" / "000001.txt").write_text("0 1.5 0.5 0.5 0.25\n")
    with pytest.raises(InputError, match="normalised"):
        find_labels(tmp_path)
    assert find_labels(tmp_path / "images").layout == "none"


def test_bad_task_settings() -> None:
    common = {"codecs": "x264", "qps": None, "frames": 4, "preset": "medium", "device": "cpu"}
    with pytest.raises(InputError, match="--detector"):
        BenchConfig.from_strings(**common, task="detect")
    with pytest.raises(InputError, match="segment: not yet"):
        BenchConfig.from_strings(**common, task="segment", detector="onnx-nanodet:x.onnx")
    with pytest.raises(InputError, match="onnx-nanodet:PATH"):
        load_detector("yolo:x.pt")
    with pytest.raises(InputError, match="no such detector"):
        load_detector("onnx-nanodet:/missing/nanodet.onnx")


@requires_data
def test_bench_detect_on_a_mot_sequence_and_in_pseudo_mode(tmp_path) -> None:
    runner = CliRunner()
    base = ["bench", "--task", "detect", "--detector", f"onnx-nanodet:{NANODET}"]
    base += ["--codecs", "x264,x264-roi", "--qp", "27,32,37,42", "--device", "cpu"]
    r = runner.invoke(app, [*base, str(MOT05), "--out", str(tmp_path / "mot")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "mot" / "bench.json").read_text())
    assert doc["clips"][0]["ground_truth"] == "MOT gt.txt"
    assert doc["settings"]["detector"] == "onnx-nanodet:nanodet-m_320.onnx"
    maps = [p["map50"] for p in doc["points"]]
    assert all(0 < m <= 100 for m in maps)
    assert {"person"} <= set(doc["per_class_ap50"][0]["ap50"])
    assert any(row["metric"] == "map50" for row in doc["bd_rate"])
    # task-aware ROI: the detector's objects are the ROI maps, and x264-roi codes by them
    assert "nanodet" in doc["settings"]["roi_psnr"] and 0 < doc["clips"][0]["roi_coverage"] < 1
    sizes = {(p["codec"], p["q"]): p["bytes"] for p in doc["points"]}
    assert sizes[("x264-roi", 32)] != sizes[("x264", 32)]
    r = runner.invoke(app, [*base, str(MOT05 / "img1"), "--out", str(tmp_path / "pseudo")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "pseudo" / "bench.json").read_text())
    assert doc["clips"][0]["ground_truth"].startswith("pseudo")
    track_args = [*base, "--task", "track", str(MOT05), "--out", str(tmp_path / "track")]
    r = runner.invoke(app, track_args)
    assert r.exit_code == 0, r.output
    points = json.loads((tmp_path / "track" / "bench.json").read_text())["points"]
    assert all(-100 <= p["mota"] <= 100 and 0 <= p["idf1"] <= 100 for p in points)
