"""Task metrics: mAP, the MOT and YOLO label layouts, and `vcodec bench --task detect`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SHARED_DATA, requires_data
from PIL import Image
from typer.testing import CliRunner

from vcodec.cli.main import app
from vcodec.errors import InputError
from vcodec.eval.bench import BenchConfig, Clip, pooled_points
from vcodec.eval.scoring import TaskScore, Truth, pooled
from vcodec.eval.tasks import (
    average_precision,
    confusion,
    expand_inputs,
    find_labels,
    matches,
    mean_average_precision,
    mean_iou,
    pseudo_truth,
    read_mot,
    track,
    tracking_scores,
)
from vcodec.models.detectors import Detections, load_detector, nms

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


def test_matches_of_two_sets_concatenated_score_them_as_one() -> None:
    """What the bootstrap of benchmarks/task_generalise.py relies on: a class's AP over two
    sets of frames is average_precision of their matches concatenated."""
    rng = np.random.default_rng(3)

    def frame(n: int) -> Detections:
        xy = rng.uniform(0, 200, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(10, 40, (n, 2))], axis=1)
        return Detections(boxes, rng.uniform(0.2, 1, n), rng.integers(0, 2, n))

    truth = [frame(4) for _ in range(6)]
    found = [
        Detections(
            t.boxes + rng.normal(0, 4, t.boxes.shape), rng.uniform(0.2, 1, len(t)), t.classes
        )
        for t in truth
    ]
    found[2] = frame(5)  # a frame of misses and false alarms
    whole = mean_average_precision(found, truth)["per_class"]
    for cls in (0, 1):
        parts = [matches(found[a:b], truth[a:b], cls, 0.5) for a, b in ((0, 2), (2, 6))]
        joined = [np.concatenate([p[i] for p in parts]) for i in (0, 1)]
        assert average_precision(*joined, parts[0][2] + parts[1][2]) == pytest.approx(whole[cls])
        assert 0 < whole[cls] < 1


def test_nms_keeps_the_best_of_overlapping_boxes_per_class() -> None:
    found = boxes(
        [[0, 0, 10, 10, 0], [1, 1, 11, 11, 0], [1, 1, 11, 11, 2], [30, 30, 40, 40, 0]],
        [0.5, 0.9, 0.4, 0.3],
    )
    kept = nms(found)
    assert sorted(kept.scores.tolist()) == [0.3, 0.4, 0.9]


def test_pooled_points_score_every_clips_frames_as_one_set() -> None:
    from vcodec.eval.report import POOLED, BenchPoint

    truth = {"a": [boxes([[0, 0, 10, 10, 0]])], "b": [boxes([[0, 0, 10, 10, 0]])] * 3}
    clips = [Clip(name, None, [], truth=Truth(boxes=t)) for name, t in truth.items()]
    # clip a: its one box found; clip b: one of its three, and a false box ranked first
    found = {
        ("a", "x264", 32): [boxes([[0, 0, 10, 10, 0]], [0.9])],
        ("b", "x264", 32): [boxes([[0, 0, 10, 10, 0], [50, 50, 60, 60, 0]], [0.8, 0.95])]
        + [Detections.empty()] * 2,
    }
    scores = {key: TaskScore({}, None, f) for key, f in found.items()}
    points = [
        BenchPoint(name, "x264", 32, 100, len(t), 1.0, 0.1, 30, 30, 0.9, 10, 10, map50=1.0)
        for name, t in truth.items()
    ]
    (p,) = pooled_points("detect", clips, points, scores)
    every = [d for key in (("a", "x264", 32), ("b", "x264", 32)) for d in found[key]]
    expected = mean_average_precision(every, truth["a"] + truth["b"])["map50"]
    assert (p.clip, p.frames, p.bytes) == (POOLED, 4, 200)
    assert p.map50 == pytest.approx(100 * expected) and 0 < expected < 1
    assert p.map50 not in (1.0, 100.0)  # not the clips' own values
    # segmentation pools the clips' confusion matrices
    segs = [TaskScore({}, None, confusion([m], [t])) for m, t in _maps_and_truth()]
    miou = pooled("segment", segs, [])["miou"]
    maps, truths = zip(*_maps_and_truth(), strict=True)
    assert miou == pytest.approx(100 * mean_iou(confusion(list(maps), list(truths))))


def _maps_and_truth() -> list[tuple[np.ndarray, np.ndarray]]:
    """Two frames' class maps and truth: a person (1) half found, a car (3) found whole."""
    truth = np.zeros((2, 8, 8), np.uint8)
    truth[0, :4, :4] = 1
    truth[1, 4:, 4:] = 3
    truth[1, 0, 0] = 255  # ignored
    found = truth.copy()
    found[0, :2, :4] = 0
    found[1, 0, 0] = 3  # on an ignored pixel: not counted
    return [(found[0], truth[0]), (found[1], truth[1])]


