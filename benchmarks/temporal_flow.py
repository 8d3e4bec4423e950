"""Why temporal scaling leaves moving GOPs alone (issue 18's motion-compensated temporal
scaling), measured per GOP: the error of predicting each odd source frame from its two
neighbours (their mean, and their interpolation along OpenCV's DIS optical flow at each
preset, temporal.flow_midpoints) against the base layer's own error at each QP (vcodec's base
layer at --scale 1, Wiener filters and temporal scaling off), all PSNR-YUV-weighted MSE. A GOP
drops its odd frames when the prediction's error is within TEMPORAL_MARGIN of the base
layer's error on the last decoded GOP, or of expected_base_error's guess before any is decoded
(the encoder decides about three GOPs ahead of its first decoded one).

    python benchmarks/temporal_flow.py [CLIP ...] [--frames 48] [--qps 32,42]
"""

from __future__ import annotations

import io
import time

import cv2
from recon_vs_interp import HELD_OUT
from shared_clips import clip_parser, clip_paths

from vcodec.eval.bench import load_clip
from vcodec.frames import yuv_mse
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode_gops
from vcodec.stages import temporal
from vcodec.stages.scale import base_qp

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def fmt(values: list[float]) -> str:
    return " ".join(f"{v:7.1f}" for v in values)


def main() -> None:
    ap = clip_parser(__doc__, 48, "32,42")
    args = ap.parse_args()
    for path in clip_paths(args, HELD_OUT):
        clip = load_clip(path, args.frames)
        print(f"{path.name}: per GOP (MSE)")
        means = [temporal.prediction_error(g, 2) for g in clip.gops]
        print(f"  {'mean of neighbours':24} {fmt(means)}")
        for name, preset in PRESETS.items():
            temporal.FLOW_PRESET = preset
            temporal._dis.cache_clear()
            start = time.perf_counter()
            errors = [temporal.prediction_error(g, 2, flow=True) for g in clip.gops]
            ms = 1000 * (time.perf_counter() - start) / sum(g.n_frames for g in clip.gops)
            print(f"  {'DIS ' + name:24} {fmt(errors)}   ({ms:.1f} ms a frame)")
        for qp in args.qps:
            buf = io.BytesIO()
            config = EncodeConfig(qp=qp, base="x265", scale="1", wiener=False, temporal=False)
            encode_gops(iter(clip.gops), clip.info, buf, config)
            buf.seek(0)
            decoded = VcxDecoder(buf, "cpu").gops()
            errors = [yuv_mse(s, d) for s, d in zip(clip.gops, decoded, strict=True)]
            guesses = [temporal.expected_base_error(g, base_qp(qp, 1), 1) for g in clip.gops]
            print(f"  {f'base layer, qp {qp}':24} {fmt(errors)}")
            print(f"  {'  its guess':24} {fmt(guesses)}")


if __name__ == "__main__":
    main()
