"""Issue 32's task evaluation on fixed cameras: `vcodec encode --task detect` against SVT-AV1
preset 8 by the rate at which pooled detection mAP@0.5 reaches 95 % of the source's, over many
windows of the shared fixed-camera clips, with a bootstrap interval.

For each window the judge (NanoDet-m, --judge) runs on the source frames; its boxes at score >=
PSEUDO_MIN_SCORE are the truth (pseudo ground truth, as VCM's common test conditions do for
unlabelled video), and its own detections on the source are the source's mAP. Each codec is
swept over QPS, every point decoded and judged. The windows' points are pooled per qp (bytes
and durations summed, detections scored as one set: mAP over the classes of TRAFFIC with at
least MIN_BOXES truth boxes) into one curve per codec; the rate at which the curve reaches
TARGET of the source's pooled mAP is read off it (linear in log rate between the two points
that bracket it, from the high-rate end). A curve still above the target at its lowest rate
gives only a bound (its lowest rate), said so; one below it at its highest rate, none. The
bootstrap resamples the windows (with replacement) and reads both rates again each time.

    python benchmarks/task_fixedcam.py --cache ~/.cache/vcodec-task-fixed --bootstrap 1000

Each point (bytes, timings, metrics, the judge's detections) is cached: a rerun is cheap.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from task_generalise import TRAFFIC, only, restricted, scored_classes

from vcodec.eval.bench import BenchConfig, bench_point
from vcodec.eval.clips import Clip, with_rois
from vcodec.eval.report import bd_rate, pool
from vcodec.eval.scoring import Truth, ground_truth, score
from vcodec.eval.tasks import average_precision, matches
from vcodec.frames import GOP_SIZE
from vcodec.io import open_video
from vcodec.models.detectors import load_detector
from vcodec.stages.roi import detector_roi, roi_finder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NANODET = DATA / "weights" / "nanodet-m_coco_onnx" / "nanodet-m_{}.onnx"
CLIPS = (  # the shared fixed cameras (DATA/clips), and the windows taken from each
    "fixedcam_bus_door_overhead_320x240_947f.avi",
    "fixedcam_highway_gantry_640x360_766f.mp4",
    "fixedcam_residential_street_640x352_905f.mp4",
    "fixedcam_road_topdown_640x360_480f.mp4",
    "fixedcam_window_street_640x480_403f.264",
    "fixedcam_overhead_terrace_mono_1280x800_627f.mp4",
    "intel_car-detection_768x432.mp4",
)
WINDOWS_PER_CLIP = 10  # spread evenly over each clip (fewer where it is short)
FRAMES = 32  # a window's frames (two GOPs)
QPS = (12, 17, 22, 27, 32, 37, 42, 47)  # low enough that both curves cross the target
CODECS = ("av1", "vcx-task")  # SVT-AV1 preset 8 (the bench's medium), and --task detect
TARGET = 0.95  # of the source's pooled mAP@0.5


def windows(per_clip: int) -> list[tuple[str, str, int]]:
    """(name, file, first frame) of every window: ``per_clip`` a clip, evenly spread, each
    starting on a GOP."""
    out = []
    for file in CLIPS:
        with open_video(DATA / "clips" / file) as reader:
            total = reader.info.frame_count or sum(g.n_frames for g in reader.gops())
        starts = np.linspace(0, max(0, total - FRAMES), per_clip)
        firsts = sorted({int(s) // GOP_SIZE * GOP_SIZE for s in starts})
        out += [(f"{file.split('_')[1]}-{first}", file, first) for first in firsts]
    return out


def load_window(name: str, file: str, first: int) -> Clip:
    with open_video(DATA / "clips" / file) as reader:
        gops = list(reader.gops(GOP_SIZE, first + FRAMES))[first // GOP_SIZE :]
    return Clip(name, reader.info, gops)


def run_points(
    clips: list[Clip], config: BenchConfig, judge, cache: Path, tag: str, reverse: bool = False
) -> dict:
    """(window, codec, q) -> (BenchPoint, TaskScore), from the cache where it is there
    (``reverse``: the windows from the last, so that a second run shares the work)."""
    out = {}
    for clip in reversed(clips) if reverse else clips:
        for codec in CODECS:
            for qp in QPS:
                path = cache / f"{clip.name}.{codec}.{tag}.q{qp}.pkl"
                if not path.is_file():
                    data = pickle.dumps(bench_point(clip, codec, qp, config, judge))
                    partial = path.with_suffix(".partial")
                    partial.write_bytes(data)
                    partial.replace(path)
                out[clip.name, codec, qp] = pickle.loads(path.read_bytes())
        print(f"{clip.name}: done", flush=True)
    return out


def rate_at(curve: list[tuple[float, float]], target: float) -> tuple[float | None, str]:
    """The rate at which a (kbps, mAP) curve falls to ``target`` coming down from its highest
    rate, linear in log rate; ("bound") its lowest rate where it never falls below, (None,
    "never") where it is below at its highest rate."""
    points = sorted(curve, reverse=True)
    if points[0][1] < target:
        return None, "never"
    for (r0, m0), (r1, m1) in zip(points, points[1:], strict=False):
        if m1 < target:
            t = (m0 - target) / (m0 - m1)
            return math.exp(math.log(r0) + t * (math.log(r1) - math.log(r0))), "crossed"
    return points[-1][0], "bound"


def evidence_of(results, clips, truths, classes, sources) -> dict:
    """(window, codec or "source", q) -> class -> (scores, hits, truth count) at IoU 0.5."""
    out = {}
    for clip in clips:
        truth = truths[clip.name].boxes
        out[clip.name, "source", 0] = {
            c: matches(sources[clip.name].evidence, truth, c, 0.5) for c in classes
        }
        for codec in CODECS:
            for qp in QPS:
                found = results[clip.name, codec, qp][1].evidence
                out[clip.name, codec, qp] = {c: matches(found, truth, c, 0.5) for c in classes}
    return out


def pooled_map(evidence, sample: list[str], key: tuple[str, int], classes) -> float:
    aps = []
    for c in classes:
        parts = [evidence[(name, *key)][c] for name in sample]
        total = sum(part[2] for part in parts)
        if total:
            scores = np.concatenate([part[0] for part in parts])
            hits = np.concatenate([part[1] for part in parts])
            aps.append(average_precision(scores, hits, total))
    return 100 * float(np.mean(aps))


def rates(results, evidence, sample: list[str], classes) -> dict:
    """Per codec: (rate at the target, how it was found), and the source's pooled mAP."""
    source = pooled_map(evidence, sample, ("source", 0), classes)
    out = {"source_map50": source}
    for codec in CODECS:
        curve = []
        for qp in QPS:
            kbps = pool([replace(results[n, codec, qp][0], codec="x") for n in sample]).kbps
            curve.append((kbps, pooled_map(evidence, sample, (codec, qp), classes)))
        out[codec] = rate_at(curve, TARGET * source)
        out[codec + "_curve"] = curve
    return out