def test_mean_iou_of_class_maps() -> None:
    maps, truths = zip(*_maps_and_truth(), strict=True)
    counts = confusion(list(maps), list(truths))
    assert counts.sum() == 2 * 64 - 1
    # background: 48 + 47 truth pixels all found, and 8 of the person's found as background
    expected = np.mean([95 / 103, 8 / 16, 16 / 16])
    assert mean_iou(counts) == pytest.approx(expected)
    assert mean_iou(confusion(list(truths), list(truths))) == 1.0
    assert np.isnan(mean_iou(confusion([maps[0]], [np.full((8, 8), 255, np.uint8)])))
    with pytest.raises(ValueError, match="frames"):
        confusion(list(maps), list(truths[:1]))


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


def test_yolo_lines_are_validated(tmp_path) -> None:
    _frames(tmp_path / "images", n=1)
    (tmp_path / "labels").mkdir()
    label = tmp_path / "labels" / "000000.txt"
    for line, why in [
        ("0 0.5 0.5", "a YOLO line"),
        ("0 0.1 0.1 0.2 0.1 0.3 0.3 0.5", "a YOLO line"),  # a polygon, not a box
        ("x 0.5 0.5 0.5 0.5", "a YOLO line"),
        ("0.5 0.5 0.5 0.5 0.5", "whole numbers"),
        ("-1 0.5 0.5 0.5 0.5", "whole numbers"),
        ("0 0.5 0.5 0.5 0.5\n3 0 0.5 0.5 0.5 0.5", "one kind per file"),
    ]:
        label.write_text(line + "\n")
        with pytest.raises(InputError, match=why) as info:
            find_labels(tmp_path)
        assert f"{label}:" in str(info.value)  # the file and line


def _seed003(split, videos=("cam1", "cam2"), n=3) -> None:
    """A seed-003 split: frames/, tracking labels/ and masks/ for each video."""
    for video in videos:
        _frames(split / "frames" / video, n)
        (split / "labels" / video).mkdir(parents=True)
        (split / "masks" / video).mkdir(parents=True)
        for i in range(n):
            (split / "labels" / video / f"{i:06d}.txt").write_text("7 2 0.5 0.5 0.5 0.25\n")
            mask = np.zeros((48, 64), np.uint8)
            mask[18:30, 16:48] = 3  # a car (COCO 2) + 1
            Image.fromarray(mask).save(split / "masks" / video / f"{i:06d}.png")


