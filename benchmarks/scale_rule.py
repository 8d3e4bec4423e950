"""Where does coding at half resolution (s = 2) beat full resolution (s = 1), per clip and QP?

For each clip and --qp, encodes with --scale 1 and --scale 2 (whose base CRF is qp - 5, see
codec/params.py), masks off, post-processing on (or --no-post), and reports rate and
PSNR-YUV; then,
for every s = 2 point, the PSNR the s = 1 curve reaches at the same rate (log-rate linear
interpolation) and the gain. (This made v0's rule; `--scale auto` is now the parameter module,
measured per GOP by benchmarks/params_choice.py.)

    python benchmarks/scale_rule.py [CLIP ...] [--frames 32] [--out scale_rule.json]
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from shared_clips import SHARED_CLIPS

from vcodec.eval.bench import load_clip
from vcodec.metrics import MetricAccumulator
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode_gops

DEFAULT_CLIPS = [
    "carphone_pristine.mp4",
    "bikes.mp4",
    "intel_car-detection_768x432.mp4",
    "bigbuckbunny.mp4",
    "flower_720p_300f_h264.264",
]
QPS = (22, 27, 32, 37, 42, 47)
POST = True  # the decoder's post-processing network (--no-post to measure without it)


def point(clip, qp: int, scale: int) -> dict:
    buf = io.BytesIO()
    config = EncodeConfig(
        qp=qp, base="x265", scale=str(scale), masks=False, post=POST, device="cpu"
    )
    encode_gops(clip.gops, clip.info, buf, config)
    buf.seek(0)
    acc = MetricAccumulator()
    for ref, test in zip(clip.gops, VcxDecoder(buf, "cpu").gops(), strict=True):
        acc.add(ref, test)
    bpp = 8 * buf.getbuffer().nbytes / (clip.frames * clip.info.width * clip.info.height)
    return {"qp": qp, "scale": scale, "bpp": bpp, "psnr_yuv": acc.mean()["psnr_yuv"]}


def gain_at_same_rate(s1: list[dict], p: dict) -> float | None:
    rates = np.log([q["bpp"] for q in s1])
    psnrs = [q["psnr_yuv"] for q in s1]
    order = np.argsort(rates)
    x = np.log(p["bpp"])
    if not rates.min() <= x <= rates.max():
        return None
    return p["psnr_yuv"] - float(np.interp(x, rates[order], np.asarray(psnrs)[order]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clips", nargs="*", type=Path)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--out", type=Path, default=Path("scale_rule.json"))
    ap.add_argument("--no-post", action="store_true", help="measure without post-v1")
    args = ap.parse_args()
    global POST
    POST = not args.no_post
    paths = args.clips or [SHARED_CLIPS / c for c in DEFAULT_CLIPS]
    rows = []
    for path in paths:
        clip = load_clip(path, args.frames)
        s1 = [point(clip, qp, 1) for qp in QPS]
        s2 = [point(clip, qp, 2) for qp in QPS]
        for p in s2:
            gain = gain_at_same_rate(s1, p)
            rows.append({"clip": clip.name, "height": clip.info.height, **p, "gain_db": gain})
            shown = "n/a (outside s=1 range)" if gain is None else f"{gain:+.2f} dB"
            print(
                f"{clip.name:32s} h={clip.info.height:4d} qp={p['qp']} bpp={p['bpp']:.4f} "
                f"s2 psnr={p['psnr_yuv']:.2f} vs s1 at same rate: {shown}",
                flush=True,
            )
        rows += [{"clip": clip.name, "height": clip.info.height, **p} for p in s1]
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
