"""Issue 5's acceptance, read from a `vcodec bench --task detect` run's bench.json: the mAP@0.5
BD-rates of the vcx codecs against x264 and x264-roi, and each codec's mAP@0.5 at half the
rate of x264 at CRF 23 against x264's own there (vcodec may lose at most 1 point).

The half-rate value interpolates the codec's (rate, mAP) points linearly in log rate between
the two that bracket the target; n/a outside its curve. Run the bench with q 23 among its
points, e.g. on the labelled MOT17 frames:

    vcodec bench ../shared/data/labeled/MOT17-mini/train/MOT17-* --task detect \\
        --detector onnx-nanodet:../shared/data/weights/nanodet-m_coco_onnx/nanodet-m_416.onnx \\
        --codecs vcx,vcx-roi,x264,x264-roi,x265 --qp 23,27,32,37,42,47 --out bench_task
    python benchmarks/task_acceptance.py bench_task/bench.json [--clip POOLED]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

ANCHOR, ANCHOR_Q = "x264", 23  # "half the bitrate of x264 at its CRF 23"
ANCHORS = ("x264", "x264-roi", "x265")


def map_at(points: list[dict], kbps: float) -> float | None:
    """mAP@0.5 at ``kbps`` on a codec's curve, linear in log rate; None outside it."""
    curve = sorted((p["kbps"], p["map50"]) for p in points if p["map50"] is not None)
    for (r0, m0), (r1, m1) in zip(curve, curve[1:], strict=False):
        if r0 <= kbps <= r1:
            t = 0.0 if r1 == r0 else math.log(kbps / r0) / math.log(r1 / r0)
            return m0 + t * (m1 - m0)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_json", type=Path)
    parser.add_argument("--clip", default="POOLED", help="a clip name of the run, or POOLED")
    args = parser.parse_args()
    doc = json.loads(args.bench_json.read_text())
    points = [p for p in doc["points"] if p["clip"] == args.clip]
    if not points:
        raise SystemExit(f"no points of clip {args.clip!r} in {args.bench_json}")
    codecs = list(dict.fromkeys(p["codec"] for p in points))
    rows = {
        (r["codec"], r["anchor"]): r["bd_rate_pct"]
        for r in doc["bd_rate"]
        if r["clip"] == args.clip and r["metric"] == "map50"
    }
    print(f"{args.clip}: ground truth {', '.join({c['ground_truth'] for c in doc['clips']})}")
    print("mAP@0.5 BD-rate (negative: fewer bits for the same mAP)")
    for codec in (c for c in codecs if c.startswith("vcx")):
        cells = [
            f"vs {a}: " + ("n/a" if rows.get((codec, a)) is None else f"{rows[(codec, a)]:+.1f} %")
            for a in ANCHORS
            if (codec, a) in rows
        ]
        print(f"  {codec:12s} " + "   ".join(cells))
    anchor = [p for p in points if p["codec"] == ANCHOR and p["q"] == ANCHOR_Q]
    if not anchor:
        print(f"(no {ANCHOR} point at q {ANCHOR_Q}: no half-rate check)")
        return
    target, reference = anchor[0]["kbps"] / 2, anchor[0]["map50"]
    print(f"at half of {ANCHOR} q{ANCHOR_Q}'s rate ({target:.1f} kbps; {ANCHOR} there: "
          f"{reference:.2f} mAP@0.5):")  # fmt: skip
    for codec in codecs:
        value = map_at([p for p in points if p["codec"] == codec], target)
        cell = "n/a (outside its curve)" if value is None else (
            f"{value:.2f} ({value - reference:+.2f} points)"
        )  # fmt: skip
        print(f"  {codec:12s} {cell}")


if __name__ == "__main__":
    main()