def test_seed003_layout(tmp_path) -> None:
    split = tmp_path / "val"
    _seed003(split)
    videos = expand_inputs([split, tmp_path / "other.mp4"])
    assert videos == [split / "frames" / "cam1", split / "frames" / "cam2", tmp_path / "other.mp4"]
    labels = find_labels(videos[0])
    assert labels.layout == "seed003" and labels.frames == split / "frames" / "cam1"
    np.testing.assert_allclose(labels.truth[1].boxes, [[16, 18, 48, 30]])
    assert labels.truth[0].ids.tolist() == [7] and labels.truth[0].classes.tolist() == [2]
    assert len(labels.masks) == 3 and labels.masks[2][20, 20] == 3
    # one video on its own: frames/ holds the images
    assert find_labels(split / "frames" / "cam2").layout == "seed003"
    (split / "masks" / "cam1" / "000001.png").unlink()
    with pytest.raises(InputError, match="no mask for frame 000001.png"):
        find_labels(videos[0])
    Image.new("RGB", (64, 48)).save(split / "masks" / "cam1" / "000001.png")
    with pytest.raises(InputError, match="one channel"):
        find_labels(videos[0])
    Image.new("L", (32, 48)).save(split / "masks" / "cam1" / "000001.png")
    with pytest.raises(InputError, match="32x48, its frame is 64x48"):
        find_labels(videos[0])


def test_bench_segment_with_an_untrained_seg_model(tmp_path) -> None:
    """--task segment end to end, pooled over two videos; the model is built from its yaml
    (no weights offline), so only the plumbing is checked, not the scores' size."""
    split = tmp_path / "val"
    _seed003(split, n=2)
    args = ["bench", str(split), "--task", "segment", "--detector", "ultralytics:yolov8n-seg.yaml"]
    args += ["--codecs", "x264", "--qp", "30,40", "--device", "cpu", "--out", str(tmp_path / "b")]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert [c["ground_truth"] for c in doc["clips"]] == ["seed 003 labels / masks"] * 2
    points = doc["points"]
    assert [p["clip"] for p in points] == ["cam1", "cam1", "cam2", "cam2", "POOLED", "POOLED"]
    assert all(0 <= p["miou"] <= 100 and p["map50"] is None for p in points)
    r = CliRunner().invoke(
        app, [*args[:4], "--detector", "ultralytics:yolov8n.yaml", *args[6:], "--force"]
    )
    assert r.exit_code != 0 and "needs a segmentation (-seg) model" in r.output


def test_tracking_scores_take_frames_without_boxes() -> None:
    truth = tracked([[[0, 0, 10, 10, 0, 1]], []])
    assert tracking_scores(truth, truth) == {"mota": 1.0, "idf1": 1.0}


def test_bad_task_settings() -> None:
    common = {"codecs": "x264", "qps": None, "frames": 4, "preset": "medium", "device": "cpu"}
    with pytest.raises(InputError, match="--detector"):
        BenchConfig.from_strings(**common, task="detect")
    with pytest.raises(InputError, match="ultralytics:PATH"):
        BenchConfig.from_strings(**common, task="segment", detector="onnx-nanodet:x.onnx")
    with pytest.raises(InputError, match="one of detect, segment, track"):
        BenchConfig.from_strings(**common, task="pose", detector="onnx-nanodet:x.onnx")
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


def test_segment_paints_the_most_confident_instance_on_top() -> None:
    import torch

    from vcodec.frames import Gop
    from vcodec.models.detectors import UltralyticsDetector

    class Result:  # what ultralytics' predict returns per image, with retina masks
        masks = type("M", (), {"data": torch.zeros(2, 8, 8)})()
        boxes = type("B", (), {"conf": torch.tensor([0.9, 0.3]), "cls": torch.tensor([0.0, 2])})()

    Result.masks.data[0, :4] = 1  # a person, rows 0-3
    Result.masks.data[1, 2:6] = 1  # a car, rows 2-5, less confident
    model = type("Model", (), {"task": "segment", "predict": lambda self, images, **kw: [Result]})
    detector = UltralyticsDetector.__new__(UltralyticsDetector)
    detector.model, detector.device, detector.name = model(), "cpu", "stub"
    chroma = np.full((1, 4, 4), 128, np.uint8)
    (maps,) = detector.segment(Gop(np.zeros((1, 8, 8), np.uint8), chroma, chroma.copy()))
    assert maps[:, 0].tolist() == [1, 1, 1, 1, 3, 3, 0, 0]