def roi_point(results, names: list[str], codec: str, qp: int):
    """The windows' points pooled, with their frame-weighted mean PSNR in the regions of
    interest (the windows that have any)."""
    points = [results[n, codec, qp][0] for n in names]
    regions = [p for p in points if p.psnr_roi is not None]
    frames = sum(p.frames for p in regions)
    mean = sum(p.psnr_roi * p.frames for p in regions) / frames if frames else None
    return pool([replace(p, clip="x") for p in points], psnr_roi=mean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--judge", default="320", help="NanoDet-m input size of the judge")
    parser.add_argument("--maps", default="320", help="NanoDet-m size of vcx-task's ROI maps")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples of the windows")
    parser.add_argument("--windows-per-clip", type=int, default=WINDOWS_PER_CLIP)
    parser.add_argument("--reverse", action="store_true", help="code the windows from the last")
    parser.add_argument("--cached-only", action="store_true", help="score the cached windows only")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    judge_spec = f"onnx-nanodet:{str(NANODET).format(args.judge)}"
    map_spec = f"onnx-nanodet:{str(NANODET).format(args.maps)}"
    judge = load_detector(judge_spec)
    config = BenchConfig(task="detect", detector=judge_spec, map_detector=map_spec)
    finder = roi_finder(*detector_roi(map_spec))
    clips, sources = [], {}
    tag = f"j{args.judge}m{args.maps}f{FRAMES}"
    cached = lambda name: all(  # noqa: E731
        (args.cache / f"{name}.{k}.{tag}.q{q}.pkl").is_file() for k in CODECS for q in QPS
    )
    for window in windows(args.windows_per_clip):
        if args.cached_only and not cached(window[0]):  # score the windows already coded
            continue
        clip = with_rois(load_window(*window), finder)
        truth = ground_truth("detect", judge, clip.gops, Truth(), clip.name)
        clips.append(replace(clip, truth=truth))
        sources[clip.name] = score("detect", judge, clip.gops, truth)
    truths = {c.name: c.truth for c in clips}
    print(f"{len(clips)} windows of {FRAMES} frames; judge NanoDet-m {args.judge}, maps "
          f"{args.maps}", flush=True)  # fmt: skip
    results = run_points(clips, config, judge, args.cache, tag, args.reverse)
    classes = scored_classes(truths, TRAFFIC)
    results, truths = restricted(results, truths, classes)
    sources = {n: replace(s, evidence=only(classes, s.evidence)) for n, s in sources.items()}
    evidence = evidence_of(results, clips, truths, classes, sources)
    names = [c.name for c in clips]
    found = rates(results, evidence, names, classes)
    print(f"scored classes {classes}; source pooled mAP@0.5 {found['source_map50']:.1f}, "
          f"target {TARGET:.0%} of it")  # fmt: skip
    for codec in CODECS:
        curve = "  ".join(f"{k:.0f}/{m:.1f}" for k, m in found[codec + "_curve"])
        rate, how = found[codec]
        print(f"  {codec:9s} rate at target: {rate and f'{rate:.1f}'} kbps ({how});  {curve}")
    (av1, av1_how), (task, task_how) = found["av1"], found["vcx-task"]
    if av1 and task:
        print(f"vcx-task vs av1: {100 * (task / av1 - 1):+.1f} % rate at the target "
              f"({task_how} / {av1_how})")  # fmt: skip
    rng = np.random.default_rng(0)
    ratios, kinds = [], {}
    for _ in range(args.bootstrap):
        sample = [names[i] for i in rng.integers(len(names), size=len(names))]
        got = rates(results, evidence, sample, classes)
        (a, ah), (t, th) = got["av1"], got["vcx-task"]
        kinds[ah, th] = kinds.get((ah, th), 0) + 1
        if a and t:
            ratios.append(100 * (t / a - 1))
    if ratios:
        low, mid, high = np.percentile(ratios, [2.5, 50, 97.5])
        print(f"bootstrap ({args.bootstrap} resamples of the {len(names)} windows): "
              f"{low:+.1f} / {mid:+.1f} / {high:+.1f} % (2.5 / 50 / 97.5th); how the rates "
              f"were read (av1, vcx-task): {kinds}")  # fmt: skip
    roi = {c: [roi_point(results, names, c, q) for q in QPS] for c in CODECS}
    print(f"PSNR in the regions of interest, BD-rate of vcx-task against av1: "
          f"{bd_rate(roi['av1'], roi['vcx-task'], 'psnr_roi')}")  # fmt: skip
    (args.cache / f"summary-{tag}.json").write_text(
        json.dumps(
            {
                "rates": {c: found[c] for c in CODECS},
                "source": found["source_map50"],
                "curves": {c: found[c + "_curve"] for c in CODECS},
                "bootstrap": ratios,
                "roi": {c: [asdict(p) for p in roi[c]] for c in CODECS},
            },
            indent=1,
        )  # fmt: skip
    )


if __name__ == "__main__":
    main()
