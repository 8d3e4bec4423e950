"""What segments cost: BD-rate on PSNR-YUV of vcx with segments of at most --segment-seconds
(default 10; cut at scene changes too) against vcx with a single segment (cut only at scene
changes: --segment-seconds very long) and against SVT-AV1 preset 8 alone, per clip. Prints one
JSON line per clip.

    python benchmarks/segment_cost.py CLIP [CLIP ...] --frames 600 --qp 27,32,37,42
"""

from __future__ import annotations

import argparse
import io
import json
import time
from dataclasses import replace
from pathlib import Path

import bjontegaard as bd
import numpy as np

from vcodec.eval.anchors import CodecName, run_anchor
from vcodec.eval.clips import load_clip
from vcodec.frames import PSNR_YUV_WEIGHTS, Gop
from vcodec.metrics import psnr
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode_gops

ONE_SEGMENT_S = 1e6  # --segment-seconds that never cuts by length


def quality(source: list[Gop], decoded: list[Gop]) -> float:
    """Mean PSNR-YUV over the frames."""
    values = []
    for a, b in zip(source, decoded, strict=True):
        planes = [psnr(p, q) for p, q in zip(a.planes(), b.planes(), strict=True)]
        values.append(sum(w * v for w, v in zip(PSNR_YUV_WEIGHTS, planes, strict=True)) / 8)
    return float(np.mean(np.concatenate(values)))


def av1_point(clip, qp: int) -> dict:
    decoded, size, seconds, _ = run_anchor(clip, CodecName("av1"), qp, "medium")
    return {"bytes": size, "psnr_yuv": quality(clip.gops, decoded), "seconds": seconds}


def vcx_point(clip, config: EncodeConfig) -> dict:
    buf = io.BytesIO()
    start = time.perf_counter()
    encode_gops(iter(clip.gops), clip.info, buf, config)
    seconds = time.perf_counter() - start
    buf.seek(0)
    decoded = list(VcxDecoder(buf, "cpu").gops())
    decoded = [g for g in decoded]
    flat = [Gop.from_frames(list(zip(*g.planes(), strict=True)), g.start) for g in decoded]
    regrouped = _like(clip.gops, flat)
    return {"bytes": len(buf.getvalue()), "psnr_yuv": quality(clip.gops, regrouped),
            "seconds": seconds}  # fmt: skip


def _like(source: list[Gop], decoded: list[Gop]) -> list[Gop]:
    """``decoded``'s frames in GOPs of ``source``'s sizes (segments regroup them)."""
    frames = [f for g in decoded for f in zip(*g.planes(), strict=True)]
    out, at = [], 0
    for gop in source:
        out.append(Gop.from_frames(frames[at : at + gop.n_frames], gop.start))
        at += gop.n_frames
    return out


def bd_rate(rate: dict, dbs: dict, test: str, anchor: str) -> float:
    """BD-rate (%) of curve ``test`` against ``anchor``, PSNR-YUV."""
    return round(bd.bd_rate(rate[anchor], dbs[anchor], rate[test], dbs[test], "akima"), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+")
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--qp", default="27,32,37,42")
    parser.add_argument("--segment-seconds", type=float, default=10.0)
    args = parser.parse_args()
    qps = [int(q) for q in args.qp.split(",")]
    for path in args.clips:
        clip = load_clip(Path(path), args.frames)
        curves: dict[str, list[dict]] = {"segments": [], "one": [], "av1": []}
        for qp in qps:
            config = EncodeConfig(
                qp=qp, device="cpu", threads=1, segment_seconds=args.segment_seconds
            )
            curves["segments"].append(vcx_point(clip, config))
            curves["one"].append(vcx_point(clip, replace(config, segment_seconds=ONE_SEGMENT_S)))
            curves["av1"].append(av1_point(clip, qp))
        rate = {k: [p["bytes"] for p in v] for k, v in curves.items()}
        dbs = {k: [p["psnr_yuv"] for p in v] for k, v in curves.items()}

        print(json.dumps({
            "clip": Path(path).name, "frames": clip.frames, "qps": qps,
            "segments_vs_one": bd_rate(rate, dbs, "segments", "one"),
            "segments_vs_av1": bd_rate(rate, dbs, "segments", "av1"),
            "one_vs_av1": bd_rate(rate, dbs, "one", "av1"),
            "curves": curves,
        }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
